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
//! its latency by at most the gap between the two acks. The records of a
//! batch resolve together, so the collector reads the clock once per
//! batch it waits for, and once for all the records of a chunk it finds
//! already acknowledged, not per record.
//!
//! With `[producer] records_per_send` above 1 the send loop hands the
//! producer that many records per call (`Producer::send_batch_ref`), as an
//! application that gathers its records first does: in the closed loop
//! every record of a call is measured from the call, in the open loop
//! from its own due instant (the call goes once its last record is due).
//!
//! The send loop hands records to the collector in chunks of
//! [`CHUNK_RECORDS`] (one channel operation per chunk, not per record),
//! and hands over a partial chunk before it waits for anything (the
//! producer's buffer, the next due instant, the end), so a record reaches
//! the collector at most a few microseconds of sending later and never
//! sits in a chunk while the loop sleeps.
//!
//! # Limits
//! - Chunks: at most [`SPARE_CHUNKS`] emptied ones wait to be reused.
//! - The send loop stops at the timeline's end or after its record quota,
//!   then flushes for at most [`FLUSH_TIMEOUT`].
//! - Records awaiting their ack are bounded by the producer's
//!   `buffer_bytes` and by [`PENDING_RECORDS_MAX`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use sluice_client::{DeliveryFuture, Producer, ProducerRecordRef};
use tokio::sync::mpsc;

use crate::key_ledger::KeyLedger;
use crate::latency::Latency;
use crate::pacer::Pacer;
use crate::progress::Live;
use crate::timeline::Timeline;
use crate::workload::{Generated, RecordSource};

/// How long a worker waits for outstanding acks after its last send.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Records sent and not yet seen acknowledged by the collector.
const PENDING_RECORDS_MAX: usize = 256 * 1024;

/// Records handed to the collector at once.
const CHUNK_RECORDS: usize = 64;

/// Emptied chunks the collector hands back to the send loop for reuse (a
/// chunk's allocation was made by the send loop and freed by the
/// collector, on another thread, per 64 records).
const SPARE_CHUNKS: usize = 8;

/// What one worker sends.
#[derive(Debug, Clone)]
pub struct Plan {
    pub topic: Arc<str>,
    /// Records per second for this worker; `None`: closed loop.
    pub rate: Option<f64>,
    /// Records this worker sends at most.
    pub records_max: Option<u64>,
    /// Records per send call: 1 sends each with `send_ref`; more hands
    /// them to `send_batch_ref` that many at a time.
    pub records_per_send: usize,
    /// Told the key and kind of every record sent (compacted topics).
    pub ledger: Option<Arc<KeyLedger>>,
    /// Waits for the open loop's due instants (`run.pacing = "fine"`,
    /// shared by the run's workers); `None`: tokio's timer.
    pub pacer: Option<Pacer>,
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
    let (tx, rx) = mpsc::channel::<Vec<Pending>>(PENDING_RECORDS_MAX / CHUNK_RECORDS);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<Pending>>(SPARE_CHUNKS);
    let collector = tokio::spawn(collect(rx, spare_tx, Arc::clone(&timeline), live));
    let mut handoff = Handoff {
        tx,
        spare: spare_rx,
        chunk: Vec::with_capacity(CHUNK_RECORDS),
    };
    let sender = Sender {
        producer: &producer,
        plan: &plan,
        timeline: &timeline,
    };
    let (sent, send_error) = match plan.records_per_send {
        ..=1 => sender.send_each(source.as_mut(), &mut handoff).await,
        n => sender.send_batches(source.as_mut(), &mut handoff, n).await,
    };
    handoff.hand_over().await;
    drop(handoff);
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

/// What a send loop sends with, and to where.
struct Sender<'a> {
    producer: &'a Producer,
    plan: &'a Plan,
    timeline: &'a Timeline,
}

