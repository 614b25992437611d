//! One partition this node hosts, as leader or follower: its log, its
//! idempotent-producer state, its role and its high watermark.
//!
//! # Ownership
//! The `PartitionLog`, the `ProducerStateTable` and the
//! [`PartitionRole`] are owned together by the partition's mutex: an
//! idempotent append checks the role, checks sequences and writes under
//! one lock, so two retries of one batch cannot both be written and no
//! append lands under an epoch the partition no longer has. The lock is
//! held for the checks and the copy into the mapped segment only; fsync
//! runs outside it (see [`super::flusher`]).
//!
//! # Operations
//! Handlers call named operations, never the log itself:
//! - leader (client requests, each checks role and `current_leader_epoch`):
//!   [`Partition::append_as_leader`], [`Partition::read`],
//!   [`Partition::offset_for_timestamp`], [`Partition::batch_with_max_timestamp`],
//!   [`Partition::checked_leader_epoch`], [`Partition::delete_records_below`],
//!   [`Partition::end_offset_for_epoch`];
//! - follower (the replica fetcher of issue 15): [`Partition::append_as_follower`],
//!   [`Partition::truncate_to`], [`Partition::log_end_offset`],
//!   [`Partition::last_fetched_epoch`], [`Partition::follower_high_watermark`];
//! - the reconciler: `Partition::apply_role`; maintenance:
//!   `Partition::maintain`, `Partition::maybe_flush`.
//!
//! # High watermark
//! [`HighWatermark`] is its only owner (see that module for the rule per
//! role). As leader on one node it is the end of what is durable under the
//! broker's [`DurabilityMode`]: with `Fsync`, the log end offset covered by
//! the last completed fdatasync; with `PageCache`, the log end offset after
//! each append. Consumers read below it only.
//!
//! # Invariants
//! - `log_start_offset ≤ high_watermark ≤ log_end_offset`.
//! - The high watermark never regresses while the partition lives, except
//!   by a follower's truncation (see [`HighWatermark::truncated`]).
//! - Only a leader takes client appends, and stamps them with the leader
//!   epoch of the image that made it leader; only a follower takes the
//!   fetcher's appends, which keep the leader's offsets and epochs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sluice_protocol::{RecordBatchView, TimestampType};
use sluice_storage::{FileRegion, LogConfig, Offset, PartitionLog, PendingFlush};
use tokio::sync::{Notify, watch};

use super::high_watermark::HighWatermark;
pub use super::high_watermark::Progress;
use super::producer_state::{
    ProducerBatch, ProducerStateTable, SequenceCheck, WrittenBatch, last_sequence,
};
use super::role::PartitionRole;
use crate::admin::PartitionTraffic;
use crate::config::DurabilityMode;
use crate::error::BrokerError;

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

/// What a follower append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerAppend {
    pub last_offset: i64,
    pub log_end_offset: i64,
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
    role: PartitionRole,
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

/// A partition hosted by this node.
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    durability: DurabilityMode,
    /// `None` after [`Partition::close`].
    state: Mutex<Option<PartitionState>>,
    high_watermark: HighWatermark,
    /// True while the partition waits in the flusher's queue, so it is
    /// queued once however many appends happen before the flush.
    flush_queued: AtomicBool,
    /// Bytes and records in and out, for `/metrics` (atomics only).
    traffic: PartitionTraffic,
}

