//! One partition this node leads: its log, its idempotent-producer state and
//! its high watermark.
//!
//! # Ownership
//! The `PartitionLog` and the `ProducerStateTable` are owned together by
//! the partition's mutex: an idempotent append checks sequences and writes
//! under one lock, so two retries of one batch cannot both be written. The
//! lock is held for the sequence check and the copy into the mapped segment
//! only; fsync runs outside it (see [`super::flusher`]).
//!
//! # High watermark
//! On one node the high watermark is the end of what is durable under the
//! broker's [`DurabilityMode`]: with `Fsync`, the log end offset covered by
//! the last completed fdatasync; with `PageCache`, the log end offset after
//! each append. Consumers read below it only, so a consumer never sees a
//! record that a crash could take back (in `Fsync` mode).
//!
//! # Invariants
//! - `log_start_offset ≤ high_watermark ≤ log_end_offset`.
//! - The high watermark never regresses while the partition lives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_protocol::{RecordBatchView, TimestampType};
use sluice_storage::{FileRegion, LeaderEpoch, LogConfig, Offset, PartitionLog, PendingFlush};
use tokio::sync::{Notify, watch};

use super::producer_state::{
    ProducerBatch, ProducerStateTable, SequenceCheck, WrittenBatch, last_sequence,
};
use crate::admin::PartitionTraffic;
use crate::config::DurabilityMode;
use crate::error::BrokerError;

/// What readers may see of a partition, published after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The log's directory failed (fsync or write error): the partition
    /// answers KAFKA_STORAGE_ERROR from now on.
    pub failed: bool,
}

/// Where an accepted batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already written; nothing was appended.
    pub duplicate: bool,
}

/// What a fetch read from the partition.
#[derive(Debug)]
pub struct ReadOutcome {
    pub regions: Vec<FileRegion>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct PartitionState {
    log: PartitionLog,
    producers: ProducerStateTable,
}

/// The partition's state under its lock; `None` once closed.
struct StateGuard<'a>(MutexGuard<'a, Option<PartitionState>>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = PartitionState;
    fn deref(&self) -> &PartitionState {
        match self.0.as_ref() {
            Some(s) => s,
            // `Partition::lock` builds a guard only over `Some`.
            None => unreachable!("StateGuard over a closed partition"),
        }
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut PartitionState {
        match self.0.as_mut() {
            Some(s) => s,
            None => unreachable!("StateGuard over a closed partition"),
        }
    }
}

/// A partition led by this node.
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    leader_epoch: LeaderEpoch,
    durability: DurabilityMode,
    /// `None` after [`Partition::close`].
    state: Mutex<Option<PartitionState>>,
    progress: watch::Sender<Progress>,
    /// True while the partition waits in the flusher's queue, so it is
    /// queued once however many appends happen before the flush.
    flush_queued: AtomicBool,
    /// Shared by every partition: notified when a high watermark advances.
    data_arrived: Arc<Notify>,
    /// Bytes and records in and out, for `/metrics` (atomics only).
    traffic: PartitionTraffic,
}

impl Partition {
    /// Wraps an opened log, rebuilding producer state from its batches.
    pub fn new(
        topic: Arc<str>,
        index: i32,
        log: PartitionLog,
        durability: DurabilityMode,
        data_arrived: Arc<Notify>,
    ) -> Result<Self, BrokerError> {
        let producers = rebuild_producer_state(&log)?;
        // Everything a reopened log holds passed recovery: it is durable.
        let progress = Progress {
            high_watermark: log.log_end_offset().0,
            log_start_offset: log.log_start_offset().0,
            failed: false,
        };
        let (progress, _) = watch::channel(progress);
        Ok(Self {
            topic,
            index,
            leader_epoch: LeaderEpoch(0),
            durability,
            state: Mutex::new(Some(PartitionState { log, producers })),
            progress,
            flush_queued: AtomicBool::new(false),
            data_arrived,
            traffic: PartitionTraffic::default(),
        })
    }

    pub fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    /// This partition's traffic counters (`admin::metrics`).
    pub fn traffic(&self) -> &PartitionTraffic {
        &self.traffic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.0
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn lock(&self) -> Result<StateGuard<'_>, BrokerError> {
        let guard = self.state.lock().map_err(|_| BrokerError::StatePoisoned)?;
        if guard.is_none() {
            return Err(BrokerError::PartitionClosed {
                topic: self.topic.to_string(),
                partition: self.index,
            });
        }
        Ok(StateGuard(guard))
    }

