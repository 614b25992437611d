//! DescribeConfigs (v1–4): the effective configuration of topics and of
//! this broker, and the config-resource rules the Alter* APIs share.
//!
//! | resource | name | answer |
//! |---|---|---|
//! | TOPIC (2) | an existing topic | every key Sluice serves ([`TopicConfig::resolve`]), writable |
//! | BROKER (4) | this node's id, or "" | the `BrokerConfig` settings that mirror Kafka keys, read-only |
//! | anything else | | INVALID_REQUEST |
//!
//! Config sources, as Kafka reports them: a topic override is
//! DYNAMIC_TOPIC_CONFIG (1); a topic key that falls back to a broker setting
//! the operator changed (`log.retention.ms`, …) is STATIC_BROKER_CONFIG (4);
//! anything else is DEFAULT_CONFIG (5). With `include_synonyms` each entry
//! lists where its value could come from, most specific first. v3+ adds the
//! config type and, with `include_documentation`, a one-line description.
//!
//! An empty or null `configuration_keys` means every key; unknown keys in
//! it are ignored (Kafka's `ConfigHelper` does the same).
//!
//! # Caveats
//! - Broker configs are static (read from the file and flags at start):
//!   every broker entry is read-only; see `alter_configs.rs`.
//!
//! # References
//! KIP-133 (DescribeConfigs), KIP-226 (config sources and synonyms),
//! KIP-569 (config type and documentation); `ConfigHelper` in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::metadata::topic_config::TopicConfig;
use crate::metadata::{TopicImage, topic_name};

/// `ConfigResource.Type.TOPIC`.
pub const RESOURCE_TOPIC: i8 = 2;
/// `ConfigResource.Type.BROKER`.
pub const RESOURCE_BROKER: i8 = 4;

/// `DescribeConfigsResponse.ConfigSource` values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// `ConfigDef.Type` as DescribeConfigs v3+ numbers it.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// What DescribeConfigs says about a topic key beyond its value.
struct TopicKey {
    name: &'static str,
    config_type: i8,
    /// The broker setting the default comes from, as Kafka names it.
    broker_synonym: Option<&'static str>,
    doc: &'static str,
}

const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        config_type: TYPE_LIST,
        broker_synonym: None,
        doc: "How old segments are removed: \"delete\" (compaction is not served yet).",
    },
    TopicKey {
        name: "retention.ms",
        config_type: TYPE_LONG,
        broker_synonym: Some("log.retention.ms"),
        doc: "Longest time a segment is kept before deletion; -1 keeps it forever.",
    },
    TopicKey {
        name: "retention.bytes",
        config_type: TYPE_LONG,
        broker_synonym: None,
        doc: "Largest size a partition grows to before old segments are deleted; -1 means no limit.",
    },
    TopicKey {
        name: "segment.bytes",
        config_type: TYPE_INT,
        broker_synonym: Some("log.segment.bytes"),
        doc: "Size at which a segment file is rolled.",
    },
    TopicKey {
        name: "segment.ms",
        config_type: TYPE_LONG,
        broker_synonym: None,
        doc: "Age at which a segment is rolled even if not full.",
    },
    TopicKey {
        name: "segment.index.bytes",
        config_type: TYPE_INT,
        broker_synonym: None,
        doc: "Size of each segment's offset index file.",
    },
    TopicKey {
        name: "index.interval.bytes",
        config_type: TYPE_INT,
        broker_synonym: None,
        doc: "Bytes of log between two offset index entries.",
    },
    TopicKey {
        name: "max.message.bytes",
        config_type: TYPE_INT,
        broker_synonym: Some("message.max.bytes"),
        doc: "Largest record batch the topic accepts.",
    },
    TopicKey {
        name: "flush.messages",
        config_type: TYPE_LONG,
        broker_synonym: None,
        doc: "Messages appended between forced fsyncs (page_cache durability).",
    },
    TopicKey {
        name: "flush.ms",
        config_type: TYPE_LONG,
        broker_synonym: None,
        doc: "Milliseconds between forced fsyncs (page_cache durability).",
    },
    TopicKey {
        name: "min.insync.replicas",
        config_type: TYPE_INT,
        broker_synonym: None,
        doc: "Replicas that must hold an acks=all write; 1 on a single node.",
    },
    TopicKey {
        name: "message.timestamp.type",
        config_type: TYPE_STRING,
        broker_synonym: None,
        doc: "Record timestamps are the producer's (CreateTime).",
    },
    TopicKey {
        name: "compression.type",
        config_type: TYPE_STRING,
        broker_synonym: None,
        doc: "Batches are stored as the producer compressed them.",
    },
];

