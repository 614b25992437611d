//! The sender task: takes sealed batches from the accumulator, groups them
//! by partition leader, puts them in Produce requests of at most
//! `max_request_size` batch bytes and one batch per partition
//! (`request_split`) on the leader's connection, and resolves each batch
//! from the response — or puts the batch back for a retry after a backoff.
//!
//! ```text
//! loop: drain ─► per leader: split into requests ─► per request: in-flight slot
//!                 ─► request queued on the connection (in this task, so in drain order)
//!                                        └─► response task: resolve | retry
//! ```
//!
//! # Invariants
//! - Requests are queued on a connection by this task alone, in the order
//!   the batches were drained; a connection writes and answers in that
//!   order. With the accumulator's per-partition order this keeps a
//!   partition's batches in sequence order on the wire.
//! - A batch is retried only on a retriable error, at most `retries`
//!   times, and never after its `delivery_timeout`; retrying keeps its
//!   bytes (and so its sequence numbers) unless the epoch is bumped.
//!   OUT_OF_ORDER_SEQUENCE_NUMBER on a batch sealed after one that is
//!   being retried is expected (it was sent behind the gap) and retried
//!   with the same sequences.
//! - Otherwise OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID means
//!   the broker lost this producer's sequence on the partition (a batch
//!   before it failed for good, or the broker forgot the producer): with
//!   idempotence the producer bumps its epoch (KIP-360) — it holds every
//!   batch until none is in flight, asks InitProducerId for a new epoch
//!   (naming the old one, v3+), renumbers every waiting batch from
//!   sequence 0 in its partition's order, and sends them again. Only
//!   batches the broker refused before appending are renumbered: a batch
//!   sent without an answer (connection lost, timeout), or answered with
//!   an error that can follow an append (REQUEST_TIMED_OUT and
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND with acks=all), could be written
//!   already, and under a new epoch the broker could not tell its retry
//!   from new data; it fails instead, so an acknowledged record is never
//!   written twice.
//! - An error that says routing is stale (not leader, unknown topic,
//!   connection lost) refreshes metadata before the retry, so a moved
//!   leader is found.
//! - The task ends only after `close` and once nothing is queued or in
//!   flight.
//!
//! # Caveats
//! - Waiting for a connection's in-flight slot holds up the batches of
//!   every leader, not only that connection's: with one leader (or
//!   balanced leaders) this is the back-pressure wanted; a single stalled
//!   broker slows the others until its requests time out.
//! - The epoch bump holds every partition, not only the one that lost its
//!   sequence: the new epoch (or producer id) is the producer's, and every
//!   partition starts again at sequence 0 under it. Kafka's Java producer
//!   bumps the epoch of an idempotent producer locally, without a request;
//!   a broker that expects InitProducerId first would refuse that, so
//!   this producer asks.
//! - Sluice's broker never answers UNKNOWN_PRODUCER_ID (an unknown
//!   producer is accepted at any sequence, as in Kafka ≥ 2.5); older
//!   Kafka brokers do, and it is handled the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use sluice_protocol::error_code::{ErrorCode, ResponseError};

use super::accumulator::{Released, SealedBatch};
use super::request::{self, PartitionBatch};
use super::request_split::split_into_requests;
use super::{Acks, Inner};
use crate::error::{Error, partition_context};

/// Longest the sender sleeps with nothing to do (it is woken earlier by
/// any send, flush, close or completed request).
const IDLE_WAIT: Duration = Duration::from_millis(100);

pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        let force =
            inner.flushing.load(Ordering::Acquire) > 0 || inner.closed.load(Ordering::Acquire);
        // Registered before draining, so a wake during the drain or the
        // dispatch is not lost.
        let woken = inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let drained = inner.lock().drain(Instant::now(), force);
        for released in drained.failed {
            inner.release(released);
        }
        if drained.bump_epoch {
            bump_epoch(&inner).await;
            continue;
        }
        dispatch(&inner, drained.ready).await;
        if inner.closed.load(Ordering::Acquire) && inner.lock().is_empty() {
            tracing::debug!("producer sender stopped");
            return;
        }
        let wait = drained
            .next_deadline
            .map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Queues `batches` on their leaders' connections, in requests of at most
