//! IncrementalAlterConfigs (v0–1): change named topic config keys and leave
//! the rest alone.
//!
//! | op | effect on the topic's overrides |
//! |---|---|
//! | SET (0) | override the key with the value (a null value is INVALID_REQUEST) |
//! | DELETE (1) | remove the override: the key takes its default again |
//! | APPEND (2) | list keys only: add the value's items missing from the effective list |
//! | SUBTRACT (3) | list keys only: remove the value's items from the effective list |
//!
//! The one list-valued key Sluice serves is `cleanup.policy`; APPEND and
//! SUBTRACT on any other key are INVALID_CONFIG, as in Kafka. The resulting
//! value is validated like any other (appending `compact` to `delete`
//! gives `delete,compact`). All of a resource's operations become one
//! `TopicConfigChanged` record (see `alter_configs.rs`): they apply together
//! or not at all. BROKER resources are refused: broker configs are static.
//!
//! # References
//! KIP-339 (IncrementalAlterConfigs); `ConfigAdminManager` and
//! `ConfigurationControlManager.incrementalAlterConfigs` in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{ConfigChanges, alter_each, change_topic_config, static_broker_configs};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::settings::resource::{
    RESOURCE_BROKER, RESOURCE_TOPIC, check_broker_resource, topic_resource,
    unexpected_resource_type,
};
use crate::settings::table::{ConfigType, topic_setting};
use crate::settings::{ConfigError, TopicConfig};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle_incremental_alter_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let outcomes = alter_each(
        &request.resources,
        |r| (r.resource_type, r.resource_name.as_str()),
        |r| alter(broker, r, request.validate_only),
    )
    .await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, (code, message))| {
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter(
    broker: &Arc<Broker>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let topic = topic_resource(broker, &resource.resource_name)?;
            let effective = TopicConfig::resolve(&topic.configs, broker.replicas().defaults());
            let current: BTreeMap<&str, &str> = effective
                .entries()
                .map(|e| (e.setting.name, e.value.as_str()))
                .collect();
            let changes = incremental_changes(&current, &resource.configs)?;
            change_topic_config(broker, &topic.name, changes, validate_only).await
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name)?;
            Err(static_broker_configs())
        }
        other => Err(unexpected_resource_type(other)),
    }
}

/// Turns the operations into override changes, given the topic's effective
/// values (`current`, defaults included: APPEND to a key without an
/// override extends its default list, as Kafka does).
fn incremental_changes(
    current: &BTreeMap<&str, &str>,
    ops: &[AlterableConfig],
) -> Result<ConfigChanges, BrokerError> {
    let mut changes = ConfigChanges::new();
    for op in ops {
        let key = op.name.to_string();
        if changes.contains_key(&key) {
            return Err(BrokerError::InvalidRequest(format!(
                "Error due to duplicate config keys: {key}"
            )));
        }
        let value = op.value.as_ref().map(|v| v.as_str());
        let change = match op.config_operation {
            OP_SET => Some(value.map(str::to_string).ok_or_else(|| {
                BrokerError::InvalidRequest(format!("Null value not supported for: {key}"))
            })?),
            OP_DELETE => None,
            OP_APPEND | OP_SUBTRACT => {
                match topic_setting(&key) {
                    None => return Err(ConfigError::UnknownKey(key).into()),
                    Some(s) if s.config_type != ConfigType::List => {
                        return Err(ConfigError::NotAList(key).into());
                    }
                    Some(_) => {}
                }
                let base = current.get(key.as_str()).copied().unwrap_or("");
                Some(edit_list(
                    base,
                    value.unwrap_or(""),
                    op.config_operation == OP_APPEND,
                ))
            }
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "unknown config operation {other} for {key}"
                )));
            }
        };
        changes.insert(key, change);
    }
    Ok(changes)
}

/// `base` with the items of `items` appended (skipping ones present) or
/// removed; both are comma-separated lists.
fn edit_list(base: &str, items: &str, append: bool) -> String {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut list = split(base);
    for item in split(items) {
        if append {
            if !list.contains(&item) {
                list.push(item);
            }
        } else {
            list.retain(|i| *i != item);
        }
    }
    list.join(",")
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_config_operation(operation)
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    }

    fn current() -> BTreeMap<&'static str, &'static str> {
        [("cleanup.policy", "delete"), ("retention.ms", "1000")]
            .into_iter()
            .collect()
    }

    #[test]
    fn set_and_delete_become_some_and_none() {
        let changes = incremental_changes(
            &current(),
            &[
                op("retention.ms", OP_SET, Some("5")),
                op("segment.ms", OP_DELETE, None),
            ],
        )
        .unwrap();
        assert_eq!(changes.get("retention.ms"), Some(&Some("5".to_string())));
        assert_eq!(changes.get("segment.ms"), Some(&None));
        assert_eq!(changes.len(), 2);
    }

    #[test]
    fn append_and_subtract_edit_list_keys_only() {
        let changes = incremental_changes(
            &current(),
            &[op("cleanup.policy", OP_APPEND, Some("compact"))],
        )
        .unwrap();
        assert_eq!(
            changes.get("cleanup.policy"),
            Some(&Some("delete,compact".to_string()))
        );
        let changes = incremental_changes(
            &current(),
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        )
        .unwrap();
        assert_eq!(changes.get("cleanup.policy"), Some(&Some(String::new())));
        assert!(matches!(
            incremental_changes(&current(), &[op("retention.ms", OP_APPEND, Some("1"))]),
            Err(BrokerError::InvalidConfig(_))
        ));
        assert_eq!(edit_list("delete", "delete", true), "delete");
    }

    #[test]
    fn bad_operations_are_invalid_requests() {
        for ops in [
            vec![op("retention.ms", OP_SET, None)],
            vec![op("retention.ms", 9, Some("1"))],
            vec![
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None),
            ],
        ] {
            assert!(
                matches!(
                    incremental_changes(&current(), &ops),
                    Err(BrokerError::InvalidRequest(_))
                ),
                "{ops:?}"
            );
        }
    }
}
