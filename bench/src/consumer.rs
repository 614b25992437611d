//! Consumer workers, each a `sluice_client::Consumer` with its own
//! connection, reading every partition of the topic (fan-out):
//!
//! - [`tail`]: started at the log end before the producers, reads while
//!   they run; end-to-end latency = receipt time − the send stamp at the
//!   start of each value (producer and consumer share this machine's
//!   clock). Stops once it has read everything the producers had
//!   acknowledged, or `drain` after the producers' end.
//! - [`readback`]: after the run, reads the whole retained log from the
//!   beginning as fast as it can — consume throughput, and for the config
//!   workload the time a new subscriber needs to read the whole state. On
//!   a compacted topic it also counts the keys it met
//!   ([`crate::key_census`]): the state that subscriber rebuilt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::{Consumer, FetchedBatch, RecordView};
use tokio::sync::watch;

use crate::key_census::{Census, KeyCensus};
use crate::latency::Latency;
use crate::progress::Live;
use crate::stamp;
use crate::timeline::Timeline;

/// What one tailing consumer measured.
#[derive(Default)]
pub struct TailOutcome {
    pub received: u64,
    /// Records received whose send stamp lies in the measured window.
    pub measured: u64,
    /// When the last of those arrived.
    pub last_measured: Option<Instant>,
    pub measured_bytes: u64,
    pub e2e: Latency,
    pub error: Option<String>,
}

fn payload_bytes(r: &RecordView<'_>) -> u64 {
    (r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len)) as u64
}

/// Records and payload bytes of `batches`, each record passed to `each`
/// with its payload size; iterated as views, nothing copied.
fn walk(
    batches: &[FetchedBatch],
    mut each: impl FnMut(&RecordView<'_>, u64),
) -> anyhow::Result<(u64, u64)> {
    let (mut records, mut bytes) = (0, 0);
    for batch in batches {
        for r in batch.records() {
            let r = r?;
            let b = payload_bytes(&r);
            each(&r, b);
            records += 1;
            bytes += b;
        }
    }
    Ok((records, bytes))
}

/// `produced` holds `Some(total acknowledged)` once the producers are done.
pub async fn tail(
    mut consumer: Consumer,
    timeline: Arc<Timeline>,
    mut produced: watch::Receiver<Option<u64>>,
    live: Arc<Live>,
) -> TailOutcome {
    let mut o = TailOutcome::default();
    let warmup_wall = timeline.warmup_end_wall_ns();
    let end_wall = timeline.end_wall_ns();
    let deadline = timeline.end + timeline.drain;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(total) = *produced.borrow_and_update()
            && o.received >= total
        {
            break;
        }
        let batches = tokio::select! {
            r = consumer.poll_batches() => r,
            () = tokio::time::sleep_until(deadline.into()) => break,
        };
        let batches = match batches {
            Ok(b) => b,
            Err(e) => {
                o.error = Some(e.to_string());
                break;
            }
        };
        let now = Instant::now();
        let now_ns = stamp::now_ns();
        let walked = walk(&batches, |r, b| {
            if let Some(sent) = r.value.and_then(stamp::decode)
                && sent >= warmup_wall
            {
                o.e2e.record_ns(now_ns.saturating_sub(sent));
                if sent < end_wall {
                    o.measured += 1;
                    o.measured_bytes += b;
                    o.last_measured = Some(now);
                }
            }
        });
        let (records, bytes) = match walked {
            Ok(counts) => counts,
            Err(e) => {
                o.error = Some(e.to_string());
                break;
            }
        };
        o.received += records;
        live.add_consumed(records, bytes);
    }
    o
}

/// What the read-back measured.
#[derive(Debug, Default)]
pub struct ReadbackOutcome {
    pub records: u64,
    pub bytes: u64,
    pub time: Duration,
    /// False when the deadline came before the log end was reached.
    pub complete: bool,
    /// The keys met, when counted.
    pub keys: Option<Census>,
}

/// Reads `topic` from the beginning until every partition's position
/// reaches its `targets` offset, or until `deadline`; with `count_keys`,
/// feeds every keyed record to a [`KeyCensus`].
pub async fn readback(
    mut consumer: Consumer,
    topic: &str,
    targets: &[(i32, i64)],
    deadline: Instant,
    live: Arc<Live>,
    count_keys: bool,
) -> anyhow::Result<ReadbackOutcome> {
    let mut o = ReadbackOutcome::default();
    let mut census = count_keys.then(KeyCensus::default);
    let start = Instant::now();
    loop {
        let done = targets
            .iter()
            .all(|&(p, end)| consumer.position(topic, p).is_some_and(|pos| pos >= end));
        if done {
            o.complete = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        let batches = tokio::select! {
            r = consumer.poll_batches() => r?,
            () = tokio::time::sleep_until(deadline.into()) => break,
        };
        let (records, bytes) = walk(&batches, |r, _| {
            if let Some((c, key)) = census.as_mut().zip(r.key) {
                c.add(key, r.value.is_none());
            }
        })?;
        o.records += records;
        o.bytes += bytes;
        live.add_consumed(records, bytes);
    }
    o.time = start.elapsed();
    o.keys = census.map(|c| c.census());
    Ok(o)
}
