//! DeleteRecords (v0–2): make records below an offset unreadable by moving
//! each partition's log start offset forward.
//!
//! ```text
//! per partition ─► unknown?                                   UNKNOWN_TOPIC_OR_PARTITION
//!               ─► offset -1 ─► the high watermark
//!               ─► offset < -1, or > high watermark?          OFFSET_OUT_OF_RANGE
//!               ─► PartitionLog::advance_log_start_offset (checkpointed, whole
//!                  segments below it deleted) ─► low_watermark = new log start
//! ```
//!
//! An offset at or below the current log start changes nothing and answers
//! the current log start, as Kafka does. The high watermark, not the log
//! end, is the ceiling: records a consumer cannot yet see cannot be deleted.
//!
//! # Invariants
//! - The log start offset only moves forward, and is durable (checkpointed)
//!   before the answer is sent.
//!
//! # Caveats
//! - The work (a checkpoint fsync, segment deletions) runs on a blocking
//!   thread; `timeout_ms` is not waited on, since one node has no replicas
//!   to wait for.
//!
//! # References
//! KIP-107 (DeleteRecords); `ReplicaManager.deleteRecords` in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::replica::Partition;

/// The request offset that means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn handle_delete_records(
    broker: &Arc<Broker>,
    _version: i16,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let this = Arc::clone(broker);
    let asked: Vec<(TopicName, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let topics = request.topics;
    match tokio::task::spawn_blocking(move || delete_all(&this, &topics)).await {
        Ok(results) => DeleteRecordsResponse::default().with_topics(results),
        Err(e) => {
            // Only a panic gets here; whether any log start moved is
            // unknown, which is what UNKNOWN_SERVER_ERROR says.
            tracing::error!(error = %e, "delete records task failed");
            let results = asked
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|index| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(index)
                                .with_low_watermark(-1)
                                .with_error_code(ResponseError::UnknownServerError.code())
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(name)
                        .with_partitions(partitions)
                })
                .collect();
            DeleteRecordsResponse::default().with_topics(results)
        }
    }
}

fn delete_all(broker: &Broker, topics: &[DeleteRecordsTopic]) -> Vec<DeleteRecordsTopicResult> {
    topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let result = broker
                        .replicas()
                        .partition_or_error(&topic.name.0, p.partition_index)
                        .and_then(|replica| delete_below(&replica, p.offset));
                    match result {
                        Ok(low_watermark) => out.with_low_watermark(low_watermark),
                        Err(e) => {
                            tracing::debug!(topic = %topic.name.0, partition = p.partition_index, error = %e, "delete records refused");
                            out.with_low_watermark(-1).with_error_code(e.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect()
}

/// Advances the log start offset of `replica` to `offset` and returns the
/// resulting log start offset.
fn delete_below(replica: &Partition, offset: i64) -> Result<i64, BrokerError> {
    let progress = replica.progress();
    if progress.failed {
        return Err(BrokerError::StorageFailed);
    }
    let target = target_offset(offset, progress.log_start_offset, progress.high_watermark)?;
    replica.delete_records_below(target)
}

/// The offset the log start moves to, or OFFSET_OUT_OF_RANGE.
fn target_offset(requested: i64, log_start: i64, high_watermark: i64) -> Result<i64, BrokerError> {
    let target = if requested == HIGH_WATERMARK {
        high_watermark
    } else {
        requested
    };
    if target < 0 || target > high_watermark {
        return Err(BrokerError::OffsetOutOfRange {
            requested,
            log_start,
            log_end: high_watermark,
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_bounded_by_the_high_watermark() {
        assert_eq!(target_offset(-1, 0, 10).unwrap(), 10);
        assert_eq!(target_offset(5, 0, 10).unwrap(), 5);
        assert_eq!(target_offset(10, 0, 10).unwrap(), 10);
        // Below the log start: allowed, a no-op in storage.
        assert_eq!(target_offset(2, 4, 10).unwrap(), 2);
        for bad in [11, -2, i64::MIN] {
            assert!(
                matches!(
                    target_offset(bad, 0, 10),
                    Err(BrokerError::OffsetOutOfRange { .. })
                ),
                "{bad}"
            );
        }
    }
}