impl Sender<'_> {
    /// Whether the loop is done before sending record number `sent`.
    fn finished(&self, now: Instant, sent: u64) -> bool {
        now >= self.timeline.end || self.plan.records_max.is_some_and(|m| sent >= m)
    }

    /// Waits until `at`, on the plan's pacer or on tokio's timer.
    async fn wait_until(&self, at: Instant) {
        match &self.plan.pacer {
            Some(pacer) => pacer.until(at).await,
            None => tokio::time::sleep_until(at.into()).await,
        }
    }

    /// When record number `i` is due (open loop).
    fn due(&self, rate: f64, i: u64) -> Instant {
        self.timeline.start + Duration::from_secs_f64(i as f64 / rate)
    }

    /// The record `generated` holds, borrowed for the producer, stamped
    /// with its (intended) send instant.
    fn record<'g>(&'g self, generated: &'g Generated, stamp_ns: u64) -> ProducerRecordRef<'g> {
        ProducerRecordRef {
            topic: &self.plan.topic,
            partition: None,
            key: generated.key(),
            value: generated.value(),
            headers: &[],
            timestamp: Some(i64::try_from(stamp_ns / 1_000_000).unwrap_or(i64::MAX)),
        }
    }

    /// Tells the ledger (if any) of a record that was queued.
    fn tell_ledger(&self, generated: &Generated) {
        if let Some((ledger, id)) = self.plan.ledger.as_ref().zip(generated.key_id) {
            ledger.record(id, generated.value().is_none());
        }
    }

    /// Sends one record per `send_ref` call; returns the records sent and
    /// the error that ended the loop early, if one did.
    async fn send_each(
        &self,
        source: &mut dyn RecordSource,
        handoff: &mut Handoff,
    ) -> (u64, Option<String>) {
        let timeline = self.timeline;
        let mut sent = 0u64;
        let mut clock = SendClock::new();
        let mut generated = Generated::default();
        loop {
            let now = clock.now();
            if self.finished(now, sent) {
                return (sent, None);
            }
            let intended = match self.plan.rate {
                Some(rate) => {
                    let due = self.due(rate, sent);
                    if due > now && due > clock.read() {
                        if !handoff.hand_over().await {
                            return (sent, None);
                        }
                        // Wake at the due time of the next record (tokio's
                        // tick or the pacer's gap later) and send every
                        // record due by then.
                        self.wait_until(due.min(timeline.end)).await;
                        clock.read();
                        continue;
                    }
                    due
                }
                None => now,
            };
            let stamp_ns = timeline.wall_ns(intended);
            source.next(stamp_ns, &mut generated);
            // Borrowed from `generated`: `send_ref` copies key and value into
            // the partition's batch (their second and last write on this
            // side: the generator wrote them into `generated`, the batch goes
            // on the wire as it is).
            let send = self.producer.send_ref(self.record(&generated, stamp_ns));
            tokio::pin!(send);
            let sent_now = match poll_once(send.as_mut()).await {
                Some(result) => result,
                None => {
                    // The producer's buffer is full: hand over what waits in
                    // the chunk before waiting for room.
                    if !handoff.hand_over().await {
                        return (sent, None);
                    }
                    let result = send.await;
                    clock.read();
                    result
                }
            };
            match sent_now {
                Ok(delivery) => {
                    self.tell_ledger(&generated);
                    sent += 1;
                    if handoff.push(intended, delivery, &generated) && !handoff.hand_over().await {
                        return (sent, None);
                    }
                }
                Err(e) => return (sent, Some(e.to_string())),
            }
        }
    }

    /// Sends `per_send` records per `send_batch_ref` call, as an
    /// application that hands over its records in batches does (the
    /// counter servers of `shared/workloads.md` §3: 100–1 000 increments
    /// at a time). The clock is read once per batch: in the closed loop
    /// every record of a batch is measured from that instant. In the open
    /// loop a batch goes once its last record is due, and each record is
    /// measured from its own due instant (the wait for the batch to fill
    /// counts as latency, as it does for the application).
    async fn send_batches(
        &self,
        source: &mut dyn RecordSource,
        handoff: &mut Handoff,
        per_send: usize,
    ) -> (u64, Option<String>) {
        let timeline = self.timeline;
        let mut sent = 0u64;
        let mut generated: Vec<Generated> = std::iter::repeat_with(Generated::default)
            .take(per_send)
            .collect();
        // Each record's (intended) send instant, and that instant as wall
        // time for its stamp.
        let mut intended: Vec<Instant> = Vec::with_capacity(per_send);
        let mut stamps: Vec<u64> = Vec::with_capacity(per_send);
        let mut deliveries = Vec::with_capacity(per_send);
        loop {
            let now = Instant::now();
            if self.finished(now, sent) {
                return (sent, None);
            }
            let left = self
                .plan
                .records_max
                .map_or(u64::MAX, |m| m.saturating_sub(sent));
            let n = usize::try_from(left).map_or(per_send, |left| left.min(per_send));
            intended.clear();
            stamps.clear();
            match self.plan.rate {
                Some(rate) => {
                    let last_due = self.due(rate, sent + n as u64 - 1);
                    if last_due > now {
                        self.wait_until(last_due.min(timeline.end)).await;
                        continue;
                    }
                    intended.extend((sent..).take(n).map(|i| self.due(rate, i)));
                    stamps.extend(intended.iter().map(|&at| timeline.wall_ns(at)));
                }
                None => {
                    intended.resize(n, now);
                    stamps.resize(n, timeline.wall_ns(now));
                }
            }
            for (generated, &stamp_ns) in generated.iter_mut().zip(&stamps) {
                source.next(stamp_ns, generated);
            }
            // Borrowed from `generated`, as in `send_each`; one allocation
            // per batch.
            let records: Vec<_> = generated
                .iter()
                .zip(&stamps)
                .map(|(generated, &stamp_ns)| self.record(generated, stamp_ns))
                .collect();
            let mut queued = 0;
            while queued < n {
                deliveries.clear();
                let result = self
                    .producer
                    .send_batch_ref(records.get(queued..).unwrap_or_default(), &mut deliveries)
                    .await;
                let batch = generated.iter().zip(&intended).skip(queued);
                for (delivery, (generated, &at)) in deliveries.drain(..).zip(batch) {
                    self.tell_ledger(generated);
                    sent += 1;
                    queued += 1;
                    if handoff.push(at, delivery, generated) && !handoff.hand_over().await {
                        return (sent, None);
                    }
                }
                match result {
                    Err(e) => return (sent, Some(e.to_string())),
                    Ok(0) => return (sent, Some("the producer queued none of a batch".into())),
                    Ok(_) => {}
                }
                // Handed over before the next call can wait for room (or
                // the next batch's due instant), so no record sits in a
                // chunk while the loop waits.
                if !handoff.hand_over().await {
                    return (sent, None);
                }
            }
        }
    }
}