    /// Appends one validated batch as leader, deduplicating idempotent
    /// retries. Copies the batch bytes once, into the mapped segment.
    pub fn append_as_leader(
        &self,
        batch: &RecordBatchView<'_>,
        now_ms: i64,
    ) -> Result<AppendOutcome, BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let producer = ProducerBatch {
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            last_sequence: last_sequence(batch.base_sequence(), batch.last_offset_delta()),
        };
        let mut state = self.lock()?;
        let log_start_offset = state.log.log_start_offset().0;
        match state.producers.check(&producer) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate(w) => {
                return Ok(AppendOutcome {
                    base_offset: w.base_offset,
                    last_offset: w.last_offset,
                    log_append_time_ms: w.log_append_time_ms,
                    log_start_offset,
                    duplicate: true,
                });
            }
            SequenceCheck::StaleEpoch { current } => {
                return Err(BrokerError::InvalidProducerEpoch {
                    producer_id: producer.producer_id,
                    epoch: producer.producer_epoch,
                    current,
                });
            }
            SequenceCheck::OutOfOrder { expected } => {
                return Err(BrokerError::OutOfOrderSequence {
                    producer_id: producer.producer_id,
                    expected,
                    received: producer.base_sequence,
                });
            }
            SequenceCheck::UnknownProducer => {
                return Err(BrokerError::UnknownProducerId {
                    producer_id: producer.producer_id,
                    received: producer.base_sequence,
                });
            }
        }
        let info = state
            .log
            .append_as_leader(batch.as_bytes(), self.leader_epoch, now_ms)
            .map_err(|e| self.storage_error(e))?;
        // With LogAppendTime the produce path stamped the header with the
        // append time (`replica::timestamps`); Kafka answers with it.
        let log_append_time_ms = match batch.timestamp_type() {
            TimestampType::LogAppendTime => batch.max_timestamp(),
            TimestampType::CreateTime => -1,
        };
        let written = WrittenBatch {
            base_offset: info.base_offset.0,
            last_offset: info.last_offset.0,
            log_append_time_ms,
        };
        state.producers.record(&producer, written);
        let log_end = state.log.log_end_offset().0;
        drop(state);
        if self.durability == DurabilityMode::PageCache {
            self.publish_high_watermark(log_end);
        }
        Ok(AppendOutcome {
            base_offset: written.base_offset,
            last_offset: written.last_offset,
            log_append_time_ms: written.log_append_time_ms,
            log_start_offset,
            duplicate: false,
        })
    }

    /// Reads whole batches from `offset`, below the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
    ) -> Result<ReadOutcome, BrokerError> {
        let progress = self.progress();
        if progress.failed {
            return Err(BrokerError::StorageFailed);
        }
        let state = self.lock()?;
        let log_start_offset = state.log.log_start_offset().0;
        let log_end_offset = state.log.log_end_offset().0;
        if offset < log_start_offset || offset > log_end_offset {
            return Err(BrokerError::OffsetOutOfRange {
                requested: offset,
                log_start: log_start_offset,
                log_end: progress.high_watermark,
            });
        }
        // Between the high watermark and the log end: written, not yet
        // visible. An empty answer, not an error; the consumer polls again.
        if offset >= progress.high_watermark {
            return Ok(ReadOutcome {
                regions: Vec::new(),
                high_watermark: progress.high_watermark,
                log_start_offset,
            });
        }
        let read = state
            .log
            .read(
                Offset(offset),
                max_bytes,
                Offset(progress.high_watermark),
                min_one_batch,
            )
            .map_err(|e| self.storage_error(e))?;
        Ok(ReadOutcome {
            regions: read.regions,
            high_watermark: progress.high_watermark,
            log_start_offset,
        })
    }

    /// Runs `f` on the log under the partition lock (ListOffsets, retention,
    /// DeleteRecords): short, non-append work only.
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&mut PartitionLog) -> Result<T, sluice_storage::Error>,
    ) -> Result<T, BrokerError> {
        let mut state = self.lock()?;
        let out = f(&mut state.log).map_err(|e| self.storage_error(e));
        let log_start_offset = state.log.log_start_offset().0;
        drop(state);
        self.progress.send_if_modified(|p| {
            let changed = p.log_start_offset != log_start_offset;
            p.log_start_offset = log_start_offset;
            p.high_watermark = p.high_watermark.max(log_start_offset);
            changed
        });
        out
    }

    /// Marks the partition queued for the flusher; false if it already was.
    pub(crate) fn try_queue_flush(&self) -> bool {
        !self.flush_queued.swap(true, Ordering::AcqRel)
    }

    /// Takes the handles of unflushed files; clears the queued mark first so
    /// an append that lands after this is queued again.
    pub(crate) fn take_pending_flush(&self) -> Result<Option<PendingFlush>, BrokerError> {
        self.flush_queued.store(false, Ordering::Release);
        Ok(self.lock()?.log.pending_flush())
    }

    /// Records that `pending` is on disk and advances the high watermark.
    pub(crate) fn complete_flush(&self, pending: &PendingFlush) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        state.log.complete_flush(pending);
        let durable = pending.log_end_offset().0;
        drop(state);
        if self.durability == DurabilityMode::Fsync {
            self.publish_high_watermark(durable);
        }
        Ok(())
    }

    pub(crate) fn mark_failed(&self) {
        self.progress.send_modify(|p| p.failed = true);
    }

    fn publish_high_watermark(&self, offset: i64) {
        let advanced = self.progress.send_if_modified(|p| {
            if offset > p.high_watermark {
                p.high_watermark = offset;
                true
            } else {
                false
            }
        });
        if advanced {
            self.data_arrived.notify_waiters();
        }
    }

    fn storage_error(&self, e: sluice_storage::Error) -> BrokerError {
        use sluice_storage::Error as E;
        // An I/O failure poisons the log directory for good; a full disk
        // (NoSpace) fails this request only, and later appends succeed once
        // space is freed.
        if matches!(e, E::Io { .. } | E::Poisoned { .. } | E::Corrupt { .. }) {
            self.mark_failed();
        }
        BrokerError::Storage {
            topic: self.topic.to_string(),
            partition: self.index,
            source: e,
        }
    }

    /// Flushes and closes the log (clean shutdown); later calls answer
    /// with an error.
    pub fn close(&self) -> Result<(), BrokerError> {
        let taken = self
            .state
            .lock()
            .map_err(|_| BrokerError::StatePoisoned)?
            .take();
        match taken {
            Some(state) => state.log.close().map_err(|e| self.storage_error(e)),
            None => Ok(()),
        }
    }

    /// Flushes the log if its flush policy says so now.
    pub(crate) fn maybe_flush(&self, now_ms: i64) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        let flushed = state
            .log
            .maybe_flush(now_ms)
            .map_err(|e| self.storage_error(e))?;
        let durable = state.log.recovery_point().0;
        drop(state);
        if flushed && self.durability == DurabilityMode::Fsync {
            self.publish_high_watermark(durable);
        }
        Ok(())
    }

    /// Storage configuration changes (AlterConfigs) take effect on the log.
    pub fn set_log_config(&self, config: LogConfig) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        state
            .log
            .set_config(config)
            .map_err(|e| self.storage_error(e))
    }
}

