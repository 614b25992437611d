//! Produce (served v3–11): validate each partition's record batch, append
//! it as leader, and answer per `acks`.
//!
//! ```text
//! per partition: exactly one RecordBatch v2 ─► size ≤ max.message.bytes
//!   ─► framing, magic 2, CRC-32C, codec, record count
//!   ─► compacted topic: a record without a key → INVALID_RECORD
//!   ─► topic `compression.type` other than `producer` and the batch's codec
//!      differs: recompressed (`sluice_protocol::recompress`), re-checked
//!      against max.message.bytes
//!   ─► timestamps (`replica::timestamps`): CreateTime bounds → INVALID_TIMESTAMP;
//!      header maxTimestamp/type as Kafka writes them (LogAppendTime: now)
//!   ─► Partition::append_as_leader (idempotence check + one copy into the segment)
//! acks=-1 (all): ISR < min.insync.replicas → NOT_ENOUGH_REPLICAS before
//!   the append; after it, answer once the high watermark covers the batch
//!   (every ISR member has it, and with durability=fsync the leader synced
//!   it), NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR fell below
//!   min.insync.replicas meanwhile, REQUEST_TIMED_OUT after timeout_ms
//! acks=1: durability=fsync      answer once this node's fdatasync covers
//!                               the batch (group commit)
//!         durability=page_cache answer right after the append
//! acks=0: no response at all (with fsync the append is still flushed)
//! ```
//!
//! Only the partition's leader (by the metadata image) appends; elsewhere
//! NOT_LEADER_OR_FOLLOWER, and from v10 the response names the leader and
//! its endpoint (KIP-951).
//!
//! On one node the ISR is this node, so acks=1 and acks=all promise the
//! same thing; `docs/durability.md` says exactly what each promises.
//!
//! # Copies
//! The batch bytes are a slice of the request frame (no copy on decode) and
//! are copied once, into the mapped segment; a batch whose header the
//! timestamp rules rewrite (every LogAppendTime batch) is copied once more;
//! a batch the topic's codec recompresses is decompressed, compressed and
//! assembled into a new buffer (three buffers) before that copy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::recompress::{Codec, recompress_within};
use sluice_protocol::records::BatchSummary;
use sluice_protocol::{
    ErrorCode, RecordBatchView, RequestFrame, ResponseError, encode_legacy_produce_error,
};

use super::Handled;
use crate::admin::metrics::METRICS;
use crate::broker::Broker;
use crate::config::DurabilityMode;
use crate::decompression_budget::DecompressionBudget;
use crate::error::BrokerError;
use crate::metadata::MetadataImage;
use crate::metadata::topic_name::is_internal;
use crate::replica::leadership::leader_partition;
use crate::replica::timestamps::{self, TimestampRules};
use crate::replica::{AppendOutcome, Partition};
use crate::server::now_ms;

/// What a produce answer waits for, per `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// This node's written end covers the batch (acks=1 with fsync).
    Written,
    /// The high watermark covers the batch and the ISR still holds
    /// `min_insync` members (acks=all).
    Replicated { min_insync: usize },
}

/// A partition's append that must become durable before the answer.
struct Waiting {
    topic: usize,
    partition: usize,
    replica: Arc<Partition>,
    last_offset: i64,
    /// The leader epoch of the append: the wait fails if it changes.
    leader_epoch: i32,
    until: Option<Until>,
    /// Batch bytes appended (the `sluice_produce_waiting_bytes` gauge).
    bytes: u64,
}