/// `max_request_size` batch bytes (`request_split`), in order; a task per
/// request awaits its response.
async fn dispatch(inner: &Arc<Inner>, batches: Vec<SealedBatch>) {
    if batches.is_empty() {
        return;
    }
    let mut by_leader: BTreeMap<i32, Vec<SealedBatch>> = BTreeMap::new();
    for batch in batches {
        let leader = inner.cluster.leader_id(&batch.tp.topic, batch.tp.partition);
        by_leader.entry(leader).or_default().push(batch);
    }
    for (leader, batches) in by_leader {
        if leader < 0 {
            let e = Error::kafka(
                ErrorCode::of(ResponseError::LeaderNotAvailable),
                "leader unknown",
                None,
            );
            for b in batches {
                retry_or_fail(inner, b, e.clone());
            }
            continue;
        }
        let requests = split_into_requests(
            batches,
            inner.config.max_request_size,
            |b| &b.tp,
            |b| b.data.len(),
        );
        for mut request in requests {
            // One topic entry per topic in the request.
            request.sort_by(|a, b| a.tp.topic.cmp(&b.tp.topic));
            produce(inner, leader, request).await;
        }
    }
}

async fn produce(inner: &Arc<Inner>, leader: i32, batches: Vec<SealedBatch>) {
    let fail_all = |batches: Vec<SealedBatch>, e: Error| {
        for b in batches {
            retry_or_fail(inner, b, e.clone());
        }
    };
    let conn = match inner.cluster.node(leader).await {
        Ok(c) => c,
        Err(e) => return fail_all(batches, e),
    };
    let version = match conn.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => return fail_all(batches, e),
    };
    let timeout_ms =
        i32::try_from(inner.config.client.request_timeout.as_millis()).unwrap_or(i32::MAX);
    let parts: Vec<PartitionBatch<'_>> = batches
        .iter()
        .map(|b| PartitionBatch {
            topic: &b.tp.topic,
            partition: b.tp.partition,
            data: &b.data,
        })
        .collect();
    let body = match request::encode(&parts, inner.config.acks.wire(), timeout_ms, version) {
        Ok(body) => body,
        Err(e) => return fail_all(batches, e),
    };
    drop(parts);
    let expect_response = inner.config.acks != Acks::None;
    // From here on the request may reach the broker: a failure without
    // its answer leaves each batch possibly written.
    let slot = match conn
        .start_parts(ApiKey::Produce, version, body, expect_response)
        .await
    {
        Ok(slot) => slot,
        Err(e) => {
            for b in batches {
                retry_possibly_written(inner, b, e.clone());
            }
            return;
        }
    };
    let Some(slot) = slot else {
        for b in batches {
            succeed(inner, b, -1);
        }
        return;
    };
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        match conn.finish::<ProduceResponse>(slot).await {
            Ok(response) => handle_response(&inner, batches, &response),
            Err(e) => {
                for b in batches {
                    retry_possibly_written(&inner, b, e.clone());
                }
            }
        }
    });
}

fn handle_response(inner: &Arc<Inner>, batches: Vec<SealedBatch>, response: &ProduceResponse) {
    for b in batches {
        let answer = response
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == &*b.tp.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == b.tp.partition);
        let Some(p) = answer else {
            let e = Error::Protocol(format!(
                "Produce response has no answer for {}",
                partition_context(&b.tp.topic, b.tp.partition)
            ));
            retry_possibly_written(inner, b, e);
            continue;
        };
        let code = ErrorCode::from_code(p.error_code);
        if code.is_none() || code.error() == Some(ResponseError::DuplicateSequenceNumber) {
            succeed(inner, b, p.base_offset);
        } else {
            let mut b = b;
            b.maybe_written |= !refused_unwritten(code);
            let e = Error::kafka(
                code,
                partition_context(&b.tp.topic, b.tp.partition),
                p.error_message.as_ref().map(ToString::to_string),
            );
            retry_or_fail(inner, b, e);
        }
    }
}

/// `batch` was sent and got no answer of its own (connection lost,
/// timeout, a response without it): it may be in the log, so an epoch
/// bump must not renumber it (module docs). Retried or failed as usual.
fn retry_possibly_written(inner: &Arc<Inner>, mut batch: SealedBatch, error: Error) {
    batch.maybe_written = true;
    retry_or_fail(inner, batch, error);
}

/// Whether a produce answered with `code` certainly wrote nothing: the
/// broker refused the batch before its append (Kafka's checks ahead of
/// `UnifiedLog.append`). Any other error may follow an append — an acks=all
/// REQUEST_TIMED_OUT or NOT_ENOUGH_REPLICAS_AFTER_APPEND answers a batch
/// already in the leader's log — so such a batch is not renumbered by an
/// epoch bump.
fn refused_unwritten(code: ErrorCode) -> bool {
    code.error().is_some_and(|e| {
        matches!(
            e,
            ResponseError::NotLeaderOrFollower
                | ResponseError::NotEnoughReplicas
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::LeaderNotAvailable
                | ResponseError::OutOfOrderSequenceNumber
                | ResponseError::UnknownProducerId
                | ResponseError::InvalidProducerEpoch
                | ResponseError::CorruptMessage
                | ResponseError::MessageTooLarge
                | ResponseError::RecordListTooLarge
                | ResponseError::InvalidRecord
                | ResponseError::InvalidTimestamp
                | ResponseError::InvalidRequiredAcks
                | ResponseError::TopicAuthorizationFailed
        )
    })
}

