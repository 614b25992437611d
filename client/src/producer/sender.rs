//! The sender task: takes sealed batches from the accumulator, groups them
//! by partition leader, sends one Produce request per leader, and resolves
//! each record's future from the response — or puts the batch back for a
//! retry after a backoff.
//!
//! # Invariants
//! - A batch is retried only on a retriable error, at most `retries`
//!   times, and never after its `delivery_timeout`; retrying keeps its
//!   bytes (and so its sequence numbers).
//! - An error that says routing is stale (not leader, unknown topic,
//!   connection lost) refreshes metadata before the retry, so a moved
//!   leader is found.
//! - The task ends only after `close` and once nothing is queued or in
//!   flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error_code::{ErrorCode, ResponseError};

use super::accumulator::SealedBatch;
use super::{Acks, Inner};
use crate::error::{Error, partition_context};

/// Longest the sender sleeps with nothing to do (it is woken earlier by
/// any send, flush or close).
const IDLE_WAIT: Duration = Duration::from_millis(100);

pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        let force =
            inner.flushing.load(Ordering::Acquire) > 0 || inner.closed.load(Ordering::Acquire);
        let drained = inner.lock().drain(Instant::now(), force);
        for (failure, e) in drained.failed {
            inner.finish(failure.deliveries, failure.buffer_bytes, |_| Err(e.clone()));
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
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sends `batches`, one request per leader, each on its own task so a slow
/// broker does not hold up the others.
async fn dispatch(inner: &Arc<Inner>, batches: Vec<SealedBatch>) {
    let mut by_leader: BTreeMap<i32, Vec<SealedBatch>> = BTreeMap::new();
    for batch in batches {
        let leader = inner.cluster.leader_id(&batch.tp.topic, batch.tp.partition);
        by_leader.entry(leader).or_default().push(batch);
    }
    for (leader, batches) in by_leader {
        let inner = Arc::clone(inner);
        tokio::spawn(async move {
            if leader < 0 {
                let e = Error::kafka(
                    ErrorCode::of(ResponseError::LeaderNotAvailable),
                    "leader unknown",
                    None,
                );
                for b in batches {
                    retry_or_fail(&inner, b, e.clone());
                }
                return;
            }
            produce(&inner, leader, batches).await;
        });
    }
}

async fn produce(inner: &Arc<Inner>, leader: i32, batches: Vec<SealedBatch>) {
    let conn = match inner.cluster.node(leader).await {
        Ok(c) => c,
        Err(e) => {
            for b in batches {
                retry_or_fail(inner, b, e.clone());
            }
            return;
        }
    };
    let request = build_request(inner, &batches);
    let version = match conn.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => {
            for b in batches {
                retry_or_fail(inner, b, e.clone());
            }
            return;
        }
    };
    if inner.config.acks == Acks::None {
        let sent = conn.send_no_response(&request, version).await;
        for b in batches {
            match &sent {
                Ok(()) => succeed(inner, b, -1),
                Err(e) => retry_or_fail(inner, b, e.clone()),
            }
        }
        return;
    }
    match conn.call_at(&request, version).await {
        Ok(response) => handle_response(inner, batches, &response),
        Err(e) => {
            for b in batches {
                retry_or_fail(inner, b, e.clone());
            }
        }
    }
}

fn build_request(inner: &Inner, batches: &[SealedBatch]) -> ProduceRequest {
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for b in batches {
        topics.entry(&b.tp.topic).or_default().push(
            PartitionProduceData::default()
                .with_index(b.tp.partition)
                .with_records(Some(b.data.clone())),
        );
    }
    let timeout_ms =
        i32::try_from(inner.config.client.request_timeout.as_millis()).unwrap_or(i32::MAX);
    ProduceRequest::default()
        .with_acks(inner.config.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partition_data(partitions)
                })
                .collect(),
        )
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
    let partition = batch.tp.partition;
    inner.lock().complete(&batch.tp);
    inner.finish(batch.deliveries, batch.buffer_bytes, |i| {
        let offset = if base_offset < 0 {
            -1
        } else {
            base_offset + i64::try_from(i).unwrap_or(0)
        };
        Ok((partition, offset))
    });
    inner.wake.notify_one();
}

/// Retries `batch` after a backoff if `error` allows it, otherwise fails
/// every record in it.
fn retry_or_fail(inner: &Arc<Inner>, mut batch: SealedBatch, error: Error) {
    let config = &inner.config;
    let backoff = config.client.retry_backoff;
    let in_time = batch.created.elapsed() + backoff < config.delivery_timeout;
    if error.is_retriable() && batch.attempts < config.retries && in_time {
        batch.attempts += 1;
        tracing::debug!(topic = %batch.tp.topic, partition = batch.tp.partition,
            attempt = batch.attempts, error = %error, "retrying produce");
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
    inner.lock().complete(&batch.tp);
    inner.finish(batch.deliveries, batch.buffer_bytes, |_| Err(error.clone()));
    inner.wake.notify_one();
}
