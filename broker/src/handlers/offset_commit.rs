//! OffsetCommit (v2–9): store a group's consumed positions.
//!
//! ```text
//! per partition: topic and partition exist? metadata ≤ offset.metadata.max.bytes?
//! the rest ─► Coordinator::commit_offsets (member and generation checked,
//!             one record per partition appended to __consumer_offsets)
//!          ─► Handled::Later: answer once the records are durable
//! ```
//!
//! `retention_time_ms` (v2–4) is ignored, as Kafka 4 does: retention is
//! the broker's `offsets.retention.minutes`.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Handled;
use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::limits::OFFSET_METADATA_BYTES_MAX;
use crate::group::offsets::CommittedOffset;
use crate::server::now_ms;

pub async fn handle_offset_commit(
    broker: &Arc<Broker>,
    _version: i16,
    request: OffsetCommitRequest,
) -> Handled<OffsetCommitResponse> {
    let now = now_ms();
    let image = broker.image();
    // (topic index, partition index, error) for every partition refused
    // before the commit; the rest share the commit's outcome.
    let mut refused: Vec<(usize, usize, GroupError)> = Vec::new();
    let mut accepted = Vec::new();
    for (ti, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        let partitions = image.topic(&name).map_or(0, |t| t.partition_count());
        for (pi, p) in topic.partitions.iter().enumerate() {
            let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
            if !(0..partitions).contains(&p.partition_index) {
                let e = GroupError::UnknownTopicOrPartition {
                    topic: name.clone(),
                    partition: p.partition_index,
                };
                refused.push((ti, pi, e));
            } else if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                let e = GroupError::OffsetMetadataTooLarge {
                    size: metadata.len(),
                    max: OFFSET_METADATA_BYTES_MAX,
                };
                refused.push((ti, pi, e));
            } else {
                let offset = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: metadata.to_string(),
                    commit_timestamp_ms: now,
                };
                accepted.push((name.clone(), p.partition_index, offset));
            }
        }
    }
    let pending = if accepted.is_empty() {
        None
    } else {
        let member = (
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
            request.generation_id_or_member_epoch,
        );
        Some(
            broker
                .groups()
                .commit_offsets(
                    broker.replicas(),
                    &request.group_id.0,
                    member,
                    accepted,
                    now,
                )
                .await,
        )
    };
    Handled::Later(Box::pin(async move {
        let outcome = match pending {
            None => Ok(()),
            Some(Ok(durable)) => durable.wait().await,
            Some(Err(e)) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::debug!(group = %request.group_id.0.as_str(), error = %e, "offset commit refused");
        }
        let code = outcome.err().map_or(0, |e| e.code());
        response(&request, code, &refused)
    }))
}

fn response(
    request: &OffsetCommitRequest,
    commit_code: i16,
    refused: &[(usize, usize, GroupError)],
) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(ti, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    let code = refused
                        .iter()
                        .find(|(t, q, _)| *t == ti && *q == pi)
                        .map_or(commit_code, |(_, _, e)| e.code());
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
