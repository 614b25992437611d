//! Fetch from a follower (replica id ≥ 0): the leader's side of
//! replication (Kafka's `ReplicaManager.fetchMessages` for a follower).
//!
//! ```text
//! per partition: Partition::read_for_follower
//!   last_fetched_epoch (v12+) not matching this log → diverging_epoch, no records
//!   fetch offset outside [log start, log end]         → OFFSET_OUT_OF_RANGE
//!   else whole batches up to the LOG END (not the high watermark),
//!        the follower's position recorded (ISR expansion, high watermark)
//! ISR expansion proposed → replica::alter_partition (background)
//! nothing to send and max_wait_ms > 0 → wait for an append or a high
//!   watermark move on this node (or the deadline); read again only when
//!   one of this fetch's partitions moved (atomics, no lock); answer at
//!   once when this node starts leading a partition meanwhile (the
//!   follower's next fetch then names it: after a failover, acks=all on
//!   the new leader does not wait out the follower's long poll)
//! ```
//!
//! Only the partition's leader at the follower's `current_leader_epoch`
//! answers (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH /
//! NOT_LEADER_OR_FOLLOWER otherwise, as for consumers).
//!
//! # Copies
//! As for consumers (same `respond` path): zero in user space; the kernel
//! copies record bytes once, page cache → socket (`writev` from the
//! segment's mapping).
//!
//! # Limits
//! The request's `max_bytes` and `partition_max_bytes`, capped as for
//! consumers; `max_wait_ms` capped at [`FETCH_WAIT_MS_MAX`].

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::FetchRequest;
use sluice_protocol::fetch_response::DivergingEpoch;
use sluice_protocol::header::RequestFrame;

use super::fetch::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX, PartitionRead, respond};
use crate::broker::Broker;
use crate::metadata::MetadataImage;
use crate::replica::alter_partition;
use crate::replica::leadership::leader_partition;
use crate::replica::{FollowerFetch, FollowerRead};
use crate::response::Reply;
use crate::server::now_ms;

pub fn handle_replica_fetch(
    broker: &Arc<Broker>,
    frame: &RequestFrame,
    request: FetchRequest,
) -> Reply {
    let version = frame.api_version();
    let correlation_id = frame.correlation_id();
    // Positions taken before the first read: a move between this read and
    // the wait below shows up as a difference, never as a lost wake.
    let partitions = hosted(broker, &request);
    let mut seen = positions(&partitions);
    let leaderships = broker.replicas().leaderships_gained();
    let (reads, bytes, answer_now) = read_all(broker, &request);
    let min_bytes = u64::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.max(0))
            .unwrap_or(0)
            .min(FETCH_WAIT_MS_MAX),
    );
    if bytes >= min_bytes || answer_now || wait.is_zero() {
        return respond(version, correlation_id, &request, reads);
    }
    let broker = Arc::clone(broker);
    Reply::Later(Box::pin(async move {
        let _parked = crate::admin::metrics::METRICS.waiting.fetch(true);
        let deadline = tokio::time::Instant::now() + wait;
        // Every append and high-watermark move on the node wakes every
        // waiting fetch; this one reads again only if one of its own
        // partitions moved since it last read.
        loop {
            let notified = broker.replicas().data_arrived().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = positions(&partitions);
            let expired = tokio::time::Instant::now() >= deadline;
            let leads_more = broker.replicas().leaderships_gained() != leaderships;
            if now == seen && !expired && !leads_more {
                let _ = tokio::time::timeout_at(deadline, notified).await;
                continue;
            }
            seen = now;
            let (reads, bytes, answer_now) = read_all(&broker, &request);
            if bytes >= min_bytes || answer_now || expired || leads_more {
                return match respond(version, correlation_id, &request, reads) {
                    Reply::Now(frame) => Ok(frame),
                    _ => Err("fetch response does not encode".to_string()),
                };
            }
        }
    }))
}

/// This node's replicas of the requested partitions (those it hosts).
fn hosted(broker: &Broker, request: &FetchRequest) -> Vec<Arc<crate::replica::Partition>> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| broker.replicas().partition(&t.topic.0, p.partition))
        })
        .collect()
}

/// Where each partition's log and high watermark end, read from atomics.
fn positions(partitions: &[Arc<crate::replica::Partition>]) -> Vec<(i64, i64)> {
    partitions
        .iter()
        .map(|p| {
            (
                p.high_watermark().leader_log_end(),
                p.progress().high_watermark,
            )
        })
        .collect()
}

/// Reads every requested partition for the follower; returns the reads,
/// the record bytes found, and whether any partition must be answered at
/// once (an error, or a diverging epoch).
fn read_all(
    broker: &Arc<Broker>,
    request: &FetchRequest,
) -> (Vec<(usize, Vec<PartitionRead>)>, u64, bool) {
    let image = broker.image();
    let follower = request.replica_id.0;
    let now = now_ms();
    let mut budget = u32::try_from(request.max_bytes.max(0))
        .unwrap_or(0)
        .min(FETCH_RESPONSE_BYTES_MAX);
    let mut total: u64 = 0;
    let mut answer_now = false;
    let mut out = Vec::with_capacity(request.topics.len());
    for (ti, topic) in request.topics.iter().enumerate() {
        let mut reads = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let fetch = FollowerFetch {
                follower,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                current_leader_epoch: p.current_leader_epoch,
                follower_eligible: image.is_unfenced(follower),
                max_bytes: u32::try_from(p.partition_max_bytes.max(0))
                    .unwrap_or(0)
                    .min(budget),
                min_one_batch: total == 0,
                now_ms: now,
            };
            let read = read_partition(broker, &image, &topic.topic.0, p.partition, &fetch);
            let size: u64 = read.regions.iter().map(|r| r.len()).sum();
            total += size;
            budget = budget.saturating_sub(u32::try_from(size).unwrap_or(u32::MAX));
            answer_now |= read.error.is_some() || read.diverging.is_some();
            reads.push(read);
        }
        out.push((ti, reads));
    }
    (out, total, answer_now)
}

fn read_partition(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    fetch: &FollowerFetch,
) -> PartitionRead {
    let failed = |e: crate::error::BrokerError| PartitionRead {
        partition,
        error: Some(e.error_code()),
        high_watermark: -1,
        log_start_offset: -1,
        regions: Vec::new(),
        diverging: None,
    };
    let replica = match leader_partition(
        image,
        broker.identity().node_id,
        broker.replicas(),
        topic,
        partition,
        fetch.current_leader_epoch,
    ) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    match replica.read_for_follower(fetch, |b| image.is_unfenced(b)) {
        Ok((read, change)) => {
            if let Some(change) = change {
                alter_partition::propose(broker, Arc::clone(&replica), change);
            }
            match read {
                FollowerRead::Records(read) => PartitionRead {
                    partition,
                    error: None,
                    high_watermark: read.high_watermark,
                    log_start_offset: read.log_start_offset,
                    regions: read.regions,
                    diverging: None,
                },
                FollowerRead::Diverging {
                    epoch,
                    end_offset,
                    high_watermark,
                    log_start_offset,
                } => PartitionRead {
                    partition,
                    error: None,
                    high_watermark,
                    log_start_offset,
                    regions: Vec::new(),
                    diverging: Some(DivergingEpoch { epoch, end_offset }),
                },
            }
        }
        Err(e) => {
            let p = replica.progress();
            PartitionRead {
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                ..failed(e)
            }
        }
    }
}