/// The send loop's end of the channel to the collector: records go in
/// chunks of [`CHUNK_RECORDS`], one channel operation per chunk.
struct Handoff {
    tx: mpsc::Sender<Vec<Pending>>,
    spare: mpsc::Receiver<Vec<Pending>>,
    chunk: Vec<Pending>,
}

impl Handoff {
    /// Adds a sent record; true when the chunk is full (to be handed
    /// over before the next).
    fn push(&mut self, intended: Instant, delivery: DeliveryFuture, g: &Generated) -> bool {
        let bytes = g.key().map_or(0, <[u8]>::len) + g.value().map_or(0, <[u8]>::len);
        self.chunk.push(Pending {
            intended,
            delivery,
            bytes: bytes as u64,
        });
        self.chunk.len() >= CHUNK_RECORDS
    }

    /// Sends the records in the chunk to the collector (if any), replacing
    /// it with an emptied chunk the collector handed back, or a new one;
    /// false when the collector is gone.
    async fn hand_over(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_RECORDS));
        let full = std::mem::replace(&mut self.chunk, next);
        self.tx.send(full).await.is_ok()
    }
}

/// Records sent on one reading of the clock, at most.
const RECORDS_PER_CLOCK_READ: u32 = 64;

/// The send loop's clock, read once per [`RECORDS_PER_CLOCK_READ`] records
/// and after every wait: a read (~25 ns here) per 32-byte record was 10 %
/// of the bench's CPU in the counters scenario. A closed-loop record's
/// send instant is then early by at most the time to send that many
/// records (tens of microseconds), which can only overstate its latency;
/// an open-loop record is measured from its due instant whatever the clock.
struct SendClock {
    now: Instant,
    uses_left: u32,
}

impl SendClock {
    fn new() -> Self {
        Self {
            now: Instant::now(),
            uses_left: RECORDS_PER_CLOCK_READ,
        }
    }

    /// The last reading, or a new one every [`RECORDS_PER_CLOCK_READ`] calls.
    fn now(&mut self) -> Instant {
        match self.uses_left.checked_sub(1) {
            Some(left) => self.uses_left = left,
            None => {
                self.read();
            }
        }
        self.now
    }

    /// Reads the clock now.
    fn read(&mut self) -> Instant {
        self.now = Instant::now();
        self.uses_left = RECORDS_PER_CLOCK_READ;
        self.now
    }
}

/// Polls `future` once: its output if it is ready now, `None` if it would
/// wait (it is then to be awaited again, by the same task).
async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// A record the collector found acknowledged and has not yet timed.
struct Resolved {
    intended: Instant,
    bytes: u64,
    result: sluice_client::Result<(i32, i64)>,
}

