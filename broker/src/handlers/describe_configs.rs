//! DescribeConfigs (v1–4): the effective configuration of topics and of
//! this broker, answered from the settings table (`crate::settings`).
//!
//! | resource | name | answer |
//! |---|---|---|
//! | TOPIC (2) | an existing topic | every topic key ([`TopicConfig::resolve`]), writable |
//! | BROKER (4) | this node's id, or "" | the broker settings of the table, read-only |
//! | anything else | | INVALID_REQUEST |
//!
//! Sources, synonyms, config type and documentation are described in
//! `settings/describe.rs`. An empty or null `configuration_keys` means
//! every key; unknown keys in it are ignored (Kafka's `ConfigHelper` does
//! the same).
//!
//! # References
//! KIP-133 (DescribeConfigs), KIP-226 (config sources and synonyms),
//! KIP-569 (config type and documentation); `ConfigHelper` in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::settings::TopicConfig;
use crate::settings::describe::{DescribeOptions, describe_broker, describe_topic};
use crate::settings::resource::{
    RESOURCE_BROKER, RESOURCE_TOPIC, check_broker_resource, topic_resource,
    unexpected_resource_type,
};

pub async fn handle_describe_configs(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let options = DescribeOptions {
        version,
        synonyms: request.include_synonyms,
        documentation: version >= 3 && request.include_documentation,
    };
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match describe(broker, resource, options) {
                // Kafka sends a null message on success; the generated
                // default is an empty string.
                Ok(configs) => out.with_error_message(None).with_configs(configs),
                Err(e) => {
                    tracing::debug!(resource = %resource.resource_name, error = %e, "describe configs refused");
                    out.with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string())))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    broker: &Broker,
    resource: &DescribeConfigsResource,
    options: DescribeOptions,
) -> Result<Vec<DescribeConfigsResourceResult>, BrokerError> {
    let wanted = |name: &str| match &resource.configuration_keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    };
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let topic = topic_resource(broker, &resource.resource_name)?;
            let config = TopicConfig::resolve(&topic.configs, broker.replicas().defaults());
            Ok(describe_topic(&config, options, wanted))
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name)?;
            Ok(describe_broker(broker.config(), options, wanted))
        }
        other => Err(unexpected_resource_type(other)),
    }
}
