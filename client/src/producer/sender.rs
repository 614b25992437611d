//! The sender task: takes sealed batches from the accumulator, groups them
//! by partition leader, puts one Produce request per leader on its
//! connection, and resolves each batch from the response — or puts the
//! batch back for a retry after a backoff.
//!
//! ```text
//! loop: drain ─► per leader: in-flight slot ─► request queued on the connection
//!                                   (in this task, so in drain order)
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
//!   bytes (and so its sequence numbers). OUT_OF_ORDER_SEQUENCE_NUMBER is
//!   retried only while an earlier batch of the partition is being
//!   retried (it was sent behind a batch that failed), as Kafka's producer
//!   does; otherwise it is final.
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
//! - After a batch fails for good, later batches of its partition fail
//!   with OUT_OF_ORDER_SEQUENCE_NUMBER: Kafka's producer bumps its epoch
//!   and resets sequences (KIP-360); this one does not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use sluice_protocol::error_code::{ErrorCode, ResponseError};

use super::accumulator::{Released, SealedBatch};
use super::request::{self, PartitionBatch};
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

/// Queues `batches`, one request per leader, in order; a task per request
/// awaits its response.
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
        for mut request in rounds(batches) {
            // One topic entry per topic in the request.
            request.sort_by(|a, b| a.tp.topic.cmp(&b.tp.topic));
            produce(inner, leader, request).await;
        }
    }
}

/// Splits `batches` (each partition's in sequence order) into requests
/// that carry at most one batch per partition: the n-th request takes the
/// n-th batch of every partition, so a partition's batches still go out in
/// order, and each answer in a response names exactly one batch.
fn rounds(batches: Vec<SealedBatch>) -> Vec<Vec<SealedBatch>> {
    let mut rounds: Vec<Vec<SealedBatch>> = Vec::new();
    for batch in batches {
        let round = rounds
            .iter()
            .position(|r| !r.iter().any(|b| b.tp == batch.tp))
            .unwrap_or(rounds.len());
        match rounds.get_mut(round) {
            Some(r) => r.push(batch),
            None => rounds.push(vec![batch]),
        }
    }
    rounds
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
    let slot = match conn
        .start_parts(ApiKey::Produce, version, body, expect_response)
        .await
    {
        Ok(slot) => slot,
        Err(e) => return fail_all(batches, e),
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
                    retry_or_fail(&inner, b, e.clone());
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
            retry_or_fail(inner, b, e);
            continue;
        };
        let code = ErrorCode::from_code(p.error_code);
        if code.is_none() || code.error() == Some(ResponseError::DuplicateSequenceNumber) {
            succeed(inner, b, p.base_offset);
        } else {
            let e = Error::kafka(
                code,
                partition_context(&b.tp.topic, b.tp.partition),
                p.error_message.as_ref().map(ToString::to_string),
            );
            retry_or_fail(inner, b, e);
        }
    }
}

fn succeed(inner: &Inner, batch: SealedBatch, base_offset: i64) {
    inner.lock().complete(&batch.tp, true);
    batch
        .resolver
        .resolve(Ok((batch.tp.partition, base_offset)));
    inner.release(Released {
        buffer_bytes: batch.buffer_bytes,
        records: batch.records,
    });
    inner.wake.notify_one();
}

/// Whether `error` on `batch` may be retried.
fn retriable(inner: &Inner, batch: &SealedBatch, error: &Error) -> bool {
    let out_of_order = error
        .code()
        .and_then(ErrorCode::error)
        .is_some_and(|e| e == ResponseError::OutOfOrderSequenceNumber);
    if out_of_order {
        // Sent behind a batch that failed and is being retried.
        return inner.config.idempotent && inner.lock().is_recovering(&batch.tp);
    }
    error.is_retriable()
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
        inner.lock().start_recovery(&batch.tp);
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
    inner.lock().complete(&batch.tp, false);
    batch.resolver.resolve(Err(error));
    inner.release(Released {
        buffer_bytes: batch.buffer_bytes,
        records: batch.records,
    });
    inner.wake.notify_one();
}
