//! AlterPartitionReassignments (v0–1) and ListPartitionReassignments (v0),
//! KIP-455: move a partition's replicas to a target set, or cancel a move.
//!
//! ```text
//! Alter, per partition, on the image (metadata::reassignment):
//!   unknown topic or partition      → UNKNOWN_TOPIC_OR_PARTITION
//!   replicas = null (cancel)        → back to the original replicas, or
//!                                     NO_REASSIGNMENT_IN_PROGRESS
//!   replicas = [..]: empty, repeated or unregistered broker
//!                                   → INVALID_REPLICA_ASSIGNMENT
//!     v1 allowReplicationFactorChange=false and another count
//!                                   → INVALID_REPLICATION_FACTOR
//!     else start: adding replicas open as followers and catch up; the
//!     active controller switches to the target once it is in the ISR
//!   ─► PartitionChangesAt, proposed like every metadata change; answered
//!      once applied (handlers::elect_leaders::settle), not once complete;
//!      not applied within timeoutMs → REQUEST_TIMED_OUT
//! List: every partition with adding or removing replicas (or those of the
//!   topics asked for): replicas, adding, removing.
//! ```
//!
//! # Caveats
//! - No throttle on the catch-up traffic (Kafka's
//!   `leader.replication.throttled.rate`): the new replicas fetch like any
//!   follower, within the replica fetcher's byte bounds.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::elect_leaders::{Decision, by_topic, settle};
use super::request_timeout;
use crate::broker::Broker;
use crate::metadata::reassignment::{ReassignmentError, cancel, check_target, start};
use crate::metadata::{MetadataImage, PartitionImage};

pub async fn handle_alter_partition_reassignments(
    broker: &Arc<Broker>,
    version: i16,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // v0 has no such field: the factor may always change.
    let factor_may_change = version == 0 || request.allow_replication_factor_change;
    let mut asked: Vec<(String, i32)> = Vec::new();
    let mut targets: BTreeMap<(String, i32), Option<Vec<i32>>> = BTreeMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let key = (topic.name.0.to_string(), p.partition_index);
            let target = p
                .replicas
                .as_ref()
                .map(|r| r.iter().map(|b| b.0).collect::<Vec<_>>());
            if targets.insert(key.clone(), target).is_none() {
                asked.push(key);
            }
        }
    }
    let answers = settle(
        broker,
        asked,
        request_timeout(request.timeout_ms),
        |image, key, later| {
            let (topic, partition) = key;
            let Some(p) = image.partition(topic, *partition) else {
                return Decision::Done(
                    ResponseError::UnknownTopicOrPartition.code(),
                    Some(format!("{topic}-{partition} does not exist")),
                );
            };
            let target = targets.get(key).cloned().flatten();
            decide(
                image,
                topic,
                *partition,
                p,
                target,
                factor_may_change,
                later,
            )
        },
    )
    .await;
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(factor_may_change)
        .with_responses(
            by_topic(answers, |partition, code, message| {
                ReassignablePartitionResponse::default()
                    .with_partition_index(partition)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect(),
        )
}

/// One partition of an AlterPartitionReassignments on `image`; `later`
/// after a round whose change was proposed.
fn decide(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    target: Option<Vec<i32>>,
    factor_may_change: bool,
    later: bool,
) -> Decision {
    let refused = |e: ReassignmentError| {
        let code = match &e {
            ReassignmentError::NoneInProgress { .. } => ResponseError::NoReassignmentInProgress,
            ReassignmentError::Invalid(_) => ResponseError::InvalidReplicaAssignment,
        };
        Decision::Done(code.code(), Some(e.to_string()))
    };
    let Some(target) = target else {
        if later && !p.is_reassigning() {
            return Decision::Done(0, None);
        }
        return match cancel(image, topic, partition, p) {
            Ok(change) => Decision::Change(change),
            Err(e) => refused(e),
        };
    };
    // The change of an earlier round took: the move is under way or done.
    if later && p.target_replicas() == target {
        return Decision::Done(0, None);
    }
    if let Err(e) = check_target(image, &target) {
        return refused(e);
    }
    if !factor_may_change && target.len() != p.original_replicas().len() {
        return Decision::Done(
            ResponseError::InvalidReplicationFactor.code(),
            Some(format!(
                "{topic}-{partition} has {} replicas; allowReplicationFactorChange is false",
                p.original_replicas().len()
            )),
        );
    }
    match start(image, topic, partition, p, &target) {
        Ok(Some(change)) => Decision::Change(change),
        Ok(None) => Decision::Done(0, None),
        Err(e) => refused(e),
    }
}

pub async fn handle_list_partition_reassignments(
    broker: &Arc<Broker>,
    _version: i16,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.image();
    let ongoing = |name: &str, index: i32| {
        let p = image.partition(name, index)?;
        p.is_reassigning().then(|| {
            let ids = |list: &[i32]| list.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            OngoingPartitionReassignment::default()
                .with_partition_index(index)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding))
                .with_removing_replicas(ids(&p.removing))
        })
    };
    let mut topics = Vec::new();
    let mut push = |name: &str, partitions: Vec<OngoingPartitionReassignment>| {
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(partitions),
            );
        }
    };
    match &request.topics {
        Some(asked) => {
            for t in asked {
                let found = t
                    .partition_indexes
                    .iter()
                    .filter_map(|p| ongoing(&t.name.0, *p))
                    .collect();
                push(&t.name.0, found);
            }
        }
        None => {
            for t in image.topics() {
                let found = (0..t.partition_count())
                    .filter_map(|p| ongoing(&t.name, p))
                    .collect();
                push(&t.name, found);
            }
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