pub async fn handle_produce(
    broker: &Arc<Broker>,
    version: i16,
    request: ProduceRequest,
) -> Handled<ProduceResponse> {
    let acks = request.acks;
    let image = broker.image();
    let mut leaders_named = Vec::new();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let mut waiting = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (pi, data) in topic.partition_data.iter().enumerate() {
            let result = if !matches!(acks, -1..=1) {
                Err(BrokerError::InvalidRequiredAcks(acks))
            } else if request.transactional_id.is_some() {
                Err(BrokerError::Unsupported("transactional produce"))
            } else {
                produce_partition(
                    broker,
                    &image,
                    name,
                    data.index,
                    data.records.as_ref(),
                    acks,
                )
            };
            let response = match result {
                Ok((replica, outcome, min_insync)) => {
                    // In fsync mode every append is flushed, acks=0 too:
                    // the high watermark (what consumers see) only moves
                    // with a flush. acks=0 just does not wait for it.
                    let fsync = broker.replicas().durability() == DurabilityMode::Fsync;
                    let until = match acks {
                        -1 => Some(Until::Replicated { min_insync }),
                        1 if fsync => Some(Until::Written),
                        _ => None,
                    };
                    if fsync || until.is_some() {
                        waiting.push(Waiting {
                            topic: ti,
                            partition: pi,
                            replica,
                            last_offset: outcome.last_offset,
                            leader_epoch: outcome.leader_epoch,
                            until,
                            bytes: data.records.as_ref().map_or(0, |r| r.len() as u64),
                        });
                    }
                    success(data.index, &outcome)
                }
                Err(e) => {
                    tracing::debug!(topic = name, partition = data.index, error = %e, "produce refused");
                    let mut out = failure(data.index, &e);
                    // KIP-951 (v10+): say who leads, so the client need
                    // not wait for a metadata refresh.
                    if let BrokerError::NotLeaderOrFollower {
                        leader,
                        leader_epoch,
                        ..
                    } = e
                        && version >= 10
                    {
                        out.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(leader_epoch);
                        leaders_named.push(leader);
                    }
                    out
                }
            };
            partitions.push(response);
        }
        topics.push(
            TopicProduceResponse::default()
                // A copy, not a slice of the request: a reply that waits
                // for acks keeps none of the request's bytes, so the
                // connection gives their memory back at once (connection.rs).
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_responses(partitions),
        );
    }
    let response = ProduceResponse::default()
        .with_responses(topics)
        .with_node_endpoints(node_endpoints(&image, leaders_named));
    if broker.replicas().durability() == DurabilityMode::Fsync {
        for w in &waiting {
            broker.replicas().flusher().request(&w.replica).await;
        }
    }
    if acks == 0 {
        return Handled::Nothing;
    }
    waiting.retain(|w| w.until.is_some());
    if waiting.is_empty() {
        return Handled::Now(response);
    }
    let timeout = super::request_timeout(request.timeout_ms);
    let parked = METRICS
        .waiting
        .produce(waiting.iter().map(|w| w.bytes).sum());
    Handled::Later(Box::pin(async move {
        let response = await_durable(response, waiting, timeout).await;
        drop(parked);
        response
    }))
}

