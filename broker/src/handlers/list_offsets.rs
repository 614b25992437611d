//! ListOffsets (v1–7): the offset for a timestamp, or the earliest, latest
//! or max-timestamp offset of each partition.
//!
//! | timestamp | answer |
//! |---|---|
//! | -2 EARLIEST | the log start offset |
//! | -1 LATEST | the high watermark (= last stable offset: no transactions) |
//! | -3 MAX_TIMESTAMP (v7+) | the record with the largest timestamp |
//! | t ≥ 0 | the first record with timestamp ≥ t, below the high watermark; offset -1 if none |
//!
//! Only the partition's leader answers (NOT_LEADER_OR_FOLLOWER elsewhere),
//! and a `current_leader_epoch` (v4+) must match the image's
//! (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH otherwise).
//!
//! Storage finds the batch (time index, then batch headers); the exact
//! record inside it is found by walking its records (decompressing when
//! needed, bounded).
//!
//! # Limits
//! - A partition named twice in one request is answered INVALID_REQUEST
//!   (as Kafka does), so a request does at most one lookup per partition.
//! - Each decompression draws from the broker-wide budget and is bounded by
//!   its per-batch size (`decompression_budget.rs`); one request
//!   decompresses at most [`REQUEST_DECOMPRESSED_BYTES_MAX`] in all. A
//!   lookup past either bound is answered REQUEST_TIMED_OUT (retriable),
//!   never with a wrong offset.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::records::{BatchRecords, validate_batch_within};
use sluice_protocol::{CompressionType, DecodeError, RecordBatchView};

use crate::broker::Broker;
use crate::decompression_budget::DecompressionBudget;
use crate::error::BrokerError;
use crate::replica::Partition;
use crate::replica::leadership::leader_partition;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;

/// Decompressed bytes one ListOffsets request may walk, over all its
/// partitions.
pub const REQUEST_DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// What one request may still decompress.
struct Work<'a> {
    budget: &'a DecompressionBudget,
    left: usize,
}

impl Work<'_> {
    /// The records of `view`, decompressed within the broker budget and
    /// what this request has left; `f` sees them while the lease is held.
    fn with_records<T>(
        &mut self,
        view: RecordBatchView<'_>,
        f: impl FnOnce(&BatchRecords<'_>) -> T,
    ) -> Result<T, BrokerError> {
        let exhausted = || {
            BrokerError::Batch(DecodeError::DecompressionBudgetExhausted {
                codec: view.compression().unwrap_or(CompressionType::None),
            })
        };
        let max = self.budget.batch_bytes_max().min(self.left);
        let mut lease = self.budget.lease();
        let records = BatchRecords::new_within(view, max, &mut |n| lease.grow_to(n)).map_err(
            |e| match e {
                DecodeError::DecompressedTooLarge { .. } if max == self.left => exhausted(),
                e => BrokerError::Batch(e),
            },
        )?;
        if view.compression() != Some(CompressionType::None) {
            self.left = self.left.saturating_sub(records.bytes().len());
        }
        Ok(f(&records))
    }
}

pub async fn handle_list_offsets(
    broker: &Arc<Broker>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let image = broker.image();
    let node = broker.identity().node_id;
    let mut seen: HashSet<(&str, i32)> = HashSet::new();
    let duplicates: HashSet<(&str, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.as_str(), p.partition_index))
        })
        .filter(|key| !seen.insert(*key))
        .collect();
    let mut work = Work {
        budget: broker.decompression(),
        left: REQUEST_DECOMPRESSED_BYTES_MAX,
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = if duplicates.contains(&(topic.name.0.as_str(), p.partition_index))
                    {
                        Err(BrokerError::InvalidRequest(format!(
                            "partition {}-{} is named more than once",
                            topic.name.0.as_str(),
                            p.partition_index
                        )))
                    } else {
                        leader_partition(
                            &image,
                            node,
                            broker.replicas(),
                            &topic.name.0,
                            p.partition_index,
                            p.current_leader_epoch,
                        )
                        .and_then(|replica| {
                            lookup(
                                &replica,
                                p.timestamp,
                                p.current_leader_epoch,
                                version,
                                &mut work,
                            )
                        })
                    };
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match answer {
                        // leader_epoch exists from v4; below, it must stay
                        // at its default (-1) or the response does not encode.
                        Ok((offset, timestamp, epoch)) => out
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(e) => out
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp, leader_epoch)` for one partition.
fn lookup(
    replica: &Partition,
    timestamp: i64,
    current_leader_epoch: i32,
    version: i16,
    work: &mut Work<'_>,
) -> Result<(i64, i64, i32), BrokerError> {
    let progress = replica.progress();
    let (found, epoch) = match timestamp {
        EARLIEST | LATEST => {
            let epoch = replica.checked_leader_epoch(current_leader_epoch)?;
            let offset = if timestamp == EARLIEST {
                progress.log_start_offset
            } else {
                progress.high_watermark
            };
            return Ok((offset, -1, epoch));
        }
        MAX_TIMESTAMP if version >= 7 => {
            match replica.batch_with_max_timestamp(current_leader_epoch)? {
                (Some(batch), epoch) => (max_timestamp_record(&batch, work)?, epoch),
                (None, epoch) => (None, epoch),
            }
        }
        t if t >= 0 => match replica.offset_for_timestamp(t, current_leader_epoch)? {
            (Some(batch), epoch) => (first_record_at_or_after(&batch, t, work)?, epoch),
            (None, epoch) => (None, epoch),
        },
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "ListOffsets timestamp {other} is not served"
            )));
        }
    };
    Ok(found
        .filter(|(offset, _)| *offset < progress.high_watermark)
        .map_or((-1, -1, -1), |(o, ts)| (o, ts, epoch)))
}

/// The first record of `batch` with timestamp ≥ `target`.
fn first_record_at_or_after(
    batch: &Bytes,
    target: i64,
    work: &mut Work<'_>,
) -> Result<Option<(i64, i64)>, BrokerError> {
    let view = RecordBatchView::parse(batch, batch.len()).map_err(BrokerError::Batch)?;
    work.with_records(view, |records| {
        records.iter().map_while(Result::ok).find_map(|r| {
            let timestamp = view.base_timestamp().saturating_add(r.timestamp_delta);
            (timestamp >= target)
                .then(|| (view.base_offset() + i64::from(r.offset_delta), timestamp))
        })
    })
}

/// The record of `batch` with the largest timestamp (the first such).
fn max_timestamp_record(
    batch: &Bytes,
    work: &mut Work<'_>,
) -> Result<Option<(i64, i64)>, BrokerError> {
    let view = RecordBatchView::parse(batch, batch.len()).map_err(BrokerError::Batch)?;
    let max = work.budget.batch_bytes_max().min(work.left);
    let mut lease = work.budget.lease();
    let summary =
        validate_batch_within(&view, max, &mut |n| lease.grow_to(n)).map_err(BrokerError::Batch)?;
    work.left = work.left.saturating_sub(summary.uncompressed_bytes);
    Ok(Some((
        view.base_offset() + i64::from(summary.offset_delta_of_max_timestamp),
        summary.max_timestamp,
    )))
}
