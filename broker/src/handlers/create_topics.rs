//! CreateTopics (v2–7): create topics with a partition count, a
//! replication factor or a manual replica assignment, and config overrides.
//! Also the one place topics come into being, so Metadata's and the group
//! coordinator's auto-creation go through [`create_topic`] too.
//!
//! ```text
//! name valid? ─► partitions in 1..=100 000? ─► configs valid?
//!   ─► replicas: manual assignment checked (placement::check_manual), or
//!      placed over the unfenced brokers (placement::assign_replicas):
//!      factor > brokers → INVALID_REPLICATION_FACTOR
//!   ─► TopicCreated with one PartitionRecord per partition (ISR = replicas,
//!      leader = first replica, epochs 0) ─► propose, or only check it
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::placement;
use crate::metadata::{
    BrokerId, MetadataImage, MetadataRecord, PartitionRecord, TopicImage, topic_name,
};
use crate::settings::describe::created_topic_configs;
use crate::settings::{TopicConfig, validate_topic_values};

/// Most partitions one topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;

/// Kafka's `default.replication.factor`, used when a request says -1.
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// Where a new topic's replicas go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// This many replicas per partition, placed by [`placement`]; -1 means
    /// [`DEFAULT_REPLICATION_FACTOR`].
    Factor(i16),
    /// One replica list per partition, chosen by the client.
    Manual(Vec<Vec<BrokerId>>),
}

/// Creates `name` (or checks that it could be created, with `validate_only`).
/// `partitions` of -1 means `num.partitions`; with a manual assignment the
/// partition count is the assignment's.
pub async fn create_topic(
    broker: &Arc<Broker>,
    name: &str,
    partitions: i32,
    replication: Replication,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicImage, BrokerError> {
    if let Some(reason) = topic_name::invalid_reason(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason,
        });
    }
    let partitions = match (&replication, partitions) {
        (Replication::Manual(lists), _) => i32::try_from(lists.len()).unwrap_or(i32::MAX),
        (_, -1) => broker.config().num_partitions,
        (_, n) => n,
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(BrokerError::InvalidPartitions(format!(
            "partition count {partitions} outside 1..={PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    let topic_id = uuid::Uuid::new_v4();
    let image = broker.image();
    let assignments = replica_lists(&image, 0, partitions, &replication, topic_id.as_u128())?;
    let record = MetadataRecord::TopicCreated {
        name: name.to_string(),
        topic_id,
        partitions,
        configs,
        assignments: assignments
            .into_iter()
            .zip(0..)
            .map(|(replicas, p)| PartitionRecord::new(p, replicas))
            .collect(),
    };
    if validate_only {
        // A real creation reserves its replicas in `Broker::propose`.
        // Internal topics (`__consumer_offsets`) are what the broker needs
        // to work at all: they are not refused by the budget, only counted.
        if !topic_name::is_internal(name) {
            broker.replicas().check_partition_budget(&image, &record)?;
        }
        image
            .check(&record)
            .map_err(|e| BrokerError::Metadata(e.into()))?;
        return TopicImage::from_created(&record)
            .ok_or_else(|| BrokerError::InvalidRequest("validate-only topic has no image".into()));
    }
    broker
        .propose(record)
        .await?
        .topic(name)
        .cloned()
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })
}

/// Replica lists for partitions `first..first + count` of a topic: checked
/// when manual, placed over the unfenced brokers otherwise. `seed` is the
/// topic id's bits (the round robin's random start).
pub fn replica_lists(
    image: &MetadataImage,
    first: i32,
    count: i32,
    replication: &Replication,
    seed: u128,
) -> Result<Vec<Vec<BrokerId>>, BrokerError> {
    match replication {
        Replication::Manual(lists) => {
            placement::check_manual(image, lists)?;
            Ok(lists.clone())
        }
        Replication::Factor(factor) => {
            let factor = if *factor == -1 {
                DEFAULT_REPLICATION_FACTOR
            } else {
                *factor
            };
            let candidates = placement::candidates(image);
            Ok(placement::assign_replicas(
                &candidates,
                first,
                count,
                factor,
                seed,
            )?)
        }
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
                    .with_num_partitions(image.partition_count())
                    .with_replication_factor(replication_factor(&image));
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
    let replication = if topic.assignments.is_empty() {
        Replication::Factor(topic.replication_factor)
    } else {
        // Kafka: an assignment excludes a partition count or factor.
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(BrokerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. \
                 Both cannot be used at the same time."
                    .into(),
            ));
        }
        let mut lists = topic.assignments.iter().collect::<Vec<_>>();
        lists.sort_by_key(|a| a.partition_index);
        if lists.iter().zip(0..).any(|(a, p)| a.partition_index != p) {
            return Err(BrokerError::InvalidReplicaAssignment(
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        Replication::Manual(
            lists
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        )
    };
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
    create_topic(
        broker,
        &topic.name.0,
        topic.num_partitions,
        replication,
        configs,
        validate_only,
    )
    .await
}

/// The replica count of a topic's first partition (all have the same).
fn replication_factor(topic: &TopicImage) -> i16 {
    topic
        .partitions
        .first()
        .map_or(-1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX))
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
