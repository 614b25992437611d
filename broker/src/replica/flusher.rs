//! Group commit: one thread that fsyncs partitions with unflushed appends
//! and then advances their high watermarks, which releases the produce
//! requests waiting for durability.
//!
//! ```text
//! append ─► Partition::try_queue_flush ─► queue (bounded) ─► flusher thread:
//!   drain everything queued ─► take pending flush handles (under each lock)
//!   ─► per partition, on the sync crew (no lock held): fdatasync
//!      ─► complete_flush ─► high watermark advances ─► its waiters answer
//! ```
//!
//! While one round syncs, new appends queue up and the next round covers
//! them all: the more producers, the more appends each fdatasync serves.
//! After a round of several partitions the next starts no sooner than that
//! round took (at most [`ROUND_PAUSE_MAX`]): with appends arriving all the
//! time, rounds otherwise follow back to back and every partition pays an
//! fdatasync (~50-70 µs of CPU here, metadata and device flush) for the
//! few KiB of each round. Paced, each sync covers about twice the appends
//! for half the syncs, at a wait no longer than a sync takes. In the
//! metrics scenario (12 partitions, 100 producers, 100 K records/s) the
//! sync threads' CPU fell by a third and send→ack p99 by a fifth, and
//! counters (12 partitions, closed loop) gained 3-8 % records/s
//! (docs/benchmarks.md, "Group commit paced"). A round of one partition is
//! not paced: one sync a round costs little, and a single busy partition
//! is where a producer's latency is measured at half load.
//! The flusher is a thread of its own, not a runtime task: a round of one
//! partition syncs on it with no other thread woken, and a larger round is
//! shared with [`FLUSH_SYNC_HELPERS`] parked helpers ([`super::sync_crew`])
//! rather than a blocking-pool task per partition.
//!
//! # Invariants
//! - A partition is in the queue at most once (its `flush_queued` flag), so
//!   the queue's bound is never reached by one busy partition, and in a
//!   round at most once (the queue is drained before any flush is taken),
//!   so its syncs never overlap.
//! - An fsync error is never retried: the partition is marked failed, and
//!   its waiters are answered KAFKA_STORAGE_ERROR.
//! - The thread ends when every [`Flusher`] handle is gone; its helpers end
//!   with it.
//!
//! # Limits
//! - [`FLUSH_QUEUE_CAPACITY`] partitions wait at once; producers beyond
//!   that wait to enqueue (back-pressure).
//! - A pause between rounds lasts at most [`ROUND_PAUSE_MAX`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_storage::PendingFlush;
use tokio::sync::mpsc;

use super::partition::Partition;
use super::sync_crew::SyncCrew;
use crate::admin::METRICS;
use crate::error::BrokerError;

/// Partitions that may wait for a flush at once.
pub const FLUSH_QUEUE_CAPACITY: usize = 16 * 1024;

/// Threads that sync beside the flusher thread in a round of several
/// partitions: four syncing threads beat one per partition and one alone
/// on this machine's disk (docs/benchmarks.md, "Group commit on a sync
/// crew").
pub const FLUSH_SYNC_HELPERS: usize = 3;

/// Longest pause after a round before the next one: a slow disk's long
/// round must not double every produce's wait (librdkafka's default
/// linger is 5 ms).
pub const ROUND_PAUSE_MAX: Duration = Duration::from_millis(5);

/// How long the next round waits after a round of `partitions` that took
/// `took`: as long as that round took, at most [`ROUND_PAUSE_MAX`]; no
/// pause after a round of one partition.
fn pause_after(partitions: usize, took: Duration) -> Duration {
    if partitions < 2 {
        return Duration::ZERO;
    }
    took.min(ROUND_PAUSE_MAX)
}

/// Handle producers use to ask for a flush.
#[derive(Clone)]
pub struct Flusher {
    queue: mpsc::Sender<Arc<Partition>>,
}

impl Flusher {
    /// Starts the flusher thread (no runtime needed). When the system
    /// refuses the thread, every durability wait times out and an error
    /// says why.
    pub fn start() -> Self {
        let (queue, rx) = mpsc::channel(FLUSH_QUEUE_CAPACITY);
        if let Err(e) = std::thread::Builder::new()
            .name("sluice-flush".into())
            .spawn(move || run(rx))
        {
            tracing::error!(error = %e, "cannot start the flusher thread; durability waits will time out");
        }
        Self { queue }
    }

    /// Asks for `partition` to be flushed soon; returns at once unless the
    /// queue is full. Cancel-safe: a request dropped while it waits for
    /// room (its connection closed, the broker stopping) leaves the
    /// partition unmarked, so the next append queues it again — a mark
    /// left behind would keep it out of the queue for good, and every
    /// durability wait on it would time out.
    pub async fn request(&self, partition: &Arc<Partition>) {
        if !partition.try_queue_flush() {
            return;
        }
        let mark = QueuedMark(Some(partition));
        match self.queue.reserve().await {
            Ok(slot) => slot.send(Arc::clone(partition)),
            // Marked for good: nothing will flush it anyway, and the error
            // is logged once per partition, not once per append.
            Err(_) => tracing::error!("flusher thread is gone; durability waits will time out"),
        }
        mark.keep();
    }

    /// Asks for `partition` to be flushed soon without waiting (the replica
    /// fetcher's appends): when the queue is full the request is dropped
    /// and the flush policy's maintenance pass syncs the partition later.
    pub fn request_now(&self, partition: &Arc<Partition>) {
        if partition.try_queue_flush() && self.queue.try_send(Arc::clone(partition)).is_err() {
            partition.unqueue_flush();
        }
    }
}