impl Partition {
    /// Wraps an opened log in the role the image gives it, rebuilding
    /// producer state from its batches.
    pub fn new(
        topic: Arc<str>,
        index: i32,
        log: PartitionLog,
        durability: DurabilityMode,
        data_arrived: Arc<Notify>,
        role: PartitionRole,
    ) -> Result<Self, BrokerError> {
        let producers = rebuild_producer_state(&log)?;
        // Everything a reopened log holds passed recovery: it is durable.
        let high_watermark = HighWatermark::new(
            log.log_end_offset().0,
            log.log_start_offset().0,
            data_arrived,
        );
        high_watermark.set_leading(role.is_leader());
        Ok(Self {
            topic,
            index,
            durability,
            state: Mutex::new(Some(PartitionState {
                log,
                producers,
                role,
            })),
            high_watermark,
            flush_queued: AtomicBool::new(false),
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

    pub fn progress(&self) -> Progress {
        self.high_watermark.progress()
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.high_watermark.subscribe()
    }

    /// The high watermark's owner, for issue 15's leader-side ISR tracking
    /// ([`HighWatermark::set_replicated_end`]).
    pub fn high_watermark(&self) -> &HighWatermark {
        &self.high_watermark
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

    /// The partition's lock, once its role lets a client request stating
    /// `current_leader_epoch` be served (see `replica::role`).
    fn lock_as_leader(&self, current_leader_epoch: i32) -> Result<StateGuard<'_>, BrokerError> {
        let state = self.lock()?;
        state
            .role
            .check_leader(&self.topic, self.index, current_leader_epoch)?;
        Ok(state)
    }

    // ---- roles -----------------------------------------------------------

    /// The role and epochs the last applied image gave the partition.
    pub fn role(&self) -> Result<PartitionRole, BrokerError> {
        Ok(self.lock()?.role)
    }

    /// Applies the role an image gives the partition (the reconciler
    /// only). A partition that stops leading takes no client append from
    /// the moment this returns.
    pub(crate) fn apply_role(&self, role: PartitionRole) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        let was = state.role;
        state.role = role;
        drop(state);
        if was.role != role.role {
            self.high_watermark.set_leading(role.is_leader());
            tracing::info!(topic = %self.topic, partition = self.index, leader_epoch = role.leader_epoch.0, leader = role.is_leader(), "partition role changed");
        }
        Ok(())
    }

    /// The leader epoch when this node leads at `current_leader_epoch`
    /// (ListOffsets EARLIEST/LATEST).
    pub fn checked_leader_epoch(&self, current_leader_epoch: i32) -> Result<i32, BrokerError> {
        Ok(self
            .lock_as_leader(current_leader_epoch)?
            .role
            .leader_epoch
            .0)
    }

    // ---- leader operations -----------------------------------------------

    /// Appends one validated batch as leader, deduplicating idempotent
    /// retries, stamped with the image's leader epoch. Copies the batch
    /// bytes once, into the mapped segment.
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
        // Produce carries no current leader epoch.
        let mut state = self.lock_as_leader(-1)?;
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
        let epoch = state.role.leader_epoch;
        let info = state
            .log
            .append_as_leader(batch.as_bytes(), epoch, now_ms)
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
            self.high_watermark.local_end_advanced(log_end);
        }
        Ok(AppendOutcome {
            base_offset: written.base_offset,
            last_offset: written.last_offset,
            log_append_time_ms: written.log_append_time_ms,
            log_start_offset,
            duplicate: false,
        })
    }