/// Validates and appends one partition's records; returns the partition,
/// where the batch landed and the topic's `min.insync.replicas`.
fn produce_partition(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    records: Option<&Bytes>,
    acks: i16,
) -> Result<(Arc<Partition>, AppendOutcome, usize), BrokerError> {
    if is_internal(topic) {
        // Kafka: "Cannot append to internal topic" (only the coordinators
        // write there, through the log directly).
        return Err(BrokerError::InvalidTopic {
            name: topic.to_string(),
            reason: "clients may not produce to an internal topic",
        });
    }
    let replica = leader_partition(
        image,
        broker.identity().node_id,
        broker.replicas(),
        topic,
        index,
        -1,
    )?;
    let config = broker.replicas().topic_config(topic);
    let min_insync = config
        .as_deref()
        .map_or(1, crate::settings::TopicConfig::min_insync_replicas);
    let max = config
        .as_deref()
        .map_or(broker.config().message_max_bytes, |c| c.max_message_bytes());
    let rules = config
        .as_deref()
        .map(TimestampRules::of)
        .unwrap_or_default();
    let records = records.ok_or_else(|| BrokerError::InvalidRecord("no records".into()))?;
    let (view, summary) = validate_single_batch(records, max, broker.decompression())?;
    if summary.null_key_records > 0 && config.as_ref().is_some_and(|c| c.compaction().is_some()) {
        // Kafka's LogValidator: "Compacted topic cannot accept message
        // without key" (INVALID_RECORD, the whole batch).
        return Err(BrokerError::InvalidRecord(format!(
            "Compacted topic cannot accept message without key in topic partition {topic}-{index}"
        )));
    }
    let target = config.as_ref().and_then(|c| c.codec());
    let recompressed = match target {
        Some(target) => recompress(&view, target, max, broker.decompression())?,
        None => None,
    };
    let view = match &recompressed {
        Some(batch) => RecordBatchView::parse(batch, max).map_err(BrokerError::Batch)?,
        None => view,
    };
    let now = now_ms();
    // acks=all: NOT_ENOUGH_REPLICAS before the append, under its lock.
    let needs_isr = (acks == -1).then_some(min_insync);
    let outcome = match timestamps::stamp(&view, &summary, &rules, now)? {
        None => replica.append_as_leader(&view, now, needs_isr)?,
        Some(stamped) => {
            // Same length as the batch just validated: parses the same.
            let view = RecordBatchView::parse(&stamped, max).map_err(BrokerError::Batch)?;
            replica.append_as_leader(&view, now, needs_isr)?
        }
    };
    if !outcome.duplicate {
        let records_appended = outcome.last_offset - outcome.base_offset + 1;
        replica.traffic().produced(records.len(), records_appended);
    }
    Ok((replica, outcome, min_insync))
}

/// The checks every produced batch passes before it reaches a log.
///
/// Kafka's rules for magic-2 produce requests: exactly one batch per
/// partition, no larger than `max.message.bytes`, intact (CRC-32C),
/// with a known codec, records that decode and match the header's count,
/// and not a control or transactional batch (transactions are not served).
/// Decompression draws from the broker-wide `budget`, and one batch never
/// decompresses past `budget.batch_bytes_max()`, whatever the topic allows.
pub fn validate_single_batch<'a>(
    records: &'a Bytes,
    max_message_bytes: usize,
    budget: &DecompressionBudget,
) -> Result<(RecordBatchView<'a>, BatchSummary), BrokerError> {
    if records.len() > max_message_bytes {
        return Err(BrokerError::MessageTooLarge {
            size: records.len(),
            max: max_message_bytes,
        });
    }
    let view = RecordBatchView::parse(records, max_message_bytes).map_err(BrokerError::Batch)?;
    if view.size() != records.len() {
        return Err(BrokerError::InvalidRecord(
            "a produce request must carry exactly one record batch per partition".into(),
        ));
    }
    // CRC-32C first (inside validate_batch), so damaged bytes are reported
    // as CORRUPT_MESSAGE whatever field the damage hit; then the codec and
    // every record. The CRC is computed once on this path.
    let mut lease = budget.lease();
    let summary = sluice_protocol::records::validate_batch_within(
        &view,
        budget.batch_bytes_max(),
        &mut |n| lease.grow_to(n),
    )
    .map_err(BrokerError::Batch)?;
    if view.is_control() || view.is_transactional() {
        return Err(BrokerError::InvalidRecord(
            "control and transactional batches are not accepted".into(),
        ));
    }
    Ok((view, summary))
}

/// The batch re-encoded in the topic's codec (`compression.type`), or
/// `None` when it already uses it. Decompression draws from the broker-wide
/// budget, as validation does; a batch that grows past `max.message.bytes`
/// is refused as Kafka refuses it (MESSAGE_TOO_LARGE after recompression).
fn recompress(
    view: &RecordBatchView<'_>,
    target: Codec,
    max_message_bytes: usize,
    budget: &DecompressionBudget,
) -> Result<Option<Bytes>, BrokerError> {
    let mut lease = budget.lease();
    let batch = recompress_within(view, target, budget.batch_bytes_max(), &mut |n| {
        lease.grow_to(n)
    })
    .map_err(BrokerError::Batch)?;
    match batch {
        Some(b) if b.len() > max_message_bytes => Err(BrokerError::MessageTooLarge {
            size: b.len(),
            max: max_message_bytes,
        }),
        other => Ok(other),
    }
}

