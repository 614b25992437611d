//! Fetch (v4–12): read whole batches below the high watermark and send them
//! from the segment files without copying them through user space.
//!
//! ```text
//! per partition, in request order: Partition::read(offset, partition_max_bytes)
//!   → file regions of whole batches (the first non-empty partition may
//!     exceed the limits by one batch, KIP-74)
//! total < min_bytes and max_wait_ms > 0 → wait for any high watermark to
//!   advance (or the deadline), then read again
//! response = encoded head + per partition [encoded fields, regions…]
//! ```
//!
//! Each partition is looked up once per fetch, and only its leader serves
//! it (`replica::leadership`): NOT_LEADER_OR_FOLLOWER elsewhere, and a
//! `current_leader_epoch` (v9+) that disagrees with the metadata image gets
//! FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH. A fetch with a replica id
//! ≥ 0 comes from a follower and is served by `handlers::replica_fetch`.
//!
//! `read_committed` reads below the last stable offset, which equals the
//! high watermark because transactions are not served. Fetch sessions
//! (KIP-227) are not kept: every response carries session id 0, which tells
//! clients to send full requests; an incremental request gets
//! FETCH_SESSION_ID_NOT_FOUND.
//!
//! # Copies
//! Zero in user space for record bytes. Every region is copied once by the
//! kernel, page cache → socket, from the segment's mapping in the reply's
//! `writev` with the encoded parts around it (not by `sendfile`, which
//! would lend the socket page-cache pages that a reused segment file then
//! writes over: `connection::write_parts`). Only the partition headers
//! are encoded in memory.
//!
//! # Limits
//! - `max_bytes` (whole response) and `partition_max_bytes` as the client
//!   asks, capped at [`FETCH_RESPONSE_BYTES_MAX`].
//! - `max_wait_ms` capped at [`FETCH_WAIT_MS_MAX`].

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use sluice_protocol::fetch_response::{
    DivergingEpoch, FetchPart, FetchResponseData, FetchResponsePartition, FetchResponseTopic,
    encode_fetch_response_frame,
};
use sluice_protocol::header::RequestFrame;
use sluice_storage::FileRegion;

use crate::broker::Broker;
use crate::replica::Partition;
use crate::replica::leadership::leader_partition;
use crate::response::{FramePart, Reply, ResponseFrame};

/// Largest fetch response, whatever the client asks (Kafka's
/// `fetch.max.bytes` default is 55 MiB).
pub const FETCH_RESPONSE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Longest long-poll wait, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// One partition's read.
pub(super) struct PartitionRead {
    pub(super) partition: i32,
    pub(super) error: Option<ResponseError>,
    pub(super) high_watermark: i64,
    pub(super) log_start_offset: i64,
    pub(super) regions: Vec<FileRegion>,
    /// A follower's log diverges here (replica fetches, v12+).
    pub(super) diverging: Option<DivergingEpoch>,
}

pub async fn handle_fetch(
    broker: &Arc<Broker>,
    frame: &RequestFrame,
    request: FetchRequest,
) -> Reply {
    let version = frame.api_version();
    let correlation_id = frame.correlation_id();
    if request.session_id != 0 {
        let response = FetchResponseData {
            error_code: ResponseError::FetchSessionIdNotFound.code(),
            ..FetchResponseData::default()
        };
        tracing::debug!(
            session_id = request.session_id,
            "incremental fetch refused: sessions are not kept"
        );
        return reply_now(version, correlation_id, response, Vec::new());
    }
    if request.replica_id.0 >= 0 {
        return super::replica_fetch::handle_replica_fetch(broker, frame, request);
    }
    // Watermarks taken before the first read: an advance between this read
    // and the wait below shows up as a difference, never as a lost wake.
    let replicas = resolve(broker, &request);
    let mut seen = watermarks(&replicas);
    let (reads, bytes, any_error) = read_all(&replicas, &request);
    let min_bytes = u64::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.max(0))
            .unwrap_or(0)
            .min(FETCH_WAIT_MS_MAX),
    );
    if bytes >= min_bytes || any_error || wait.is_zero() {
        return respond(version, correlation_id, &request, reads);
    }
    let broker = Arc::clone(broker);
    Reply::Later(Box::pin(async move {
        let _parked = crate::admin::metrics::METRICS.waiting.fetch(false);
        let deadline = tokio::time::Instant::now() + wait;
        // Every high-watermark advance on the node wakes every waiting
        // fetch; comparing this fetch's own partitions' watermarks first
        // (no locks) keeps a wake for someone else's partition cheap.
        loop {
            let notified = broker.replicas().data_arrived().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = watermarks(&replicas);
            let expired = tokio::time::Instant::now() >= deadline;
            if now == seen && !expired {
                let _ = tokio::time::timeout_at(deadline, notified).await;
                continue;
            }
            seen = now;
            let (reads, bytes, any_error) = read_all(&replicas, &request);
            if bytes >= min_bytes || any_error || expired {
                return match respond(version, correlation_id, &request, reads) {
                    Reply::Now(frame) => Ok(frame),
                    _ => Err("fetch response does not encode".to_string()),
                };
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }))
}

/// Each requested partition, in request order (topic by topic), looked up
/// once per fetch: the error code where this node does not lead it at the
/// stated epoch (`replica::leadership`) or does not host it.
fn resolve(broker: &Broker, request: &FetchRequest) -> Vec<Resolved> {
    let image = broker.image();
    let node = broker.identity().node_id;
    request
        .topics
        .iter()
        .flat_map(|t| {
            let image = &image;
            t.partitions.iter().map(move |p| {
                leader_partition(
                    image,
                    node,
                    broker.replicas(),
                    &t.topic.0,
                    p.partition,
                    p.current_leader_epoch,
                )
                .map_err(|e| e.error_code())
            })
        })
        .collect()
}

/// A requested partition: hosted and led here, or why not.
type Resolved = Result<Arc<Partition>, ResponseError>;

/// The high watermark and log start offset of each hosted partition.
fn watermarks(replicas: &[Resolved]) -> Vec<(i64, i64)> {
    replicas
        .iter()
        .flatten()
        .map(|p| {
            let progress = p.progress();
            (progress.high_watermark, progress.log_start_offset)
        })
        .collect()
}

/// Reads every requested partition; returns the reads, the record bytes
/// found, and whether any partition failed.
fn read_all(
    replicas: &[Resolved],
    request: &FetchRequest,
) -> (Vec<(usize, Vec<PartitionRead>)>, u64, bool) {
    let mut replicas = replicas.iter();
    let mut budget = u32::try_from(request.max_bytes.max(0))
        .unwrap_or(0)
        .min(FETCH_RESPONSE_BYTES_MAX);
    let mut total: u64 = 0;
    let mut any_error = false;
    let mut out = Vec::with_capacity(request.topics.len());
    for (ti, topic) in request.topics.iter().enumerate() {
        let mut reads = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let limit = u32::try_from(p.partition_max_bytes.max(0))
                .unwrap_or(0)
                .min(budget);
            let replica = replicas.next().ok_or(ResponseError::UnknownServerError);
            let read = read_partition(
                replica,
                p.partition,
                p.fetch_offset,
                limit,
                total == 0,
                p.current_leader_epoch,
            );
            let size: u64 = read.regions.iter().map(|r| r.len()).sum();
            total += size;
            budget = budget.saturating_sub(u32::try_from(size).unwrap_or(u32::MAX));
            any_error |= read.error.is_some();
            reads.push(read);
        }
        out.push((ti, reads));
    }
    (out, total, any_error)
}

