//! CreatePartitions (v0–3): grow a topic's partition count.
//!
//! ```text
//! per topic ─► named twice?                     INVALID_REQUEST
//!           ─► internal topic?                  INVALID_TOPIC_EXCEPTION
//!           ─► unknown?                         UNKNOWN_TOPIC_OR_PARTITION
//!           ─► count ≤ current, or > 100 000?   INVALID_PARTITIONS
//!           ─► assignments: one per new partition, each of the topic's
//!              replication factor, registered brokers, none twice
//!                                               else INVALID_REPLICA_ASSIGNMENT
//!           ─► else placed by the rack-aware round robin, continuing the
//!              topic's (factor > unfenced brokers: INVALID_REPLICATION_FACTOR)
//!           ─► validate_only? check against the image, change nothing
//!           ─► this node's new replicas opened first (a failure: the
//!              error, e.g. retriable KAFKA_STORAGE_ERROR, and nothing made)
//!           ─► propose PartitionsAdded ─► reconcile installs the new logs
//! ```
//!
//! # Invariants
//! - Partition counts only grow (the metadata image refuses anything else);
//!   existing partitions and their data are untouched.
//! - All or nothing on this node, as CreateTopics: a new partition that
//!   cannot be created here leaves the partition count unchanged and no
//!   directory behind (`Broker::propose`, `ReplicaManager::preopen`).
//!
//! # Caveats
//! - Kafka's broker lets an administrator grow `__consumer_offsets`; Sluice
//!   refuses, because the group coordinator maps a group to a partition by
//!   hashing over the partition count, and changing it would orphan every
//!   group's committed offsets.
//!
//! # References
//! `ReplicationControlManager.createPartitions` in Kafka (its error
//! messages are mirrored here).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::{PARTITIONS_PER_TOPIC_MAX, Replication, replica_lists};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metadata::topic_name::is_internal;
use crate::metadata::{MetadataRecord, PartitionRecord};

pub async fn handle_create_partitions(
    broker: &Arc<Broker>,
    _version: i16,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut times_named: BTreeMap<&str, usize> = BTreeMap::new();
    for topic in &request.topics {
        *times_named.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let result = if times_named
            .get(topic.name.0.as_str())
            .is_some_and(|n| *n > 1)
        {
            Err(BrokerError::InvalidRequest("Duplicate topic name.".into()))
        } else {
            grow(broker, topic, request.validate_only).await
        };
        let out = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match result {
            Ok(()) => out,
            Err(e) => {
                tracing::debug!(topic = %topic.name.0, error = %e, "create partitions refused");
                out.with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    broker: &Arc<Broker>,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let name = topic.name.0.as_str();
    if is_internal(name) {
        return Err(BrokerError::InvalidTopic {
            name: name.to_string(),
            reason: "the partition count of an internal topic cannot be changed",
        });
    }
    let image = broker.image();
    let existing = image
        .topic(name)
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })?;
    let current = existing.partition_count();
    check_count(current, topic.count)?;
    // New partitions keep the topic's replication factor (partition 0's).
    let factor = existing.partitions.first().map_or(1, |p| p.replicas.len());
    let replication = match &topic.assignments {
        Some(assignments) => {
            check_assignments(current, topic.count, factor, assignments)?;
            Replication::Manual(
                assignments
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect(),
            )
        }
        None => Replication::Factor(i16::try_from(factor).unwrap_or(i16::MAX)),
    };
    let lists = replica_lists(
        &image,
        current,
        topic.count - current,
        &replication,
        existing.topic_id.as_u128(),
    )?;
    let record = MetadataRecord::PartitionsAdded {
        name: name.to_string(),
        partitions: topic.count,
        assignments: lists
            .into_iter()
            .zip(current..)
            .map(|(replicas, p)| PartitionRecord::new(p, replicas))
            .collect(),
    };
    if validate_only {
        // A real change reserves its replicas in `Broker::propose`.
        broker.replicas().check_partition_budget(&image, &record)?;
        return broker
            .image()
            .check(&record)
            .map_err(|e| BrokerError::Metadata(e.into()));
    }
    broker.propose(record).await?;
    tracing::info!(
        topic = name,
        from = current,
        to = topic.count,
        "partitions added"
    );
    Ok(())
}

fn check_count(current: i32, requested: i32) -> Result<(), BrokerError> {
    if requested < current {
        return Err(BrokerError::InvalidPartitions(format!(
            "The topic currently has {current} partition(s); {requested} would not be an increase."
        )));
    }
    if requested == current {
        return Err(BrokerError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    if requested > PARTITIONS_PER_TOPIC_MAX {
        return Err(BrokerError::InvalidPartitions(format!(
            "partition count {requested} is above the limit of {PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    Ok(())
}

/// Manual assignments: one replica list per new partition, each as long
/// as the topic's replication factor (registration and repeats are checked
/// by `placement::check_manual`).
fn check_assignments(
    current: i32,
    requested: i32,
    factor: usize,
    assignments: &[CreatePartitionsAssignment],
) -> Result<(), BrokerError> {
    let added = i64::from(requested) - i64::from(current);
    if i64::try_from(assignments.len()).ok() != Some(added) {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    if let Some(a) = assignments.iter().find(|a| a.broker_ids.len() != factor) {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {factor} replica(s).",
            a.broker_ids.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn assignment(ids: &[i32]) -> CreatePartitionsAssignment {
        CreatePartitionsAssignment::default()
            .with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect())
    }

    #[test]
    fn count_must_grow_within_the_limit() {
        assert!(check_count(3, 4).is_ok());
        assert!(matches!(
            check_count(3, 3),
            Err(BrokerError::InvalidPartitions(_))
        ));
        assert!(matches!(
            check_count(3, 2),
            Err(BrokerError::InvalidPartitions(_))
        ));
        assert!(matches!(
            check_count(3, PARTITIONS_PER_TOPIC_MAX + 1),
            Err(BrokerError::InvalidPartitions(_))
        ));
    }

    #[test]
    fn assignments_cover_each_new_partition_at_the_topic_factor() {
        assert!(check_assignments(1, 3, 1, &[assignment(&[1]), assignment(&[2])]).is_ok());
        for bad in [
            vec![assignment(&[1])],
            vec![assignment(&[1]), assignment(&[1, 2])],
            vec![assignment(&[1]), assignment(&[])],
        ] {
            assert!(
                matches!(
                    check_assignments(1, 3, 1, &bad),
                    Err(BrokerError::InvalidReplicaAssignment(_))
                ),
                "{bad:?}"
            );
        }
    }
}
