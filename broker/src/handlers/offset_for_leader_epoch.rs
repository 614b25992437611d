//! OffsetForLeaderEpoch (v2–4): the end offset of a leader epoch, which a
//! consumer uses to detect log truncation after a leader change (KIP-320)
//! and a follower uses to find where its log diverges.
//!
//! On one node every partition has leader epoch 0 for its whole life, so
//! the epoch history is a single entry starting at offset 0:
//!
//! | request | answer |
//! |---|---|
//! | unknown partition | UNKNOWN_TOPIC_OR_PARTITION, epoch -1, offset -1 |
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

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::replica::Partition;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

pub async fn handle_offset_for_leader_epoch(
    broker: &Arc<Broker>,
    _version: i16,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default().with_partition(p.partition);
                    let result = broker
                        .replicas()
                        .partition_or_error(&topic.topic.0, p.partition)
                        .and_then(|replica| end_offset(&replica, p));
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

/// `(epoch, end offset)` for one partition.
fn end_offset(
    replica: &Partition,
    p: &OffsetForLeaderPartition,
) -> Result<(i32, i64), BrokerError> {
    let current = replica.leader_epoch();
    check_current_epoch(p.current_leader_epoch, current)?;
    if p.leader_epoch != current {
        return Ok((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    }
    if replica.progress().failed {
        return Err(BrokerError::StorageFailed);
    }
    let log_end = replica.with_log(|log| Ok(log.log_end_offset().0))?;
    Ok((current, log_end))
}

/// KIP-320 fencing: a client that states the epoch it believes current
/// (≥ 0; -1 means "not checked") must agree with the partition.
fn check_current_epoch(requested: i32, current: i32) -> Result<(), BrokerError> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested < current {
        Err(BrokerError::FencedLeaderEpoch { requested, current })
    } else {
        Err(BrokerError::UnknownLeaderEpoch { requested, current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_epoch_fencing() {
        assert!(check_current_epoch(-1, 3).is_ok());
        assert!(check_current_epoch(3, 3).is_ok());
        assert!(matches!(
            check_current_epoch(2, 3),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
        assert!(matches!(
            check_current_epoch(4, 3),
            Err(BrokerError::UnknownLeaderEpoch { .. })
        ));
    }
}