fn read_partition(
    replica: Result<&Resolved, ResponseError>,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    first: bool,
    current_leader_epoch: i32,
) -> PartitionRead {
    let failed = |e: ResponseError, hw: i64, start: i64| PartitionRead {
        partition,
        error: Some(e),
        high_watermark: hw,
        log_start_offset: start,
        regions: Vec::new(),
        diverging: None,
    };
    let replica = match replica.and_then(|r| r.as_ref().map_err(|e| *e)) {
        Ok(replica) => replica,
        Err(e) => return failed(e, -1, -1),
    };
    match replica.read(offset, max_bytes, first, current_leader_epoch) {
        Ok(read) => {
            let (bytes, records) = read
                .regions
                .iter()
                .fold((0, 0), |(b, n), r| (b + r.len(), n + r.records()));
            replica.traffic().fetched(bytes, records);
            PartitionRead {
                partition,
                error: None,
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
                regions: read.regions,
                diverging: None,
            }
        }
        Err(e) => {
            let p = replica.progress();
            failed(e.error_code(), p.high_watermark, p.log_start_offset)
        }
    }
}

pub(super) fn respond(
    version: i16,
    correlation_id: i32,
    request: &FetchRequest,
    reads: Vec<(usize, Vec<PartitionRead>)>,
) -> Reply {
    let mut regions = Vec::new();
    let mut topics = Vec::with_capacity(reads.len());
    for (ti, partitions) in reads {
        let Some(topic) = request.topics.get(ti) else {
            continue;
        };
        let mut out = Vec::with_capacity(partitions.len());
        for read in partitions {
            let lengths = read
                .regions
                .iter()
                .map(|r| usize::try_from(r.len()).unwrap_or(usize::MAX))
                .collect();
            regions.extend(read.regions);
            out.push(FetchResponsePartition {
                partition_index: read.partition,
                error_code: read.error.map_or(0, |e| e.code()),
                high_watermark: read.high_watermark,
                last_stable_offset: read.high_watermark,
                log_start_offset: read.log_start_offset,
                diverging_epoch: read.diverging.unwrap_or_default(),
                record_regions: lengths,
                ..FetchResponsePartition::default()
            });
        }
        topics.push(FetchResponseTopic {
            name: topic.topic.clone(),
            partitions: out,
        });
    }
    let response = FetchResponseData {
        topics,
        ..FetchResponseData::default()
    };
    reply_now(version, correlation_id, response, regions)
}

/// Frames the response: the encoder's parts in order, with each region's
/// bytes sent from its file where the encoder left room for them.
pub(super) fn reply_now(
    version: i16,
    correlation_id: i32,
    response: FetchResponseData,
    regions: Vec<FileRegion>,
) -> Reply {
    let encoded = match encode_fetch_response_frame(&response, version, correlation_id) {
        Ok(e) => e,
        Err(e) => return Reply::Close(format!("fetch response does not encode: {e}")),
    };
    let mut regions: Vec<Option<FileRegion>> = regions.into_iter().map(Some).collect();
    let mut parts = Vec::with_capacity(encoded.parts.len());
    for part in encoded.parts {
        match part {
            FetchPart::Encoded(bytes) => parts.push(FramePart::Bytes(bytes)),
            FetchPart::Records { index, .. } => match regions.get_mut(index).and_then(Option::take)
            {
                Some(region) => parts.push(FramePart::Region(region)),
                None => return Reply::Close(format!("fetch encoder named unknown region {index}")),
            },
        }
    }
    Reply::Now(ResponseFrame::Parts(parts))
}