/// Where a produce waiting for its batch (last offset `last_offset`,
/// appended as leader at `leader_epoch`) stands, given its partition's
/// published progress: the one decision behind an acks=1 (fsync) or
/// acks=all answer, shared with the replication simulation
/// (`broker/tests/sim_controller/`). `isr_len` is asked only once the
/// batch is covered.
pub fn acks_outcome(
    progress: &crate::replica::Progress,
    until: Until,
    last_offset: i64,
    leader_epoch: i32,
    isr_len: impl FnOnce() -> usize,
) -> AcksOutcome {
    if progress.leader_epoch != leader_epoch {
        return AcksOutcome::Deposed;
    }
    if progress.failed {
        return AcksOutcome::Failed;
    }
    let covered = match until {
        Until::Written => progress.written_end > last_offset,
        Until::Replicated { .. } => progress.high_watermark > last_offset,
    };
    match until {
        _ if !covered => AcksOutcome::Waiting,
        // Kafka's checkEnoughReplicasReachOffset: replicated by the whole
        // ISR, but the ISR shrank below the minimum meanwhile.
        Until::Replicated { min_insync } if isr_len() < min_insync => {
            AcksOutcome::NotEnoughReplicasAfterAppend { min_insync }
        }
        _ => AcksOutcome::Done,
    }
}

/// See [`acks_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksOutcome {
    /// Not covered yet.
    Waiting,
    /// Covered: answer success.
    Done,
    /// The partition's leader epoch changed first: NOT_LEADER_OR_FOLLOWER.
    Deposed,
    /// The log directory failed: KAFKA_STORAGE_ERROR.
    Failed,
    /// Covered, but the ISR is below `min.insync.replicas`.
    NotEnoughReplicasAfterAppend { min_insync: usize },
}

async fn await_durable(
    mut response: ProduceResponse,
    waiting: Vec<Waiting>,
    timeout: Duration,
) -> ProduceResponse {
    let deadline = tokio::time::Instant::now() + timeout;
    for w in waiting {
        let Some(until) = w.until else { continue };
        // The wake condition ignores the ISR size: it only matters once
        // the batch is covered, which is a wake either way.
        let settled = |p: &crate::replica::Progress| {
            acks_outcome(p, until, w.last_offset, w.leader_epoch, || 0) != AcksOutcome::Waiting
        };
        let done = tokio::time::timeout_at(deadline, w.replica.wait_for_progress(settled)).await;
        let error = match done {
            // `p` is a copy: asking for the ISR takes the partition's lock.
            Ok(p) => {
                let isr = || w.replica.isr().map_or(0, |isr| isr.len());
                match acks_outcome(&p, until, w.last_offset, w.leader_epoch, isr) {
                    AcksOutcome::Done | AcksOutcome::Waiting => None,
                    // Leadership moved before the batch was covered: the
                    // offsets waited for may now hold the new leader's
                    // records (Kafka answers NOT_LEADER_OR_FOLLOWER then too).
                    AcksOutcome::Deposed => Some(BrokerError::NotLeaderOrFollower {
                        topic: w.replica.topic().to_string(),
                        partition: w.replica.index(),
                        leader: -1,
                        leader_epoch: p.leader_epoch,
                    }),
                    AcksOutcome::NotEnoughReplicasAfterAppend { min_insync } => {
                        Some(BrokerError::NotEnoughReplicasAfterAppend {
                            topic: w.replica.topic().to_string(),
                            partition: w.replica.index(),
                            min_insync,
                        })
                    }
                    AcksOutcome::Failed => Some(BrokerError::StorageFailed),
                }
            }
            Err(_) => Some(BrokerError::RequestTimedOut(
                i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
            )),
        };
        if let Some(e) = error
            && let Some(slot) = response
                .responses
                .get_mut(w.topic)
                .and_then(|t| t.partition_responses.get_mut(w.partition))
        {
            *slot = failure(slot.index, &e);
        }
    }
    response
}