async fn collect(
    mut rx: mpsc::Receiver<Vec<Pending>>,
    spare: mpsc::Sender<Vec<Pending>>,
    timeline: Arc<Timeline>,
    live: Arc<Live>,
) -> ProducerOutcome {
    let mut o = ProducerOutcome::default();
    // The records found resolved without waiting, not yet timed: they are
    // timed together by one clock read taken after the last of them was
    // found resolved (before the collector next waits, or at the chunk's
    // end), so their latency can only be overstated, by the microseconds
    // the collector took to look at them. With keyed records spread over
    // 12 partitions consecutive records are rarely of one batch, and a
    // clock read per record was 5 % of the bench in the counters scenario.
    let mut resolved: Vec<Resolved> = Vec::with_capacity(CHUNK_RECORDS);
    // The previous awaited record's handle and when it was seen
    // acknowledged: the records of one batch are acknowledged at the same
    // instant.
    let mut previous: Option<(DeliveryFuture, Instant)> = None;
    let mut elapsed = Elapsed::default();
    while let Some(mut chunk) = rx.recv().await {
        let (mut live_records, mut live_bytes) = (0u64, 0u64);
        for mut p in chunk.drain(..) {
            if let Some(result) = p.delivery.try_result() {
                resolved.push(Resolved {
                    intended: p.intended,
                    bytes: p.bytes,
                    result,
                });
                continue;
            }
            let (records, bytes) = time_resolved(&mut o, &mut resolved, &timeline, &mut elapsed);
            live_records += records;
            live_bytes += bytes;
            let result = tokio::time::timeout(FLUSH_TIMEOUT, &mut p.delivery).await;
            let now = match &previous {
                Some((last, at)) if result.is_ok() && last.same_batch(&p.delivery) => *at,
                _ => Instant::now(),
            };
            match result {
                Ok(result) => {
                    if count(
                        &mut o,
                        &timeline,
                        p.intended,
                        p.bytes,
                        result,
                        now,
                        &mut elapsed,
                    ) {
                        live_records += 1;
                        live_bytes += p.bytes;
                    }
                }
                Err(_) => {
                    o.errors += 1;
                    o.first_error
                        .get_or_insert_with(|| format!("no ack within {FLUSH_TIMEOUT:?}"));
                }
            }
            previous = Some((p.delivery, now));
        }
        let (records, bytes) = time_resolved(&mut o, &mut resolved, &timeline, &mut elapsed);
        // Progress counters are bumped once per chunk, not per record.
        live.add_produced(live_records + records, live_bytes + bytes);
        // Back to the send loop, emptied (dropped when it has enough).
        let _ = spare.try_send(chunk);
    }
    o
}

/// Times the records in `resolved` with one clock read (taken now, after
/// each of them was found resolved) and empties it; returns the records
/// and bytes acknowledged among them.
fn time_resolved(
    o: &mut ProducerOutcome,
    resolved: &mut Vec<Resolved>,
    timeline: &Timeline,
    elapsed: &mut Elapsed,
) -> (u64, u64) {
    if resolved.is_empty() {
        return (0, 0);
    }
    let now = Instant::now();
    let (mut records, mut bytes) = (0, 0);
    for r in resolved.drain(..) {
        if count(o, timeline, r.intended, r.bytes, r.result, now, elapsed) {
            records += 1;
            bytes += r.bytes;
        }
    }
    (records, bytes)
}

/// `now - intended`, worked out once per run of records with the same
/// pair: the send loop reads its clock once per 64 records and a batch's
/// records are seen resolved at one instant, so most records repeat the
/// previous pair (the subtraction was ~3 % of the bench's instructions in
/// the counters scenario).
#[derive(Default)]
struct Elapsed {
    last: Option<(Instant, Instant, Duration)>,
}

impl Elapsed {
    fn between(&mut self, intended: Instant, now: Instant) -> Duration {
        match self.last {
            Some((i, n, d)) if i == intended && n == now => d,
            _ => {
                let d = now.saturating_duration_since(intended);
                self.last = Some((intended, now, d));
                d
            }
        }
    }
}

/// Counts one record's outcome, seen at `now`; true if it was acknowledged.
fn count(
    o: &mut ProducerOutcome,
    timeline: &Timeline,
    intended: Instant,
    bytes: u64,
    result: sluice_client::Result<(i32, i64)>,
    now: Instant,
    elapsed: &mut Elapsed,
) -> bool {
    match result {
        Ok(_) => {
            o.acked += 1;
            if intended >= timeline.warmup_end {
                o.latency.record(elapsed.between(intended, now));
                if intended < timeline.end {
                    o.measured += 1;
                    o.measured_bytes += bytes;
                    o.last_measured_ack = Some(now);
                }
            }
            true
        }
        Err(e) => {
            o.errors += 1;
            o.first_error.get_or_insert_with(|| e.to_string());
            false
        }
    }
}
