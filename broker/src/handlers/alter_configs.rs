//! AlterConfigs (v0–2): replace a topic's whole set of config overrides,
//! and the topic-config change both Alter* APIs end in.
//!
//! Kafka's legacy semantics: the request is the complete new override set.
//! A key it does not name goes back to its default; a key named with a null
//! value does too. The change is one `TopicConfigChanged` record (`Some` to
//! set, `None` to remove), so it applies whole or not at all, survives a
//! restart, and reaches the partition logs through reconcile.
//!
//! ```text
//! per resource ─► named twice in the request?      INVALID_REQUEST
//!   TOPIC  ─► unknown?                              UNKNOWN_TOPIC_OR_PARTITION
//!          ─► a key named twice?                    INVALID_REQUEST
//!          ─► unknown key or bad value?             INVALID_CONFIG, with the reason
//!          ─► validate_only? stop here, change nothing
//!          ─► propose TopicConfigChanged
//!   BROKER ─► INVALID_REQUEST: broker configs are static
//!   other  ─► INVALID_REQUEST
//! ```
//!
//! # Why broker configs are refused
//! Kafka can change some broker settings at runtime (KIP-226 "dynamic
//! broker configs", kept in the metadata log). Sluice reads its broker
//! settings once, from the config file and flags, and sizes its limits
//! (connection permits, request memory budget) from them at start; changing
//! them under a running broker would leave those limits stale. So a BROKER
//! resource is answered with INVALID_REQUEST and a message saying to edit
//! the config file and restart — the code Kafka uses when a request names
//! a broker config that cannot be updated dynamically.
//!
//! # References
//! KIP-133 (AlterConfigs), `ConfigurationControlManager.legacyAlterConfigs`
//! in Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::MetadataRecord;
use crate::settings::resource::{
    RESOURCE_BROKER, RESOURCE_TOPIC, check_broker_resource, topic_resource,
    unexpected_resource_type,
};
use crate::settings::{ConfigError, table, validate_topic_value};

/// Per key: `Some(value)` sets an override, `None` removes it.
pub type ConfigChanges = BTreeMap<String, Option<String>>;

pub async fn handle_alter_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
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
    AlterConfigsResponse::default().with_responses(responses)
}

async fn alter(
    broker: &Arc<Broker>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), BrokerError> {
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let topic = topic_resource(broker, &resource.resource_name)?;
            let changes = replacement(&topic.configs, &resource.configs)?;
            change_topic_config(broker, &topic.name, changes, validate_only).await
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name)?;
            Err(static_broker_configs())
        }
        other => Err(unexpected_resource_type(other)),
    }
}

/// The changes that turn `current` overrides into exactly `wanted`.
fn replacement(
    current: &BTreeMap<String, String>,
    wanted: &[AlterableConfig],
) -> Result<ConfigChanges, BrokerError> {
    let mut changes = ConfigChanges::new();
    for config in wanted {
        let key = config.name.to_string();
        if changes.contains_key(&key) {
            return Err(BrokerError::InvalidRequest(format!(
                "Duplicate config key {key}."
            )));
        }
        changes.insert(key, config.value.as_ref().map(|v| v.to_string()));
    }
    for key in current.keys() {
        changes.entry(key.clone()).or_insert(None);
    }
    Ok(changes)
}

/// Checks `changes` and, unless `validate_only`, makes them durable in one
/// metadata record. Shared by AlterConfigs and IncrementalAlterConfigs.
pub async fn change_topic_config(
    broker: &Arc<Broker>,
    topic: &str,
    changes: ConfigChanges,
    validate_only: bool,
) -> Result<(), BrokerError> {
    validate_changes(&changes)?;
    let record = MetadataRecord::TopicConfigChanged {
        name: topic.to_string(),
        changes,
    };
    if validate_only {
        return broker
            .image()
            .check(&record)
            .map_err(|e| BrokerError::Metadata(e.into()));
    }
    broker.propose(record).await?;
    tracing::info!(topic, "topic config changed");
    Ok(())
}

/// Every key must be one Sluice serves (removing an unknown key is refused
/// too, as Kafka does) and every new value must pass its key's rule.
fn validate_changes(changes: &ConfigChanges) -> Result<(), ConfigError> {
    for (key, value) in changes {
        match value {
            Some(v) => validate_topic_value(key, v)?,
            None if table::topic_setting(key).is_none() => {
                return Err(ConfigError::UnknownKey(key.clone()));
            }
            None => {}
        }
    }
    Ok(())
}

/// The answer to any attempt to alter a BROKER resource.
pub fn static_broker_configs() -> BrokerError {
    BrokerError::InvalidRequest(
        "Sluice broker configs are static: set them in the config file or on the command line and restart the broker"
            .into(),
    )
}

/// Runs `alter` on each resource of an AlterConfigs or
/// IncrementalAlterConfigs request, in order, and returns each one's
/// `(error code, error message)`. A resource named twice is not altered:
/// both entries get INVALID_REQUEST, as Kafka does. Success has a null
/// message, as Kafka sends (the generated default is an empty string).
pub async fn alter_each<'a, R, Fut>(
    resources: &'a [R],
    id: impl Fn(&'a R) -> (i8, &'a str),
    alter: impl Fn(&'a R) -> Fut,
) -> Vec<(i16, Option<StrBytes>)>
where
    Fut: std::future::Future<Output = Result<(), BrokerError>>,
{
    let duplicated = duplicated_resources(resources.iter().map(&id));
    let mut out = Vec::with_capacity(resources.len());
    for resource in resources {
        let result = if duplicated.contains(&id(resource)) {
            Err(BrokerError::InvalidRequest("Duplicate resource.".into()))
        } else {
            alter(resource).await
        };
        out.push(match result {
            Ok(()) => (0, None),
            Err(e) => {
                tracing::debug!(resource = id(resource).1, error = %e, "config change refused");
                (e.code(), Some(StrBytes::from_string(e.to_string())))
            }
        });
    }
    out
}

/// `(resource type, name)` pairs named more than once; Kafka answers each
/// of their entries with INVALID_REQUEST rather than pick one.
fn duplicated_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, &'a str)> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for r in resources {
        if !seen.insert(r) {
            twice.insert(r);
        }
    }
    twice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    }

    #[test]
    fn replacement_reverts_every_key_not_named() {
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_string(), "1000".to_string());
        current.insert("segment.bytes".to_string(), "1048576".to_string());
        let changes = replacement(
            &current,
            &[
                config("retention.ms", Some("2000")),
                config("flush.ms", None),
            ],
        )
        .unwrap();
        let expected: ConfigChanges = [
            ("flush.ms".to_string(), None),
            ("retention.ms".to_string(), Some("2000".to_string())),
            ("segment.bytes".to_string(), None),
        ]
        .into_iter()
        .collect();
        assert_eq!(changes, expected);
    }

    #[test]
    fn a_key_named_twice_is_refused() {
        let twice = [
            config("retention.ms", Some("1")),
            config("retention.ms", Some("2")),
        ];
        assert!(matches!(
            replacement(&BTreeMap::new(), &twice),
            Err(BrokerError::InvalidRequest(_))
        ));
    }

    #[test]
    fn duplicated_resources_are_found() {
        let dups = duplicated_resources([(2, "a"), (2, "b"), (2, "a"), (4, "a")].into_iter());
        assert_eq!(dups.into_iter().collect::<Vec<_>>(), vec![(2, "a")]);
    }
}