/// Replays the batch headers of `log` into a fresh producer-state table.
///
/// # Caveats
/// Scans every batch header of the log (headers only, from the mapping):
/// Kafka bounds this with producer-state snapshots per segment; Sluice will
/// when logs large enough to make it slow appear (opening a 1 GiB segment of
/// 1 MiB batches reads 1 000 headers).
fn rebuild_producer_state(log: &PartitionLog) -> Result<ProducerStateTable, BrokerError> {
    let mut table = ProducerStateTable::default();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log
            .read(next, 16 * 1024 * 1024, end, true)
            .map_err(|source| BrokerError::Storage {
                topic: String::new(),
                partition: -1,
                source,
            })?;
        let before = next;
        for region in &read.regions {
            let bytes = region.bytes();
            for item in sluice_protocol::BatchIter::new(&bytes, usize::MAX) {
                let Ok((_, view)) = item else { break };
                let batch = ProducerBatch {
                    producer_id: view.producer_id(),
                    producer_epoch: view.producer_epoch(),
                    base_sequence: view.base_sequence(),
                    last_sequence: last_sequence(view.base_sequence(), view.last_offset_delta()),
                };
                table.record(
                    &batch,
                    WrittenBatch {
                        base_offset: view.base_offset(),
                        last_offset: view.last_offset(),
                        log_append_time_ms: -1,
                    },
                );
                next = Offset(view.last_offset() + 1);
            }
        }
        if next <= before {
            break;
        }
    }
    Ok(table)
}
