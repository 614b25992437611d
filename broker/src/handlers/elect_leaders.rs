//! ElectLeaders (v0–2, KIP-183/KIP-460): move partition leaderships to
//! their preferred replica, or elect an out-of-sync replica where no ISR
//! member is alive, through the active controller.
//!
//! ```text
//! partitions asked (null = every partition) ─► on the image, per partition
//!   (metadata::election::asked_election): PREFERRED: the first replica
//!   leads already → ELECTION_NOT_NEEDED; in the ISR and unfenced → elect;
//!   else PREFERRED_LEADER_NOT_AVAILABLE. UNCLEAN: a leader exists →
//!   ELECTION_NOT_NEEDED; an ISR member, else any unfenced replica → elect;
//!   else ELIGIBLE_LEADERS_NOT_AVAILABLE
//!   ─► PartitionChangesAt (each change guarded by its partition epoch)
//!   ─► propose (raft-rs forwards it to the active controller) ─► re-read
//!      the image: the partitions that took answer NONE, the others are
//!      decided again (at most ROUNDS times); a change not applied within
//!      the request's timeoutMs → REQUEST_TIMED_OUT
//! ```
//!
//! With a null partition list Kafka answers only the partitions where an
//! election was tried (ELECTION_NOT_NEEDED ones are left out); so does
//! this handler. v0 has no election type (preferred) and no top-level
//! error code.
//!
//! `settle` is the decide–propose–re-read loop; AlterPartitionReassignments
//! uses it too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::request_timeout;
use crate::broker::Broker;
use crate::controller::balancer::records;
use crate::metadata::election::{ElectionType, NoElection, asked_election};
use crate::metadata::{MetadataImage, PartitionChangeAt};

/// Decide–propose rounds before a partition whose change keeps being
/// overtaken by others is answered REQUEST_TIMED_OUT (retriable).
const ROUNDS: usize = 3;

/// What to do for one partition on the image as it is now.
pub(crate) enum Decision {
    /// Answered: NONE or an error code, with a message.
    Done(i16, Option<String>),
    /// Propose this change, then decide again on the image after it.
    Change(PartitionChangeAt),
}

/// Decides every key on the newest image, proposes the changes, and
/// decides again on the image after them, until each key is answered or
/// [`ROUNDS`] rounds have passed. `decide` gets `later = true` after the
/// first round (a "nothing to do" then means the change took). A change
/// not applied within the request's `timeout` (its `timeoutMs`, as Kafka's
/// controller deadline) is answered REQUEST_TIMED_OUT: it may still take
/// effect, as in Kafka.
pub(crate) async fn settle<K: Ord + Clone>(
    broker: &Arc<Broker>,
    keys: Vec<K>,
    timeout: Duration,
    mut decide: impl FnMut(&MetadataImage, &K, bool) -> Decision,
) -> BTreeMap<K, (i16, Option<String>)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut answers = BTreeMap::new();
    let mut open = keys;
    for round in 0..ROUNDS {
        if open.is_empty() {
            break;
        }
        let image = broker.image();
        let mut changes = Vec::new();
        let mut proposed = Vec::new();
        for key in open.drain(..) {
            match decide(&image, &key, round > 0) {
                Decision::Done(code, message) => {
                    answers.insert(key, (code, message));
                }
                Decision::Change(change) => {
                    changes.push(change);
                    proposed.push(key);
                }
            }
        }
        // The keys in the same order as the changes, chunk by chunk.
        let mut keys = proposed.into_iter();
        for record in records(changes) {
            let count = match &record {
                crate::metadata::MetadataRecord::PartitionChangesAt { changes } => changes.len(),
                _ => 0,
            };
            let chunk: Vec<K> = keys.by_ref().take(count).collect();
            let (code, message) =
                match tokio::time::timeout_at(deadline, broker.propose(record)).await {
                    Ok(Ok(_)) => {
                        open.extend(chunk);
                        continue;
                    }
                    Ok(Err(e)) => (e.code(), e.to_string()),
                    Err(_) => (
                        ResponseError::RequestTimedOut.code(),
                        format!(
                            "not applied within timeoutMs ({} ms); it may still take effect",
                            timeout.as_millis()
                        ),
                    ),
                };
            for key in chunk {
                answers.insert(key, (code, Some(message.clone())));
            }
        }
    }
    for key in open {
        answers.insert(
            key,
            (
                ResponseError::RequestTimedOut.code(),
                Some("the partition kept changing; try again".into()),
            ),
        );
    }
    answers
}

pub async fn handle_elect_leaders(
    broker: &Arc<Broker>,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let kind = if version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_wire(request.election_type)
    };
    let Some(kind) = kind else {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    };
    let image = broker.image();
    let all = request.topic_partitions.is_none();
    let asked: Vec<(String, i32)> = match &request.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        None => image
            .topics()
            .flat_map(|t| (0..t.partition_count()).map(|p| (t.name.clone(), p)))
            .collect(),
    };
    drop(image);
    let timeout = request_timeout(request.timeout_ms);
    let answers = settle(
        broker,
        asked,
        timeout,
        |image, (topic, partition), later| {
            let Some(p) = image.partition(topic, *partition) else {
                return Decision::Done(
                    ResponseError::UnknownTopicOrPartition.code(),
                    Some(format!("{topic}-{partition} does not exist")),
                );
            };
            match asked_election(image, topic, *partition, p, kind) {
                Ok(change) => Decision::Change(change),
                // The change of an earlier round took.
                Err(NoElection::NotNeeded) if later => Decision::Done(0, None),
                Err(no) => {
                    let (error, message) = match no {
                        NoElection::NotNeeded => (
                            ResponseError::ElectionNotNeeded,
                            "leader election not needed",
                        ),
                        NoElection::PreferredNotAvailable => (
                            ResponseError::PreferredLeaderNotAvailable,
                            "the preferred replica is not in the ISR or not live",
                        ),
                        NoElection::NoEligibleLeader => (
                            ResponseError::EligibleLeadersNotAvailable,
                            "no live replica may lead",
                        ),
                    };
                    Decision::Done(error.code(), Some(message.into()))
                }
            }
        },
    )
    .await;
    let answers = answers
        .into_iter()
        .filter(|(_, (code, _))| !(all && *code == ResponseError::ElectionNotNeeded.code()));
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic(answers, |partition, code, message| {
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message)
        })
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic)
                .with_partition_result(partitions)
        })
        .collect(),
    )
}

/// Per-partition answers grouped by topic, in topic then partition order.
pub(crate) fn by_topic<T>(
    answers: impl IntoIterator<Item = ((String, i32), (i16, Option<String>))>,
    result: impl Fn(i32, i16, Option<StrBytes>) -> T,
) -> Vec<(TopicName, Vec<T>)> {
    let mut topics: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for ((topic, partition), (code, message)) in answers {
        topics.entry(topic).or_default().push(result(
            partition,
            code,
            message.map(StrBytes::from_string),
        ));
    }
    topics
        .into_iter()
        .map(|(topic, results)| (TopicName(StrBytes::from_string(topic)), results))
        .collect()
}