/// One broker setting as DescribeConfigs shows it.
struct BrokerEntry {
    name: &'static str,
    value: Option<String>,
    is_default: bool,
    config_type: i8,
    doc: &'static str,
}

pub async fn handle_describe_configs(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let options = Options {
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
            match describe(broker, resource, &options) {
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

struct Options {
    version: i16,
    synonyms: bool,
    documentation: bool,
}

fn describe(
    broker: &Broker,
    resource: &DescribeConfigsResource,
    options: &Options,
) -> Result<Vec<DescribeConfigsResourceResult>, BrokerError> {
    let wanted = |name: &str| match &resource.configuration_keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    };
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let topic = topic_resource(broker, &resource.resource_name)?;
            Ok(describe_topic(broker, &topic, options, wanted))
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name)?;
            Ok(broker_entries(broker.config())
                .into_iter()
                .filter(|e| wanted(e.name))
                .map(|e| broker_result(e, options))
                .collect())
        }
        other => Err(unexpected_resource_type(other)),
    }
}

/// The existing topic a TOPIC resource names.
pub fn topic_resource(broker: &Broker, name: &str) -> Result<TopicImage, BrokerError> {
    if let Some(reason) = topic_name::invalid_reason(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason,
        });
    }
    broker
        .image()
        .topic(name)
        .cloned()
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })
}

/// A BROKER resource must name this node, or be "" (the broker answering).
pub fn check_broker_resource(broker: &Broker, name: &str) -> Result<(), BrokerError> {
    let node = broker.identity().node_id;
    if name.is_empty() || name.parse::<i32>().ok() == Some(node) {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "Unexpected broker id, expected {node} or empty string, but received {name}"
        )))
    }
}

/// Resource types other than TOPIC and BROKER (BROKER_LOGGER, CLIENT_METRICS,
/// GROUP, …) are not served.
pub fn unexpected_resource_type(resource_type: i8) -> BrokerError {
    BrokerError::InvalidRequest(format!(
        "resource type {resource_type} is not served; Sluice serves TOPIC (2) and BROKER (4)"
    ))
}

fn describe_topic(
    broker: &Broker,
    topic: &TopicImage,
    options: &Options,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let defaults = broker.replicas().defaults();
    let effective = TopicConfig::resolve(&topic.configs, defaults);
    let fallback = TopicConfig::resolve(&Default::default(), defaults);
    effective
        .entries()
        .filter(|(name, _, _)| wanted(name))
        .map(|(name, value, is_override)| {
            let key = TOPIC_KEYS.iter().find(|k| k.name == name);
            let default_value = fallback
                .entries()
                .find(|e| e.0 == name)
                .map_or_else(String::new, |e| e.1.to_string());
            let broker_synonym = key.and_then(|k| k.broker_synonym);
            let default_source =
                if broker_synonym.is_some_and(|b| broker_changed(broker.config(), b)) {
                    SOURCE_STATIC_BROKER
                } else {
                    SOURCE_DEFAULT
                };
            let source = if is_override {
                SOURCE_DYNAMIC_TOPIC
            } else {
                default_source
            };
            let mut out = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_string(value.to_string())))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false);
            if options.synonyms {
                let mut synonyms = Vec::with_capacity(2);
                if is_override {
                    synonyms.push(synonym(name, value.to_string(), SOURCE_DYNAMIC_TOPIC));
                }
                let default_name = broker_synonym.unwrap_or(name);
                synonyms.push(synonym(default_name, default_value, default_source));
                out = out.with_synonyms(synonyms);
            }
            if options.version >= 3 {
                let doc = key
                    .filter(|_| options.documentation)
                    .map(|k| StrBytes::from_static_str(k.doc));
                out = out
                    .with_config_type(key.map_or(0, |k| k.config_type))
                    .with_documentation(doc);
            }
            out
        })
        .collect()
}

fn synonym(name: &'static str, value: String, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_source(source)
}

fn broker_result(e: BrokerEntry, options: &Options) -> DescribeConfigsResourceResult {
    let source = if e.is_default {
        SOURCE_DEFAULT
    } else {
        SOURCE_STATIC_BROKER
    };
    let value = e.value.map(StrBytes::from_string);
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(value.clone())
        .with_read_only(true)
        .with_config_source(source)
        .with_is_sensitive(false);
    if options.synonyms {
        out = out.with_synonyms(vec![
            DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(value)
                .with_source(source),
        ]);
    }
    if options.version >= 3 {
        let doc = options
            .documentation
            .then(|| StrBytes::from_static_str(e.doc));
        out = out.with_config_type(e.config_type).with_documentation(doc);
    }
    out
}

