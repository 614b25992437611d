//! One producer worker: a `sluice_client::Producer` (its own connection)
//! fed by a record generator, closed-loop or open-loop.
//!
//! ```text
//! send loop ──(intended instant, DeliveryFuture)──▶ bounded channel ──▶ collector
//!   closed loop: send as fast as the producer's buffer admits;        awaits acks in
//!                latency is measured from the `send` call             send order, records
//!   open loop:   record i is due at start + i / rate; a late record   latency, counts the
//!                is sent at once but measured from when it was due    measured window
//!                (no coordinated omission)
//! ```
//!
//! The collector awaits acknowledgements in send order. Acks of one
//! partition arrive in order; across partitions a record acked early is
//! observed only after the records sent before it, which can overstate
//! its latency by at most the gap between the two acks.
//!
//! # Limits
//! - The send loop stops at the timeline's end or after its record quota,
//!   then flushes for at most [`FLUSH_TIMEOUT`].
//! - Records awaiting their ack are bounded by the producer's
//!   `buffer_bytes` and by [`PENDING_RECORDS_MAX`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::{DeliveryFuture, Producer, ProducerRecord};
use tokio::sync::mpsc;

use crate::latency::Latency;
use crate::progress::Live;
use crate::timeline::Timeline;
use crate::workload::RecordSource;

/// How long a worker waits for outstanding acks after its last send.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Records sent and not yet seen acknowledged by the collector.
const PENDING_RECORDS_MAX: usize = 256 * 1024;

/// What one worker sends.
#[derive(Debug, Clone)]
pub struct Plan {
    pub topic: Arc<str>,
    /// Records per second for this worker; `None`: closed loop.
    pub rate: Option<f64>,
    /// Records this worker sends at most.
    pub records_max: Option<u64>,
}

/// What one worker measured.
#[derive(Default)]
pub struct ProducerOutcome {
    pub sent: u64,
    pub acked: u64,
    /// Acked records whose (intended) send fell in the measured window
    /// (after the warm-up, before the end), whenever their ack came.
    pub measured: u64,
    pub measured_bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Send (or intended send) → ack, for records due after the warm-up.
    pub latency: Latency,
    /// When the last measured record was acknowledged: the measured
    /// window runs from the warm-up's end to here, so records/s is the
    /// rate the broker really served, even when acks lag the sends.
    pub last_measured_ack: Option<Instant>,
}

struct Pending {
    intended: Instant,
    delivery: DeliveryFuture,
    bytes: u64,
}

pub async fn run(
    producer: Producer,
    mut source: Box<dyn RecordSource>,
    plan: Plan,
    timeline: Arc<Timeline>,
    live: Arc<Live>,
) -> ProducerOutcome {
    let (tx, rx) = mpsc::channel(PENDING_RECORDS_MAX);
    let collector = tokio::spawn(collect(rx, Arc::clone(&timeline), live));
    let mut sent = 0u64;
    let mut send_error = None;
    loop {
        let now = Instant::now();
        if now >= timeline.end || plan.records_max.is_some_and(|m| sent >= m) {
            break;
        }
        let intended = match plan.rate {
            Some(rate) => {
                let due = timeline.start + Duration::from_secs_f64(sent as f64 / rate);
                if due > now {
                    // Timers are coarse (~1 ms): wake at the due time of
                    // the next record and send every record due by then.
                    tokio::time::sleep_until(due.min(timeline.end).into()).await;
                    continue;
                }
                due
            }
            None => now,
        };
        let stamp_ns = timeline.wall_ns(intended);
        let generated = source.next(stamp_ns);
        let bytes = generated.key.as_ref().map_or(0, |k| k.len())
            + generated.value.as_ref().map_or(0, |v| v.len());
        let record = ProducerRecord {
            topic: plan.topic.clone(),
            partition: None,
            key: generated.key,
            value: generated.value,
            headers: Vec::new(),
            timestamp: Some(i64::try_from(stamp_ns / 1_000_000).unwrap_or(i64::MAX)),
        };
        match producer.send(record).await {
            Ok(delivery) => {
                let pending = Pending {
                    intended,
                    delivery,
                    bytes: bytes as u64,
                };
                if tx.send(pending).await.is_err() {
                    break;
                }
                sent += 1;
            }
            Err(e) => {
                send_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let flushed = tokio::time::timeout(FLUSH_TIMEOUT, producer.flush()).await;
    let mut outcome = match collector.await {
        Ok(o) => o,
        Err(e) => ProducerOutcome {
            first_error: Some(format!("collector failed: {e}")),
            errors: 1,
            ..ProducerOutcome::default()
        },
    };
    outcome.sent = sent;
    if let Some(e) = send_error {
        outcome.errors += 1;
        outcome.first_error.get_or_insert(e);
    }
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            outcome.first_error.get_or_insert(format!("flush: {e}"));
        }
        Err(_) => {
            outcome
                .first_error
                .get_or_insert(format!("flush did not finish within {FLUSH_TIMEOUT:?}"));
        }
    }
    let _ = producer.close().await;
    outcome
}

async fn collect(
    mut rx: mpsc::Receiver<Pending>,
    timeline: Arc<Timeline>,
    live: Arc<Live>,
) -> ProducerOutcome {
    let mut o = ProducerOutcome::default();
    // Progress counters are bumped in small groups, not per record.
    let (mut live_records, mut live_bytes) = (0u64, 0u64);
    while let Some(p) = rx.recv().await {
        let result = tokio::time::timeout(FLUSH_TIMEOUT, p.delivery).await;
        let now = Instant::now();
        match result {
            Ok(Ok(_)) => {
                o.acked += 1;
                live_records += 1;
                live_bytes += p.bytes;
                if p.intended >= timeline.warmup_end {
                    o.latency.record(now.saturating_duration_since(p.intended));
                    if p.intended < timeline.end {
                        o.measured += 1;
                        o.measured_bytes += p.bytes;
                        o.last_measured_ack = Some(now);
                    }
                }
            }
            Ok(Err(e)) => {
                o.errors += 1;
                o.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                o.errors += 1;
                o.first_error
                    .get_or_insert_with(|| format!("no ack within {FLUSH_TIMEOUT:?}"));
            }
        }
        if live_records >= 256 || rx.is_empty() {
            live.add_produced(live_records, live_bytes);
            (live_records, live_bytes) = (0, 0);
        }
    }
    live.add_produced(live_records, live_bytes);
    o
}
