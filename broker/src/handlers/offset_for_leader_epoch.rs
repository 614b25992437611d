//! OffsetForLeaderEpoch (v2–4): the end offset of a leader epoch, which a
//! consumer uses to detect log truncation after a leader change (KIP-320)
//! and a follower uses to find where its log diverges.
//!
//! The partition must be led by this node at the epoch the metadata image
//! names (`replica::leadership`). Until leader epochs change (replication),
//! the epoch history is a single entry starting at offset 0:
//!
//! | request | answer |
//! |---|---|
//! | unknown partition | UNKNOWN_TOPIC_OR_PARTITION, epoch -1, offset -1 |
//! | this node does not lead it | NOT_LEADER_OR_FOLLOWER |
//! | `current_leader_epoch` ≥ 0 and < current | FENCED_LEADER_EPOCH |
//! | `current_leader_epoch` > current | UNKNOWN_LEADER_EPOCH |
//! | `leader_epoch` = current | (current, log end offset) |
//! | `leader_epoch` otherwise | (-1, -1), no error |
//!
//! The last row is Kafka's `LeaderEpochFileCache.endOffsetFor`: an epoch
//! newer than any known, or an undefined (negative) one, is answered with
//! UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET rather than an error, which
//! the Java fetcher and consumer treat as "no truncation information".
//! The end offset of the current epoch is the log end offset (not the high
//! watermark), as in Kafka.
//!
//! # Caveats
//! - Once replication bumps leader epochs, this needs the per-partition
//!   epoch history (Kafka's `leader-epoch-checkpoint`) to answer older
//!   epochs with the start offset of the next one.
//!
//! # References
//! KIP-101, KIP-279, KIP-320; `Partition.lastOffsetForLeaderEpoch` in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::replica::leadership::leader_partition;

use crate::replica::partition::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

pub async fn handle_offset_for_leader_epoch(
    broker: &Arc<Broker>,
    _version: i16,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = broker.image();
    let node = broker.identity().node_id;
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    let result = leader_partition(
                        &image,
                        node,
                        broker.replicas(),
                        &topic.topic.0,
                        p.partition,
                        p.current_leader_epoch,
                    )
                    .and_then(|replica| {
                        replica.end_offset_for_epoch(p.leader_epoch, p.current_leader_epoch)
                    });
                    match result {
                        Ok((epoch, offset)) => out.with_leader_epoch(epoch).with_end_offset(offset),
                        Err(e) => out
                            .with_error_code(e.code())
                            .with_leader_epoch(UNDEFINED_EPOCH)
                            .with_end_offset(UNDEFINED_EPOCH_OFFSET),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