    /// Reads whole batches from `offset`, below the high watermark, for a
    /// consumer (or the group coordinator) of the partition this node
    /// leads at `current_leader_epoch` (-1: not checked). Zero copies: the
    /// regions are the sendfile descriptor or views into the mapping.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        current_leader_epoch: i32,
    ) -> Result<ReadOutcome, BrokerError> {
        let progress = self.progress();
        if progress.failed {
            return Err(BrokerError::StorageFailed);
        }
        let state = self.lock_as_leader(current_leader_epoch)?;
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

    /// The first batch holding a timestamp ≥ `timestamp` (ListOffsets),
    /// with the leader epoch.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        current_leader_epoch: i32,
    ) -> Result<(Option<Bytes>, i32), BrokerError> {
        let state = self.lock_as_leader(current_leader_epoch)?;
        let found = state
            .log
            .offset_for_timestamp(timestamp)
            .map_err(|e| self.storage_error(e))?;
        Ok((found, state.role.leader_epoch.0))
    }

    /// The batch with the largest timestamp (ListOffsets MAX_TIMESTAMP),
    /// with the leader epoch.
    pub fn batch_with_max_timestamp(
        &self,
        current_leader_epoch: i32,
    ) -> Result<(Option<Bytes>, i32), BrokerError> {
        let state = self.lock_as_leader(current_leader_epoch)?;
        let found = state
            .log
            .batch_with_max_timestamp()
            .map_err(|e| self.storage_error(e))?;
        Ok((found, state.role.leader_epoch.0))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (leader
    /// only) and returns the resulting log start offset.
    pub fn delete_records_below(&self, offset: i64) -> Result<i64, BrokerError> {
        let mut state = self.lock_as_leader(-1)?;
        let result = state
            .log
            .advance_log_start_offset(Offset(offset))
            .map_err(|e| self.storage_error(e));
        let log_start_offset = state.log.log_start_offset().0;
        drop(state);
        self.high_watermark.log_start_moved(log_start_offset);
        result.map(|()| log_start_offset)
    }

    /// OffsetForLeaderEpoch as the leader at `current_leader_epoch`:
    /// `(epoch, end offset)` for the requested `epoch`, from the log's
    /// leader-epoch checkpoint (Kafka's `endOffsetFor`: the start of the
    /// next higher epoch, or the log end for the latest; UNDEFINED for an
    /// epoch newer than any known).
    pub fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
    ) -> Result<(i32, i64), BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let state = self.lock_as_leader(current_leader_epoch)?;
        let log_end = state.log.log_end_offset();
        Ok(state.log.leader_epochs().end_offset_for(epoch, log_end))
    }

    // ---- follower operations (the replica fetcher, issue 15) ---------------

    /// Appends batches fetched from the leader: their offsets and leader
    /// epochs are kept and must continue the log. Refused unless this node
    /// follows the partition. Copies the bytes once, into the segment.
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<FollowerAppend, BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let mut state = self.lock()?;
        state.role.check_follower(&self.topic, self.index)?;
        let info = state
            .log
            .append_as_follower(batches)
            .map_err(|e| self.storage_error(e))?;
        // Idempotent-producer state follows the log, so a failover to this
        // replica deduplicates retries as the old leader did.
        for (_, view) in sluice_protocol::BatchIter::new(batches, usize::MAX).map_while(Result::ok)
        {
            state.producers.record(
                &ProducerBatch {
                    producer_id: view.producer_id(),
                    producer_epoch: view.producer_epoch(),
                    base_sequence: view.base_sequence(),
                    last_sequence: last_sequence(view.base_sequence(), view.last_offset_delta()),
                },
                WrittenBatch {
                    base_offset: view.base_offset(),
                    last_offset: view.last_offset(),
                    log_append_time_ms: -1,
                },
            );
        }
        let log_end_offset = state.log.log_end_offset().0;
        drop(state);
        if self.durability == DurabilityMode::PageCache {
            self.high_watermark.local_end_advanced(log_end_offset);
        }
        Ok(FollowerAppend {
            last_offset: info.last_offset.0,
            log_end_offset,
        })
    }

    /// Removes every batch from the one holding `offset` on (a follower
    /// truncating to its leader's log); returns the new log end offset.
    /// Producer state is rebuilt from what is left.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError> {
        let mut state = self.lock()?;
        state.role.check_follower(&self.topic, self.index)?;
        let end = state
            .log
            .truncate_to(Offset(offset))
            .map_err(|e| self.storage_error(e))?;
        state.producers = rebuild_producer_state(&state.log)?;
        drop(state);
        self.high_watermark.truncated(end.0);
        Ok(end.0)
    }

    /// The log end offset (what a follower fetches from next).
    pub fn log_end_offset(&self) -> Result<i64, BrokerError> {
        Ok(self.lock()?.log.log_end_offset().0)
    }

    /// The log end offset and the bytes the log holds, read under one lock
    /// (the admin endpoint's per-partition series).
    pub fn end_and_size(&self) -> Result<(i64, u64), BrokerError> {
        let state = self.lock()?;
        Ok((state.log.log_end_offset().0, state.log.size_bytes()))
    }

    /// The newest leader epoch in the log (a follower's `last_fetched_epoch`
    /// in its next Fetch), or `None` for an empty log.
    pub fn last_fetched_epoch(&self) -> Result<Option<i32>, BrokerError> {
        Ok(self.lock()?.log.leader_epochs().latest_epoch().map(|e| e.0))
    }

    /// A follower learnt its leader's high watermark from a fetch answer.
    pub fn follower_high_watermark(&self, leader_high_watermark: i64) {
        self.high_watermark
            .leader_high_watermark(leader_high_watermark);
    }

    // ---- flushing and maintenance -------------------------------------------

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
            self.high_watermark.local_end_advanced(durable);
        }
        Ok(())
    }

    pub(crate) fn mark_failed(&self) {
        self.high_watermark.mark_failed();
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
            self.high_watermark.local_end_advanced(durable);
        }
        Ok(())
    }

    /// The maintenance pass: rolls the active segment when due, deletes
    /// segments retention lets go (never at or above the high watermark,
    /// Kafka's rule) and checkpoints the recovery point.
    pub(crate) fn maintain(&self, now_ms: i64) -> Result<(), BrokerError> {
        let high_watermark = Offset(self.progress().high_watermark);
        let mut state = self.lock()?;
        let result = state
            .log
            .maybe_roll(now_ms)
            .and_then(|_| {
                state
                    .log
                    .delete_retained_segments_below(now_ms, high_watermark)
            })
            .and_then(|_| state.log.checkpoint_recovery_point())
            .map_err(|e| self.storage_error(e));
        let log_start_offset = state.log.log_start_offset().0;
        drop(state);
        self.high_watermark.log_start_moved(log_start_offset);
        result
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

pub use sluice_storage::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

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

#[cfg(test)]
mod tests {
    use sluice_protocol::batch_builder::plain_batch;
    use sluice_storage::LeaderEpoch;

    use super::*;
    use crate::replica::role::Role;

    fn batch(count: i64) -> Bytes {
        plain_batch(count, 1000, 1).unwrap()
    }

    fn role(role: Role, epoch: i32) -> PartitionRole {
        PartitionRole {
            role,
            leader_epoch: LeaderEpoch(epoch),
            partition_epoch: epoch,
        }
    }

    fn open(dir: &std::path::Path, r: PartitionRole) -> Partition {
        let log = PartitionLog::open(dir, LogConfig::default()).unwrap();
        Partition::new(
            Arc::from("t"),
            0,
            log,
            DurabilityMode::PageCache,
            Arc::new(Notify::new()),
            r,
        )
        .unwrap()
    }

    fn read_all(p: &Partition) -> Vec<u8> {
        let read = p.read(0, 1 << 20, true, -1).unwrap();
        read.regions
            .iter()
            .flat_map(|r| r.bytes().to_vec())
            .collect()
    }

    /// partitionLeaderEpoch of the batch at the start of `bytes`.
    fn stamped_epoch(bytes: &[u8]) -> i32 {
        i32::from_be_bytes(bytes[12..16].try_into().unwrap())
    }

    #[test]
    fn a_leader_stamps_the_images_epoch_and_a_follower_refuses_clients() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), role(Role::Leader, 7));
        let b = batch(2);
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        let out = p.append_as_leader(&view, 0).unwrap();
        assert_eq!((out.base_offset, out.last_offset), (0, 1));
        let fetched = read_all(&p);
        assert_eq!(stamped_epoch(&fetched), 7);
        assert_eq!(p.checked_leader_epoch(7).unwrap(), 7);
        assert!(matches!(
            p.checked_leader_epoch(6),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
        // The leader refuses the fetcher's appends.
        assert!(matches!(
            p.append_as_follower(&fetched),
            Err(BrokerError::NotLeaderOrFollower { .. })
        ));

        p.apply_role(role(Role::Follower { leader: 3 }, 8)).unwrap();
        assert!(matches!(
            p.append_as_leader(&view, 0),
            Err(BrokerError::NotLeaderOrFollower {
                leader: 3,
                leader_epoch: 8,
                ..
            })
        ));
        assert!(matches!(
            p.read(0, 1 << 20, true, -1),
            Err(BrokerError::NotLeaderOrFollower { .. })
        ));
    }

    #[test]
    fn a_follower_appends_the_leaders_batches_as_they_are_and_truncates() {
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = open(leader_dir.path(), role(Role::Leader, 4));
        for _ in 0..3 {
            let b = batch(2);
            let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
            leader.append_as_leader(&view, 0).unwrap();
        }
        let fetched = read_all(&leader);

        let dir = tempfile::tempdir().unwrap();
        let follower = open(dir.path(), role(Role::Follower { leader: 1 }, 4));
        let appended = follower.append_as_follower(&fetched).unwrap();
        assert_eq!(
            appended,
            FollowerAppend {
                last_offset: 5,
                log_end_offset: 6
            }
        );
        assert_eq!(follower.log_end_offset().unwrap(), 6);
        assert_eq!(follower.progress().high_watermark, 0, "no leader HW yet");
        follower.follower_high_watermark(4);
        assert_eq!(follower.progress().high_watermark, 4);
        assert_eq!(follower.truncate_to(3).unwrap(), 2, "to the batch boundary");
        assert_eq!(follower.log_end_offset().unwrap(), 2);
        assert_eq!(follower.progress().high_watermark, 2);
        assert_eq!(follower.last_fetched_epoch().unwrap(), Some(4));

        // Promoted: it now serves clients, at the new epoch.
        follower.apply_role(role(Role::Leader, 5)).unwrap();
        follower.high_watermark().local_end_advanced(2);
        let b = batch(1);
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        assert_eq!(follower.append_as_leader(&view, 0).unwrap().base_offset, 2);
        let all = read_all(&follower);
        assert_eq!(
            stamped_epoch(&all),
            4,
            "the leader's batches keep their epoch"
        );
        assert_eq!(follower.last_fetched_epoch().unwrap(), Some(5));
        // OffsetForLeaderEpoch from the checkpoint: epoch 4 ended where 5
        // began; 5 is the latest (the log end); 6 is unknown.
        assert_eq!(follower.end_offset_for_epoch(4, -1).unwrap(), (4, 2));
        assert_eq!(follower.end_offset_for_epoch(5, 5).unwrap(), (5, 3));
        assert_eq!(follower.end_offset_for_epoch(6, -1).unwrap(), (-1, -1));
        assert!(matches!(
            follower.end_offset_for_epoch(4, 4),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
    }
}
