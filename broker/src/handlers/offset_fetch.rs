//! OffsetFetch (v1–8): a group's committed offsets. v1–7 ask for one
//! group, v8 for a batch (`groups`); a null topic list (v2+) means every
//! committed partition. A partition with no commit answers offset -1.
//!
//! `require_stable` (v7+) asks to wait out pending transactional commits;
//! Sluice serves no transactions, so every offset is stable and it is
//! ignored.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::offsets::CommittedOffset;

type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

pub async fn handle_offset_fetch(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let fetched =
                    broker
                        .groups()
                        .fetch_offsets(broker.replicas(), &g.group_id.0, topics);
                group_v8(g.group_id.clone(), fetched)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match broker
        .groups()
        .fetch_offsets(broker.replicas(), &request.group_id.0, topics)
    {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(topics_v1(fetched, 0)),
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        // v1 has no top-level error: every requested partition carries it.
        Err(e) => {
            let requested = request
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    let parts = t.partition_indexes.iter().map(|p| (*p, None)).collect();
                    (t.name.0.to_string(), parts)
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics_v1(requested, e.code()))
        }
    }
}

fn topics_v1(fetched: Fetched, code: i16) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, c)| {
                    let (offset, epoch, metadata) = fields(c);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect()
}

fn group_v8(
    group_id: kafka_protocol::messages::GroupId,
    fetched: Result<Fetched, GroupError>,
) -> OffsetFetchResponseGroup {
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            return OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_error_code(e.code());
        }
    };
    let topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, c)| {
                    let (offset, epoch, metadata) = fields(c);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
}

fn fields(c: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}