/// Whether the operator set the broker setting `key` to something other
/// than Sluice's built-in default.
fn broker_changed(config: &BrokerConfig, key: &str) -> bool {
    broker_entries(config)
        .into_iter()
        .find(|e| e.name == key)
        .is_some_and(|e| !e.is_default)
}

/// The broker settings that mirror Kafka keys, with whether each still has
/// its built-in default.
fn broker_entries(c: &BrokerConfig) -> Vec<BrokerEntry> {
    let d = BrokerConfig::default();
    let listener = |a: &std::net::SocketAddr| format!("PLAINTEXT://{a}");
    let entry = |name, value: String, default: String, config_type, doc| BrokerEntry {
        name,
        is_default: value == default,
        value: Some(value),
        config_type,
        doc,
    };
    vec![
        entry(
            "node.id",
            c.node_id.to_string(),
            d.node_id.to_string(),
            TYPE_INT,
            "This node's id.",
        ),
        entry(
            "broker.id",
            c.node_id.to_string(),
            d.node_id.to_string(),
            TYPE_INT,
            "This node's id (Kafka's older name).",
        ),
        entry(
            "log.dirs",
            c.data_dir.display().to_string(),
            d.data_dir.display().to_string(),
            TYPE_STRING,
            "Directory of partition logs and the metadata log.",
        ),
        entry(
            "listeners",
            listener(&c.listen),
            listener(&d.listen),
            TYPE_LIST,
            "Address the Kafka listener binds.",
        ),
        BrokerEntry {
            name: "advertised.listeners",
            is_default: c.advertised.is_none(),
            value: c.advertised.as_ref().map(|a| format!("PLAINTEXT://{a}")),
            config_type: TYPE_LIST,
            doc: "Address clients are told to connect to; null means the bound address.",
        },
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            d.auto_create_topics_enable.to_string(),
            TYPE_BOOLEAN,
            "Metadata and Produce for an unknown topic create it.",
        ),
        entry(
            "num.partitions",
            c.num_partitions.to_string(),
            d.num_partitions.to_string(),
            TYPE_INT,
            "Partitions of an auto-created topic.",
        ),
        entry(
            "default.replication.factor",
            "1".into(),
            "1".into(),
            TYPE_INT,
            "Replicas of a new topic; 1 on a single node.",
        ),
        entry(
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            d.message_max_bytes.to_string(),
            TYPE_INT,
            "Largest record batch accepted unless a topic's max.message.bytes says otherwise.",
        ),
        entry(
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            d.socket_request_max_bytes.to_string(),
            TYPE_INT,
            "Largest request frame accepted.",
        ),
        entry(
            "max.connections",
            c.max_connections.to_string(),
            d.max_connections.to_string(),
            TYPE_INT,
            "Most client connections served at once.",
        ),
        entry(
            "queued.max.request.bytes",
            c.queued_max_request_bytes.to_string(),
            d.queued_max_request_bytes.to_string(),
            TYPE_LONG,
            "Request bytes held in memory across connections before readers wait.",
        ),
        entry(
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
            d.connections_max_idle_ms.to_string(),
            TYPE_LONG,
            "Idle time after which a connection is closed.",
        ),
        entry(
            "log.segment.bytes",
            c.log_segment_bytes.to_string(),
            d.log_segment_bytes.to_string(),
            TYPE_INT,
            "Default segment.bytes of topics.",
        ),
        entry(
            "log.retention.ms",
            c.log_retention_ms.to_string(),
            d.log_retention_ms.to_string(),
            TYPE_LONG,
            "Default retention.ms of topics; -1 keeps data forever.",
        ),
        entry(
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            d.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
            "How often retention and segment.ms rolls are checked.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_entries_flag_what_the_operator_changed() {
        let mut c = BrokerConfig::default();
        assert!(broker_entries(&c).iter().all(|e| e.is_default));
        c.log_retention_ms = 1000;
        assert!(broker_changed(&c, "log.retention.ms"));
        assert!(!broker_changed(&c, "num.partitions"));
        let retention = broker_entries(&c)
            .into_iter()
            .find(|e| e.name == "log.retention.ms")
            .unwrap();
        assert_eq!(retention.value.as_deref(), Some("1000"));
    }

    #[test]
    fn every_topic_key_has_a_description() {
        let defaults = crate::metadata::topic_config::TopicDefaults {
            segment_bytes: 1 << 30,
            retention_ms: 1,
            max_message_bytes: 1,
        };
        let resolved = TopicConfig::resolve(&Default::default(), &defaults);
        for (name, _, _) in resolved.entries() {
            assert!(
                TOPIC_KEYS.iter().any(|k| k.name == name),
                "{name} has no TOPIC_KEYS entry"
            );
        }
    }
}