/// A partition's `flush_queued` mark taken by [`Flusher::request`], cleared
/// again if the request is dropped before the partition is in the queue.
struct QueuedMark<'a>(Option<&'a Partition>);

impl QueuedMark<'_> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for QueuedMark<'_> {
    fn drop(&mut self) {
        if let Some(partition) = self.0 {
            partition.unqueue_flush();
        }
    }
}

/// One partition's share of a round. `settled` turns true once its sync
/// ran and its outcome was applied (high watermark advanced, or the
/// partition marked failed); false only if that work panicked.
struct FlushJob {
    partition: Arc<Partition>,
    flush: PendingFlush,
    settled: bool,
}

/// Syncs one partition and applies the outcome at once, so a partition's
/// waiters are answered as soon as its own files are on disk, not when the
/// round's slowest file is.
fn sync_and_settle(job: &mut FlushJob) {
    let p = &job.partition;
    let started = std::time::Instant::now();
    let result = job.flush.sync();
    METRICS.flush.synced(started.elapsed(), result.is_ok());
    match result {
        Ok(()) => match p.complete_flush(&job.flush) {
            // Closed meanwhile (shutdown, or the partition moved away):
            // `Partition::close` flushed the log itself.
            Ok(()) | Err(BrokerError::PartitionClosed { .. }) => {}
            Err(e) => {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "cannot complete flush");
            }
        },
        Err(e) => {
            tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "fdatasync failed; partition marked failed");
            p.mark_failed();
        }
    }
    job.settled = true;
}

/// The flusher loop. It ends once every `Flusher` handle is dropped.
fn run(mut rx: mpsc::Receiver<Arc<Partition>>) {
    let mut crew = SyncCrew::start("sluice-sync", FLUSH_SYNC_HELPERS, sync_and_settle);
    let mut queued: Vec<Arc<Partition>> = Vec::new();
    let mut jobs: Vec<FlushJob> = Vec::new();
    // When the next round may start.
    let mut next_round = Instant::now();
    while let Some(first) = rx.blocking_recv() {
        let wait = next_round.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        // Drain first, take the flushes after: taking one clears the
        // partition's queued mark, and an append landing then queues it
        // again, which a drain still running would put in this round a
        // second time (two flushes of one partition synced at once).
        queued.push(first);
        while let Ok(next) = rx.try_recv() {
            queued.push(next);
        }
        for partition in queued.drain(..) {
            queue_job(partition, &mut jobs);
        }
        if jobs.is_empty() {
            continue;
        }
        METRICS.flush.round(jobs.len());
        let started = Instant::now();
        crew.run(&mut jobs);
        let ended = Instant::now();
        next_round = ended + pause_after(jobs.len(), ended - started);
        for job in jobs.drain(..).filter(|job| !job.settled) {
            // Its waiters time out (REQUEST_TIMED_OUT); the partition's
            // next append queues it again.
            let p = &job.partition;
            tracing::error!(topic = %p.topic(), partition = p.index(), "flush ended without an outcome");
        }
    }
    tracing::debug!("flusher stopped: every handle was dropped");
}

/// Adds `partition`'s pending flush to the round, if it has one.
fn queue_job(partition: Arc<Partition>, jobs: &mut Vec<FlushJob>) {
    match partition.take_pending_flush() {
        Ok(Some(flush)) => jobs.push(FlushJob {
            partition,
            flush,
            settled: false,
        }),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(topic = %partition.topic(), partition = partition.index(), error = %e, "cannot take pending flush")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::producer_snapshot::tests::partition;
    use crate::replica::role::Role;

    /// A produce asking for a flush while the queue is full waits; when its
    /// connection goes, the wait is dropped, and the partition must be
    /// queued again by the next request, not be marked queued for good.
    #[tokio::test]
    async fn a_request_dropped_while_the_queue_is_full_leaves_the_partition_unmarked() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let [full, waiting] = dirs
            .each_ref()
            .map(|d| Arc::new(partition(d.path(), Role::Leader)));
        let (queue, mut rx) = mpsc::channel(1);
        let flusher = Flusher { queue };
        flusher.request(&full).await;

        let dropped = tokio::time::timeout(Duration::from_millis(50), flusher.request(&waiting));
        assert!(
            dropped.await.is_err(),
            "the queue is full: the request waits"
        );

        let queued = rx.recv().await.unwrap();
        assert!(Arc::ptr_eq(&queued, &full));
        flusher.request(&waiting).await;
        let queued = rx
            .try_recv()
            .expect("queued again after the dropped request");
        assert!(Arc::ptr_eq(&queued, &waiting));
        flusher.request(&waiting).await;
        assert!(rx.try_recv().is_err(), "queued once while its mark stands");
    }

    #[test]
    fn a_round_of_several_partitions_pauses_as_long_as_it_took_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(pause_after(0, ms(3)), Duration::ZERO);
        assert_eq!(pause_after(1, ms(3)), Duration::ZERO, "one partition");
        assert_eq!(pause_after(2, ms(3)), ms(3));
        assert_eq!(
            pause_after(1000, Duration::from_micros(700)),
            Duration::from_micros(700)
        );
        assert_eq!(pause_after(12, ms(80)), ROUND_PAUSE_MAX, "a slow round");
    }
}
