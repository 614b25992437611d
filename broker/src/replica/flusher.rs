//! Group commit: one task that fsyncs partitions with unflushed appends and
//! then advances their high watermarks, which releases the produce requests
//! waiting for durability.
//!
//! ```text
//! append ─► Partition::try_queue_flush ─► queue (bounded) ─► flusher:
//!   drain everything queued ─► take pending flush handles (under each lock)
//!   ─► fdatasync them all (blocking pool, no lock held)
//!   ─► complete_flush ─► high watermark advances ─► waiters answer
//! ```
//!
//! While one round syncs, new appends queue up and the next round covers
//! them all: the more producers, the more appends each fdatasync serves.
//!
//! # Invariants
//! - A partition is in the queue at most once (its `flush_queued` flag), so
//!   the queue's bound is never reached by one busy partition.
//! - An fsync error is never retried: the partition is marked failed, and
//!   its waiters are answered KAFKA_STORAGE_ERROR.
//!
//! # Limits
//! - [`FLUSH_QUEUE_CAPACITY`] partitions wait at once; producers beyond
//!   that wait to enqueue (back-pressure).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::partition::Partition;
use crate::admin::METRICS;
use crate::error::BrokerError;

/// Partitions that may wait for a flush at once.
pub const FLUSH_QUEUE_CAPACITY: usize = 16 * 1024;

/// Handle producers use to ask for a flush.
#[derive(Clone)]
pub struct Flusher {
    queue: mpsc::Sender<Arc<Partition>>,
}

impl Flusher {
    /// Starts the flusher task on the current runtime.
    pub fn start() -> Self {
        let (queue, rx) = mpsc::channel(FLUSH_QUEUE_CAPACITY);
        tokio::spawn(run(rx));
        Self { queue }
    }

    /// Asks for `partition` to be flushed soon; returns at once unless the
    /// queue is full.
    pub async fn request(&self, partition: &Arc<Partition>) {
        if partition.try_queue_flush() && self.queue.send(Arc::clone(partition)).await.is_err() {
            tracing::error!("flusher task is gone; durability waits will time out");
        }
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

/// The flusher loop. It never ends while any `Flusher` handle lives.
async fn run(mut rx: mpsc::Receiver<Arc<Partition>>) {
    let mut round: Vec<Arc<Partition>> = Vec::new();
    while let Some(first) = rx.recv().await {
        round.clear();
        round.push(first);
        while let Ok(next) = rx.try_recv() {
            round.push(next);
        }
        flush_round(&round).await;
    }
    tracing::debug!("flusher stopped: every handle was dropped");
}

async fn flush_round(partitions: &[Arc<Partition>]) {
    let mut pending = Vec::with_capacity(partitions.len());
    for p in partitions {
        match p.take_pending_flush() {
            Ok(Some(flush)) => pending.push((Arc::clone(p), flush)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "cannot take pending flush")
            }
        }
    }
    if pending.is_empty() {
        return;
    }
    // One blocking task per partition file: fdatasync mostly waits on the
    // device, so syncing the partitions of a round in parallel lets one
    // device queue serve them all instead of paying each latency in turn.
    METRICS.flush.round(pending.len());
    let mut tasks = tokio::task::JoinSet::new();
    for (p, flush) in pending {
        tasks.spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = flush.sync();
            METRICS.flush.synced(started.elapsed(), result.is_ok());
            (p, flush, result)
        });
    }
    let mut synced = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(s) => synced.push(s),
            // The partition's waiters time out (REQUEST_TIMED_OUT); its
            // next append queues it again.
            Err(e) => tracing::error!(error = %e, "flush task failed"),
        }
    }
    for (p, flush, result) in synced {
        match result {
            Ok(()) => {
                match p.complete_flush(&flush) {
                    // Closed meanwhile (shutdown, or the partition moved
                    // away): `Partition::close` flushed the log itself.
                    Ok(()) | Err(BrokerError::PartitionClosed { .. }) => {}
                    Err(e) => {
                        tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "cannot complete flush");
                    }
                }
            }
            Err(e) => {
                tracing::error!(topic = %p.topic(), partition = p.index(), error = %e, "fdatasync failed; partition marked failed");
                p.mark_failed();
            }
        }
    }
}