/// KIP-951: the endpoints of the leaders named in `current_leader` fields.
fn node_endpoints(image: &MetadataImage, mut leaders: Vec<i32>) -> Vec<NodeEndpoint> {
    leaders.sort_unstable();
    leaders.dedup();
    leaders
        .into_iter()
        .filter_map(|id| {
            let b = image.broker(id)?;
            let e = b.client_endpoint()?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn success(index: i32, outcome: &AppendOutcome) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(outcome.base_offset)
        .with_log_append_time_ms(outcome.log_append_time_ms)
        .with_log_start_offset(outcome.log_start_offset)
}

fn failure(index: i32, e: &BrokerError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(StrBytes::from_string(e.to_string())))
}

/// The whole response frame (size prefix, header v0, body) to a Produce
/// v0–2 request: UNSUPPORTED_VERSION for every partition it names.
///
/// Those versions carry the v0/v1 message sets Sluice does not store, but
/// Produce is advertised from v0 (see `sluice_protocol::api`), so an old
/// client gets a per-partition error it can report instead of a closed
/// connection. kafka-protocol cannot encode v0–2; the frame is written by
/// `sluice_protocol::encode_legacy_produce_error`, which decodes the body
/// with the bounded (vendored) decoders. `None`: the body does not decode,
/// and the connection is closed.
pub fn unsupported_version_response(request: &RequestFrame) -> Option<Bytes> {
    let error = ErrorCode::of(ResponseError::UnsupportedVersion);
    match encode_legacy_produce_error(request, error) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::debug!(version = request.api_version(), error = %e, "undecodable legacy produce");
            None
        }
    }
}

#[cfg(test)]
mod legacy_tests {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use sluice_protocol::decode_request_header;

    use super::*;

    fn legacy_request(version: i16, body: &[u8]) -> RequestFrame {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("old")))
            .encode(&mut frame, 1)
            .unwrap();
        frame.put_slice(body);
        decode_request_header(frame.freeze()).unwrap()
    }

    /// acks, timeout, [topic "ab", [partition 3 with 5 record bytes]].
    fn body() -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(500);
        b.put_i32(1);
        b.put_i16(2);
        b.put_slice(b"ab");
        b.put_i32(1);
        b.put_i32(3);
        b.put_i32(5);
        b.put_slice(b"12345");
        b.to_vec()
    }

    #[test]
    fn every_legacy_version_gets_unsupported_version_per_partition() {
        for version in 0..=2 {
            let mut out = unsupported_version_response(&legacy_request(version, &body())).unwrap();
            assert_eq!(out.get_i32() as usize, out.len(), "v{version}");
            assert_eq!(out.get_i32(), 9);
            assert_eq!(out.get_i32(), 1);
            assert_eq!(out.get_i16(), 2);
            assert_eq!(out.copy_to_bytes(2).as_ref(), b"ab");
            assert_eq!(out.get_i32(), 1);
            assert_eq!(out.get_i32(), 3);
            assert_eq!(out.get_i16(), 35);
            assert_eq!(out.get_i64(), -1);
            if version >= 2 {
                assert_eq!(out.get_i64(), -1, "log_append_time");
            }
            if version >= 1 {
                assert_eq!(out.get_i32(), 0, "throttle_time_ms");
            }
            assert!(out.is_empty(), "v{version}: {} bytes left", out.len());
        }
    }

    #[test]
    fn truncated_or_hostile_bodies_are_refused_not_allocated() {
        let full = body();
        for cut in 0..full.len() {
            let cut_body = full.get(..cut).unwrap();
            assert!(
                unsupported_version_response(&legacy_request(1, cut_body)).is_none(),
                "cut at {cut}"
            );
        }
        // A topic array claiming i32::MAX entries in a 10-byte body.
        let mut hostile = BytesMut::new();
        hostile.put_i16(1);
        hostile.put_i32(500);
        hostile.put_i32(i32::MAX);
        assert!(unsupported_version_response(&legacy_request(0, &hostile)).is_none());
    }
}
