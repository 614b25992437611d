//! CreateTopics (v2–7): create topics with a partition count and config
//! overrides. Also the one place topics come into being, so Metadata's and
//! Produce's auto-creation go through [`create_topic`] too.
//!
//! A single node replicates nothing: replication factor -1 or 1 is served;
//! any other gives INVALID_REPLICATION_FACTOR, as Kafka does when there are
//! fewer brokers than the factor. Manual replica assignments must name this
//! node only.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::{MetadataRecord, TopicImage, topic_name};
use crate::settings::describe::created_topic_configs;
use crate::settings::{TopicConfig, validate_topic_values};

/// Most partitions one topic may have on this node.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;

/// Creates `name` (or checks that it could be created, with `validate_only`).
pub async fn create_topic(
    broker: &Arc<Broker>,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicImage, BrokerError> {
    if let Some(reason) = topic_name::invalid_reason(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason,
        });
    }
    let partitions = if partitions == -1 {
        broker.config().num_partitions
    } else {
        partitions
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(BrokerError::InvalidPartitions(format!(
            "partition count {partitions} outside 1..={PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    // Internal topics (`__consumer_offsets`) are what the broker needs to
    // work at all: they are not refused by the budget, only counted in it.
    if !topic_name::is_internal(name) {
        broker
            .replicas()
            .check_partition_budget(&broker.image(), partitions)?;
    }
    let record = MetadataRecord::TopicCreated {
        name: name.to_string(),
        topic_id: uuid::Uuid::new_v4(),
        partitions,
        configs,
    };
    let image = if validate_only {
        broker
            .image()
            .check(&record)
            .map_err(|e| BrokerError::Metadata(e.into()))?;
        return Ok(topic_from(&record));
    } else {
        broker.propose(record).await?
    };
    image
        .topic(name)
        .cloned()
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })
}

fn topic_from(record: &MetadataRecord) -> TopicImage {
    match record {
        MetadataRecord::TopicCreated {
            name,
            topic_id,
            partitions,
            configs,
        } => TopicImage {
            name: name.clone(),
            topic_id: *topic_id,
            partitions: *partitions,
            configs: configs.clone(),
        },
        _ => TopicImage {
            name: String::new(),
            topic_id: uuid::Uuid::nil(),
            partitions: 0,
            configs: BTreeMap::new(),
        },
    }
}

pub async fn handle_create_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = create_one(broker, &topic, request.validate_only).await;
        let mut out = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        match result {
            Ok(image) => {
                out = out
                    .with_topic_id(image.topic_id)
                    .with_num_partitions(image.partitions)
                    .with_replication_factor(1);
                if version >= 5 {
                    out.configs = Some(describe(broker, &image));
                }
            }
            Err(e) => {
                tracing::debug!(topic = %name, error = %e, "create topic refused");
                out = out
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())));
            }
        }
        results.push(out);
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create_one(
    broker: &Arc<Broker>,
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<TopicImage, BrokerError> {
    let node = broker.identity().node_id;
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "replication factor {} is larger than the 1 available broker",
            topic.replication_factor
        )));
    }
    let mut partitions = topic.num_partitions;
    if !topic.assignments.is_empty() {
        if topic
            .assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1)
        {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "assignments may name only broker {node}, once"
            )));
        }
        partitions = i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX);
    }
    let mut configs = BTreeMap::new();
    for c in &topic.configs {
        // A null value means "use the default": no override.
        if let Some(value) = &c.value {
            configs.insert(c.name.to_string(), value.to_string());
        }
    }
    // Every key and value is checked here, before anything is written;
    // the image checks them again for the other creation paths.
    validate_topic_values(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    create_topic(broker, &topic.name.0, partitions, configs, validate_only).await
}

fn describe(
    broker: &Broker,
    topic: &TopicImage,
) -> Vec<kafka_protocol::messages::create_topics_response::CreatableTopicConfigs> {
    created_topic_configs(&TopicConfig::resolve(
        &topic.configs,
        broker.replicas().defaults(),
    ))
}
