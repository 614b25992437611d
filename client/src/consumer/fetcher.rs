//! Fetch requests and their decoding: one request per partition leader,
//! run on its own task so the next fetch is already in flight while the
//! application processes the last one (prefetch).
//!
//! Record bytes stay in the response frame: an uncompressed batch is a
//! `Bytes` slice of it; a compressed batch is decompressed once (bounded by
//! `limits::DECOMPRESSED_BATCH_BYTES_MAX`). Records are views into those
//! bytes ([`FetchedBatch`]).
//!
//! # Invariants
//! - Every batch's CRC-32C is checked before its records are read (Kafka's
//!   `check.crcs`).
//! - Records below the fetch position are skipped (a fetch returns whole
//!   batches, which may start before it); control batches are skipped.
//! - A trailing partial batch (the broker cut the response at
//!   `max_bytes`) ends the partition's records without error.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::compression::{CompressionType, decompress};
use sluice_protocol::{BatchIter, DecodeError};

use crate::cluster::Cluster;
use crate::consumer::FetchedBatch;
use crate::error::{Result, protocol};
use crate::limits::DECOMPRESSED_BATCH_BYTES_MAX;

/// One partition to fetch, at `offset`, tagged with the seek epoch it was
/// issued under (a later seek makes the answer stale).
#[derive(Debug, Clone)]
pub(crate) struct FetchTarget {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub epoch: u64,
}

/// Fetch tuning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchOptions {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

/// A finished fetch: what was asked and what came back.
pub(crate) struct FetchOutcome {
    pub leader: i32,
    pub targets: Vec<FetchTarget>,
    pub response: Result<FetchResponse>,
}

/// Fetches `targets` from `leader`.
pub(crate) async fn fetch(
    cluster: Arc<Cluster>,
    leader: i32,
    targets: Vec<FetchTarget>,
    options: FetchOptions,
) -> FetchOutcome {
    let response = async {
        let conn = cluster.node(leader).await?;
        conn.call(&request(&targets, options)).await
    }
    .await;
    FetchOutcome {
        leader,
        targets,
        response,
    }
}

fn request(targets: &[FetchTarget], options: FetchOptions) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for t in targets {
        let partition = FetchPartition::default()
            .with_partition(t.partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(t.offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(options.partition_max_bytes);
        match topics.iter_mut().find(|f| f.topic.0.as_str() == &*t.topic) {
            Some(f) => f.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(options.max_wait_ms)
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(options.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Splits one partition's `records` into batches holding records at or
/// after `from`. Returns the offset to fetch next (past the last batch
/// read, even if every record in it was skipped).
pub(crate) fn decode_batches(
    topic: &Arc<str>,
    partition: i32,
    records: &Bytes,
    from: i64,
    out: &mut Vec<FetchedBatch>,
) -> Result<i64> {
    let mut next = from;
    for item in BatchIter::new(records, records.len().max(1)) {
        let view = match item {
            Ok((_, view)) => view,
            // The broker may cut the last batch short at max_bytes.
            Err(DecodeError::BatchTruncated { .. }) => break,
            Err(e) => return Err(protocol(format!("{topic}/{partition}: {e}"))),
        };
        view.verify_crc().map_err(|e| {
            protocol(format!(
                "{topic}/{partition} offset {}: {e}",
                view.base_offset()
            ))
        })?;
        let last = view.last_offset();
        if view.is_control() || last < from {
            next = next.max(last + 1);
            continue;
        }
        let codec = view
            .compression()
            .ok_or_else(|| protocol(format!("{topic}/{partition}: unknown codec")))?;
        let body = match codec {
            CompressionType::None => records.slice_ref(view.records()),
            codec => decompress(codec, view.records(), DECOMPRESSED_BATCH_BYTES_MAX)?,
        };
        out.push(FetchedBatch::new(topic, partition, &view, body, from));
        next = next.max(last + 1);
    }
    Ok(next)
}
