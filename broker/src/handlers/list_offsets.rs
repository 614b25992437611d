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

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::RecordBatchView;
use sluice_protocol::records::{BatchRecords, validate_batch};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::replica::Partition;
use crate::replica::leadership::leader_partition;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;

/// Bound on the decompressed records of one batch walked to find a
/// timestamp (the broker accepted it under `max.message.bytes`; this is the
/// same expansion bound produce validation uses).
const RECORDS_BYTES_MAX: usize = 64 * 1024 * 1024;

pub async fn handle_list_offsets(
    broker: &Arc<Broker>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
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
                    let answer = leader_partition(
                        &image,
                        node,
                        broker.replicas(),
                        &topic.name.0,
                        p.partition_index,
                        p.current_leader_epoch,
                    )
                    .and_then(|replica| lookup(&replica, p.timestamp, version));
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
    version: i16,
) -> Result<(i64, i64, i32), BrokerError> {
    let progress = replica.progress();
    let epoch = replica.leader_epoch();
    match timestamp {
        EARLIEST => Ok((progress.log_start_offset, -1, epoch)),
        LATEST => Ok((progress.high_watermark, -1, epoch)),
        MAX_TIMESTAMP if version >= 7 => {
            let batch = replica.with_log(|log| log.batch_with_max_timestamp())?;
            Ok(batch
                .and_then(|b| max_timestamp_record(&b))
                .filter(|(offset, _)| *offset < progress.high_watermark)
                .map_or((-1, -1, -1), |(o, t)| (o, t, epoch)))
        }
        t if t >= 0 => {
            let batch = replica.with_log(|log| log.offset_for_timestamp(t))?;
            Ok(batch
                .and_then(|b| first_record_at_or_after(&b, t))
                .filter(|(offset, _)| *offset < progress.high_watermark)
                .map_or((-1, -1, -1), |(o, ts)| (o, ts, epoch)))
        }
        other => Err(BrokerError::InvalidRequest(format!(
            "ListOffsets timestamp {other} is not served"
        ))),
    }
}

/// The first record of `batch` with timestamp ≥ `target`.
fn first_record_at_or_after(batch: &Bytes, target: i64) -> Option<(i64, i64)> {
    let view = RecordBatchView::parse(batch, batch.len()).ok()?;
    let records = BatchRecords::new(view, RECORDS_BYTES_MAX).ok()?;
    records.iter().map_while(Result::ok).find_map(|r| {
        let timestamp = view.base_timestamp().saturating_add(r.timestamp_delta);
        (timestamp >= target).then(|| (view.base_offset() + i64::from(r.offset_delta), timestamp))
    })
}

/// The record of `batch` with the largest timestamp (the first such).
fn max_timestamp_record(batch: &Bytes) -> Option<(i64, i64)> {
    let view = RecordBatchView::parse(batch, batch.len()).ok()?;
    let summary = validate_batch(&view, RECORDS_BYTES_MAX).ok()?;
    Some((
        view.base_offset() + i64::from(summary.offset_delta_of_max_timestamp),
        summary.max_timestamp,
    ))
}