fn succeed(inner: &Inner, batch: SealedBatch, base_offset: i64) {
    inner.lock().complete(&batch, true);
    batch
        .resolver
        .resolve(Ok((batch.tp.partition, base_offset)));
    inner.release(Released {
        buffer_bytes: batch.buffer_bytes,
        records: batch.records,
    });
    inner.wake.notify_one();
}

/// Whether `error` on `batch` may be retried. A lost sequence (see the
/// module docs) asks for an epoch bump, and the batch is retried under
/// the new epoch.
fn retriable(inner: &Inner, batch: &SealedBatch, error: &Error) -> bool {
    let sequence_lost = error.code().and_then(ErrorCode::error).is_some_and(|e| {
        e == ResponseError::OutOfOrderSequenceNumber || e == ResponseError::UnknownProducerId
    });
    if !sequence_lost {
        return error.is_retriable();
    }
    if !inner.config.idempotent {
        return false;
    }
    let mut acc = inner.lock();
    // Sent behind a batch that failed and is being retried: the gap
    // closes when that one is through.
    if !acc.is_behind_retry(batch) {
        tracing::debug!(topic = %batch.tp.topic, partition = batch.tp.partition,
            error = %error, "sequence lost: bumping the producer epoch");
        acc.want_epoch_bump();
    }
    true
}

/// Retries `batch` after a backoff if `error` allows it, otherwise fails
/// every record in it.
fn retry_or_fail(inner: &Arc<Inner>, mut batch: SealedBatch, error: Error) {
    let config = &inner.config;
    let backoff = config.client.retry_backoff;
    let in_time = batch.created.elapsed() + backoff < config.delivery_timeout;
    if retriable(inner, &batch, &error) && batch.attempts < config.retries && in_time {
        batch.attempts += 1;
        tracing::debug!(topic = %batch.tp.topic, partition = batch.tp.partition,
            attempt = batch.attempts, error = %error, "retrying produce");
        // Nothing more of this partition goes out until the batch is back.
        inner.lock().start_recovery(&batch);
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            if error.invalidates_metadata() {
                let topics = [batch.tp.topic.to_string()];
                if let Err(e) = inner.cluster.refresh_metadata(Some(&topics)).await {
                    tracing::debug!(error = %e, "metadata refresh failed");
                }
            }
            inner.lock().requeue(batch);
            inner.wake.notify_one();
        });
        return;
    }
    inner.lock().complete(&batch, false);
    fail(inner, batch, error);
}

/// Resolves every record of `batch` with `error` and returns its buffer.
fn fail(inner: &Inner, batch: SealedBatch, error: Error) {
    batch.resolver.resolve(Err(error));
    inner.release(Released {
        buffer_bytes: batch.buffer_bytes,
        records: batch.records,
    });
    inner.wake.notify_one();
}

/// The epoch bump (KIP-360), called once no batch is in flight: a new
/// producer id and epoch from InitProducerId, then every waiting batch
/// renumbered under it. Batches that may already be written fail (module
/// docs). If the broker does not answer, the bump is tried again after a
/// backoff; batches past their delivery timeout fail meanwhile.
async fn bump_epoch(inner: &Arc<Inner>) {
    let previous = inner.lock().producer();
    match super::init_producer_id(&inner.cluster, Some(previous)).await {
        Ok(next) => {
            tracing::info!(
                producer_id = next.id,
                epoch = next.epoch,
                previous_id = previous.id,
                previous_epoch = previous.epoch,
                "producer epoch bumped: sequences start again at 0"
            );
            let unsure = inner.lock().reset_producer(next);
            for b in unsure {
                let e = Error::kafka(
                    ErrorCode::of(ResponseError::OutOfOrderSequenceNumber),
                    partition_context(&b.tp.topic, b.tp.partition),
                    Some(format!(
                        "sent under producer {} epoch {} without an answer; not re-sent under \
                         the new epoch, where it could be written twice",
                        previous.id, previous.epoch
                    )),
                );
                fail(inner, b, e);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "InitProducerId for the epoch bump failed; retrying");
            let expired = inner
                .lock()
                .take_expired(Instant::now(), inner.config.delivery_timeout);
            for b in expired {
                fail(inner, b, e.clone());
            }
            tokio::time::sleep(inner.config.client.retry_backoff).await;
        }
    }
}
