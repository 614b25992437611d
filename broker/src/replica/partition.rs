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
//!   `Partition::maintain`, `Partition::maybe_flush`, `Partition::maybe_shrink_isr`.
//!
//! # High watermark
//! [`HighWatermark`] is its only owner (see that module for the rule per
//! role). As leader it is the smaller of this node's written end under the
//! broker's [`DurabilityMode`] (with `Fsync`, the log end offset covered by
//! the last completed fdatasync; with `PageCache`, the log end offset after
//! each append) and the smallest log end offset of the followers the
//! leader's [`LeaderIsr`] waits for. Consumers read below it only;
//! followers read up to the log end.
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
use sluice_storage::{FileRegion, LogConfig, Offset, PartitionLog, PendingFlush, UnflushedFile};
use tokio::sync::Notify;

use super::fetcher_follower::{EpochEnd, FollowerEnd};
use super::high_watermark::HighWatermark;
pub use super::high_watermark::Progress;
use super::isr::{IsrChangeFailure, IsrProposal, LeaderIsr, LeaderStart};
use super::producer_snapshot;
use super::producer_state::{
    ProducerBatch, ProducerStateTable, Refusal, SequenceCheck, WrittenBatch, last_sequence,
};
use super::role::PartitionRole;
use crate::admin::PartitionTraffic;
use crate::config::DurabilityMode;
use crate::error::BrokerError;
use crate::metadata::{BrokerId, PartitionImage};

/// Where an accepted batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The leader epoch the batch was appended (or found) under.
    pub leader_epoch: i32,
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
    /// The ISR and follower tracking while this node leads; `None` while it
    /// follows.
    leader_isr: Option<LeaderIsr>,
}

/// The ISR's size while this node leads (0 while it follows).
fn isr_size(state: &PartitionState) -> usize {
    state.leader_isr.as_ref().map_or(0, |isr| isr.isr().len())
}

/// What the image says about a partition's replicas, with this node's id:
/// what `Partition::apply_role` needs besides the role.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSet<'a> {
    pub node: BrokerId,
    pub replicas: &'a [BrokerId],
    pub isr: &'a [BrokerId],
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: i64,
    pub now_ms: i64,
}

impl<'a> ReplicaSet<'a> {
    /// `node`'s view of `partition` in an image.
    pub fn of(node: BrokerId, partition: &'a PartitionImage, lag_max_ms: i64, now_ms: i64) -> Self {
        Self {
            node,
            replicas: &partition.replicas,
            isr: &partition.isr,
            lag_max_ms,
            now_ms,
        }
    }
}

/// A follower's Fetch, as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    pub follower: BrokerId,
    /// The follower's log end offset.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (Fetch v12+), -1 if unknown.
    pub last_fetched_epoch: i32,
    pub current_leader_epoch: i32,
    /// The follower may join the ISR (registered and unfenced, KIP-841).
    pub follower_eligible: bool,
    pub max_bytes: u32,
    pub min_one_batch: bool,
    pub now_ms: i64,
}

/// What the leader answers a follower's fetch with.
#[derive(Debug)]
pub enum FollowerRead {
    /// Batches from the fetch offset, up to the log end.
    Records(ReadOutcome),
    /// The follower's log diverges from this one (KIP-595): the leader's
    /// end of the largest epoch ≤ the follower's last fetched epoch.
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
        log_start_offset: i64,
    },
}

/// An ISR change the leader proposes to the controller (`IsrChanged`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub proposal: IsrProposal,
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
    /// Wraps an opened log in the role the image gives it, loading
    /// producer state from its latest producer snapshot and the batches
    /// above it (`replica::producer_snapshot`). `start_high_watermark`: where a
    /// replicated partition's high watermark stood (`replica::hw_checkpoint`,
    /// its log start when unknown); `None` for a partition with one
    /// replica, whose whole log, durable after recovery, is committed.
    pub fn new(
        topic: Arc<str>,
        index: i32,
        log: PartitionLog,
        durability: DurabilityMode,
        data_arrived: Arc<Notify>,
        role: PartitionRole,
        start_high_watermark: Option<i64>,
    ) -> Result<Self, BrokerError> {
        let loaded = producer_snapshot::load(&log).map_err(|source| BrokerError::Storage {
            topic: topic.to_string(),
            partition: index,
            source,
        })?;
        tracing::info!(
            topic = %topic,
            partition = index,
            snapshot = loaded.snapshot.map_or(-1, |o| o.0),
            batches_replayed = loaded.batches_replayed,
            producers = loaded.table.producer_count(),
            "producer state loaded"
        );
        let producers = loaded.table;
        let log_end = log.log_end_offset().0;
        let high_watermark = HighWatermark::new(
            log_end,
            start_high_watermark.unwrap_or(log_end),
            log.log_start_offset().0,
            data_arrived,
        );
        high_watermark.set_leading(role.is_leader());
        high_watermark.set_leader_epoch(if role.is_leader() {
            role.leader_epoch.0
        } else {
            -1
        });
        Ok(Self {
            topic,
            index,
            durability,
            state: Mutex::new(Some(PartitionState {
                log,
                producers,
                role,
                leader_isr: None,
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

    /// [`HighWatermark::wait_for`]: a copy of the progress once `settled`
    /// holds, no guard held.
    pub async fn wait_for_progress(&self, settled: impl FnMut(&Progress) -> bool) -> Progress {
        self.high_watermark.wait_for(settled).await
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

    /// Applies the role an image gives the partition, with its replicas
    /// and ISR (the reconciler only). A partition that stops leading takes
    /// no client append from the moment this returns; one that starts
    /// leading keeps its high watermark until its followers report.
    pub fn apply_role(&self, role: PartitionRole, set: &ReplicaSet<'_>) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        let was = state.role;
        state.role = role;
        let replicated_end = if role.is_leader() {
            let log_end = state.log.log_end_offset().0;
            let new_term = !was.is_leader() || was.leader_epoch != role.leader_epoch;
            match state.leader_isr.as_mut() {
                Some(isr) if !new_term => {
                    isr.on_image(
                        role.partition_epoch,
                        set.isr.to_vec(),
                        set.replicas,
                        set.now_ms,
                    );
                }
                _ => {
                    // The new epoch starts at the log end now, not at its
                    // first batch: a follower that asks about an older
                    // epoch learns where it ended here even before this
                    // leader writes (Kafka's makeLeader does the same).
                    state
                        .log
                        .assign_leader_epoch_start(role.leader_epoch)
                        .map_err(|e| self.storage_error(e))?;
                    // Before the new tracker's first answer: the high
                    // watermark stays where it is until followers report.
                    self.high_watermark.set_leading(true);
                    state.leader_isr = Some(LeaderIsr::new(
                        LeaderStart {
                            leader: set.node,
                            replicas: set.replicas,
                            isr: set.isr.to_vec(),
                            partition_epoch: role.partition_epoch,
                            high_watermark: self.progress().high_watermark,
                            leader_epoch_start_offset: log_end,
                        },
                        set.lag_max_ms,
                        set.now_ms,
                    ));
                }
            }
            state
                .leader_isr
                .as_ref()
                .map(|isr| isr.replicated_end(log_end, set.now_ms, |_| false))
        } else {
            state.leader_isr = None;
            // An epoch this node started as leader and wrote nothing in is
            // not one a follower fetched (see `assign_leader_epoch_start`).
            let end = state.log.log_end_offset();
            state
                .log
                .truncate_to(end)
                .map_err(|e| self.storage_error(e))?;
            None
        };
        drop(state);
        match replicated_end {
            Some(end) => self.high_watermark.set_replicated_end(end),
            None => self.high_watermark.set_leading(false),
        }
        self.high_watermark.set_leader_epoch(if role.is_leader() {
            role.leader_epoch.0
        } else {
            -1
        });
        if was.role != role.role {
            tracing::info!(topic = %self.topic, partition = self.index, leader_epoch = role.leader_epoch.0, leader = role.is_leader(), "partition role changed");
        }
        Ok(())
    }

    /// The ISR as of the last image this leader applied (acks=all checks
    /// it against `min.insync.replicas`); empty while following.
    pub fn isr(&self) -> Result<Vec<BrokerId>, BrokerError> {
        Ok(self
            .lock()?
            .leader_isr
            .as_ref()
            .map(|isr| isr.isr().to_vec())
            .unwrap_or_default())
    }

    /// NOT_ENOUGH_REPLICAS when the ISR is smaller than `min_insync`
    /// (an acks=all produce, before its append, as Kafka checks).
    /// A partition the image already names this node leader of, before the
    /// reconciler applied the role, is NOT_LEADER_OR_FOLLOWER here (as the
    /// append would answer), not an ISR of zero.
    pub fn check_enough_replicas(&self, min_insync: usize) -> Result<(), BrokerError> {
        let state = self.lock_as_leader(-1)?;
        self.enough_replicas(&state, min_insync)
    }

    fn enough_replicas(
        &self,
        state: &PartitionState,
        min_insync: usize,
    ) -> Result<(), BrokerError> {
        if isr_size(state) < min_insync {
            return Err(self.not_enough_replicas(state, min_insync));
        }
        Ok(())
    }

    fn not_enough_replicas(&self, state: &PartitionState, min_insync: usize) -> BrokerError {
        BrokerError::NotEnoughReplicas {
            topic: self.topic.to_string(),
            partition: self.index,
            isr: isr_size(state),
            min_insync,
        }
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
    ///
    /// `min_insync` (acks=all): NOT_ENOUGH_REPLICAS when the ISR is smaller,
    /// checked under the same lock as the append. A batch refused as not
    /// leader or for the ISR is remembered, so the producer's next
    /// pipelined batch is refused the same way instead of being told
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (see `producer_state`).
    pub fn append_as_leader(
        &self,
        batch: &RecordBatchView<'_>,
        now_ms: i64,
        min_insync: Option<usize>,
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
        // Produce carries no current leader epoch.
        let refused = match state.role.check_leader(&self.topic, self.index, -1) {
            Err(e) => Some((Refusal::NotLeader, e)),
            Ok(_) => min_insync
                .and_then(|min| self.enough_replicas(&state, min).err())
                .map(|e| (Refusal::NotEnoughReplicas, e)),
        };
        if let Some((refusal, e)) = refused {
            state.producers.note_refused(&producer, refusal);
            return Err(e);
        }
        let log_start_offset = state.log.log_start_offset().0;
        match state.producers.check(&producer) {
            SequenceCheck::Append => {}
            SequenceCheck::Refused(Refusal::NotLeader) => {
                return Err(BrokerError::NotLeaderOrFollower {
                    topic: self.topic.to_string(),
                    partition: self.index,
                    // This node leads now: the client finds it again.
                    leader: -1,
                    leader_epoch: state.role.leader_epoch.0,
                });
            }
            SequenceCheck::Refused(Refusal::NotEnoughReplicas) => {
                return Err(self.not_enough_replicas(&state, min_insync.unwrap_or(1)));
            }
            SequenceCheck::Duplicate(w) => {
                return Ok(AppendOutcome {
                    base_offset: w.base_offset,
                    last_offset: w.last_offset,
                    log_append_time_ms: w.log_append_time_ms,
                    log_start_offset,
                    leader_epoch: state.role.leader_epoch.0,
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
        }
        let epoch = state.role.leader_epoch;
        let segments = state.log.segment_count();
        let info = state
            .log
            .append_as_leader(batch.as_bytes(), epoch, now_ms)
            .map_err(|e| self.storage_error(e))?;
        // Closed after the lock: unmapping a sealed segment read through
        // its mapping took milliseconds (storage's `sealed_files.rs`).
        let sealed = state.log.take_sealed_files();
        // The batch opened a new segment: snapshot the state below it.
        if state.log.segment_count() != segments && info.segment_base_offset == info.base_offset {
            producer_snapshot::take(&state.producers, state.log.dir(), info.base_offset);
        }
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
            max_timestamp: batch.max_timestamp(),
        };
        state.producers.record(&producer, written);
        let log_end = state.log.log_end_offset().0;
        let followers_wait = state
            .leader_isr
            .as_ref()
            .is_some_and(LeaderIsr::has_followers);
        drop(state);
        drop(sealed);
        if self.durability == DurabilityMode::PageCache {
            self.high_watermark.local_end_advanced(log_end);
        }
        self.high_watermark.leader_appended(log_end, followers_wait);
        Ok(AppendOutcome {
            base_offset: written.base_offset,
            last_offset: written.last_offset,
            log_append_time_ms: written.log_append_time_ms,
            log_start_offset,
            leader_epoch: epoch.0,
            duplicate: false,
        })
    }

    /// Reads whole batches from `offset`, below the high watermark, for a
    /// consumer (or the group coordinator) of the partition this node
    /// leads at `current_leader_epoch` (-1: not checked). Zero copies: the
    /// regions are views into the mapping.
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
        self.read_below(
            &state,
            offset,
            max_bytes,
            Offset(progress.high_watermark),
            min_one_batch,
            progress,
        )
    }

    /// Reads whole batches from `offset` up to the log end, above the high
    /// watermark too: the group coordinator's load of an offsets partition
    /// this node just became leader of (Kafka's coordinator loads to the
    /// log end: a leader never truncates, so everything in its log becomes
    /// committed while it leads). Leader only; zero copies.
    pub fn read_to_log_end(&self, offset: i64, max_bytes: u32) -> Result<ReadOutcome, BrokerError> {
        let progress = self.progress();
        if progress.failed {
            return Err(BrokerError::StorageFailed);
        }
        let state = self.lock_as_leader(-1)?;
        let log_start_offset = state.log.log_start_offset().0;
        let log_end = state.log.log_end_offset();
        if offset < log_start_offset || offset >= log_end.0 {
            return Ok(ReadOutcome {
                regions: Vec::new(),
                high_watermark: progress.high_watermark,
                log_start_offset,
            });
        }
        self.read_below(&state, offset, max_bytes, log_end, true, progress)
    }

    /// Whole batches of the log from `offset` below `upper`, with the
    /// progress the caller checked (the shared tail of the leader reads).
    fn read_below(
        &self,
        state: &PartitionState,
        offset: i64,
        max_bytes: u32,
        upper: Offset,
        min_one_batch: bool,
        progress: Progress,
    ) -> Result<ReadOutcome, BrokerError> {
        let read = state
            .log
            .read(Offset(offset), max_bytes, upper, min_one_batch)
            .map_err(|e| self.storage_error(e))?;
        Ok(ReadOutcome {
            regions: read.regions,
            high_watermark: progress.high_watermark,
            log_start_offset: state.log.log_start_offset().0,
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
        producer_snapshot::log_start_moved(state.log.dir(), state.log.log_start_offset());
        let log_start_offset = state.log.log_start_offset().0;
        drop(state);
        self.high_watermark.log_start_moved(log_start_offset);
        // Dropped here, after the lock: unmaps the removed segments and
        // hands their files to the reclaimer.
        result.map(|removed| {
            drop(removed);
            log_start_offset
        })
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

    // ---- leader operations for followers --------------------------------------

    /// A follower's Fetch: the diverging-epoch check (Fetch v12+), then
    /// whole batches from `fetch_offset` up to the log end; records where
    /// the follower is, may propose it into the ISR, and moves the high
    /// watermark. `eligible` says which brokers may count as caught up
    /// (unfenced in the image). Zero copies, as for consumers.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        eligible: impl Fn(BrokerId) -> bool,
    ) -> Result<(FollowerRead, Option<IsrChange>), BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let mut state = self.lock_as_leader(fetch.current_leader_epoch)?;
        let log_start_offset = state.log.log_start_offset().0;
        let log_end = state.log.log_end_offset();
        if fetch.last_fetched_epoch >= 0 {
            let (epoch, end_offset) = state
                .log
                .leader_epochs()
                .end_offset_for(fetch.last_fetched_epoch, log_end);
            // Kafka's rule: the follower's last epoch is unknown here, or
            // ends before where the follower is.
            if epoch < fetch.last_fetched_epoch || end_offset < fetch.fetch_offset {
                drop(state);
                return Ok((
                    FollowerRead::Diverging {
                        epoch,
                        end_offset,
                        high_watermark: self.progress().high_watermark,
                        log_start_offset,
                    },
                    None,
                ));
            }
        }
        if fetch.fetch_offset < log_start_offset || fetch.fetch_offset > log_end.0 {
            return Err(BrokerError::OffsetOutOfRange {
                requested: fetch.fetch_offset,
                log_start: log_start_offset,
                log_end: log_end.0,
            });
        }
        let leader_epoch = state.role.leader_epoch.0;
        let (proposal, replicated_end) = match state.leader_isr.as_mut() {
            Some(isr) => {
                // A follower joins only once it has reached the high
                // watermark as published, not the one this leader started
                // its term with.
                isr.observe_high_watermark(self.high_watermark.progress().high_watermark);
                let proposal = isr.on_follower_fetch(
                    fetch.follower,
                    fetch.fetch_offset,
                    log_end.0,
                    fetch.now_ms,
                    fetch.follower_eligible,
                );
                (
                    proposal,
                    isr.replicated_end(log_end.0, fetch.now_ms, &eligible),
                )
            }
            None => (None, i64::MAX),
        };
        let read = state
            .log
            .read(
                Offset(fetch.fetch_offset),
                fetch.max_bytes,
                log_end,
                fetch.min_one_batch,
            )
            .map_err(|e| self.storage_error(e))?;
        drop(state);
        self.high_watermark.set_replicated_end(replicated_end);
        let change = proposal.map(|proposal| IsrChange {
            leader_epoch,
            proposal,
        });
        Ok((
            FollowerRead::Records(ReadOutcome {
                regions: read.regions,
                high_watermark: self.progress().high_watermark,
                log_start_offset,
            }),
            change,
        ))
    }

    /// The ISR members that have not caught up for `replica.lag.time.max.ms`,
    /// proposed out (the maintenance pass); `None` while following or when
    /// every member keeps up.
    pub fn maybe_shrink_isr(&self, now_ms: i64) -> Result<Option<IsrChange>, BrokerError> {
        let mut state = self.lock()?;
        let log_end = state.log.log_end_offset().0;
        let leader_epoch = state.role.leader_epoch.0;
        Ok(state
            .leader_isr
            .as_mut()
            .and_then(|isr| isr.maybe_shrink(log_end, now_ms))
            .map(|proposal| IsrChange {
                leader_epoch,
                proposal,
            }))
    }

    /// `change` did not apply (see [`IsrChangeFailure`]): returns whether
    /// it is still this partition's pending change and must be sent again
    /// as it is (its fate is unknown).
    pub fn isr_change_failed(&self, change: &IsrChange, failure: IsrChangeFailure) -> bool {
        if let Ok(mut state) = self.lock()
            && state.role.leader_epoch.0 == change.leader_epoch
            && let Some(isr) = state.leader_isr.as_mut()
            && isr.pending() == Some(&change.proposal)
        {
            return isr.on_proposal_failed(failure);
        }
        false
    }

    // ---- follower operations (the replica fetcher, issue 15) ---------------

    /// Appends batches fetched from the leader: their offsets and leader
    /// epochs are kept and must continue the log. Refused unless this node
    /// follows the partition. Copies the bytes once, into the segment.
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<FollowerAppend, BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let mut guard = self.lock()?;
        let state = &mut *guard;
        state.role.check_follower(&self.topic, self.index)?;
        let segments = state.log.segment_count();
        let info = state
            .log
            .append_as_follower(batches)
            .map_err(|e| self.storage_error(e))?;
        let sealed = state.log.take_sealed_files();
        // A batch opened a new segment: the state below the last new one
        // is snapshotted as the batches are recorded.
        let rolled_at = (state.log.segment_count() != segments)
            .then(|| state.log.segment_base_offsets().last().copied())
            .flatten();
        // Idempotent-producer state follows the log, so a failover to this
        // replica deduplicates retries as the old leader did.
        for (_, view) in sluice_protocol::BatchIter::new(batches, usize::MAX).map_while(Result::ok)
        {
            if rolled_at == Some(Offset(view.base_offset())) {
                producer_snapshot::take(
                    &state.producers,
                    state.log.dir(),
                    Offset(view.base_offset()),
                );
            }
            producer_snapshot::record_batch(&mut state.producers, &view);
        }
        let log_end_offset = state.log.log_end_offset().0;
        drop(guard);
        drop(sealed);
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
        // Snapshots above the new end go before anything is appended.
        state.producers = producer_snapshot::load(&state.log)
            .map_err(|e| self.storage_error(e))?
            .table;
        drop(state);
        self.high_watermark.truncated(end.0);
        Ok(end.0)
    }

    /// Where this follower's log ends, for its next Fetch.
    pub fn follower_end(&self) -> Result<FollowerEnd, BrokerError> {
        let state = self.lock()?;
        Ok(FollowerEnd {
            log_end_offset: state.log.log_end_offset().0,
            last_epoch: state.log.leader_epochs().latest_epoch().map(|e| e.0),
            log_start_offset: state.log.log_start_offset().0,
        })
    }

    /// This replica's own end of `epoch` (the largest epoch ≤ it), without
    /// a role check: a follower compares it with its leader's.
    pub fn own_epoch_end(&self, epoch: i32) -> Result<Option<EpochEnd>, BrokerError> {
        let state = self.lock()?;
        let log_end = state.log.log_end_offset();
        let (epoch, end_offset) = state.log.leader_epochs().end_offset_for(epoch, log_end);
        Ok((epoch != UNDEFINED_EPOCH).then_some(EpochEnd { epoch, end_offset }))
    }

    /// Empties a follower's log and starts it at `offset` (its leader's log
    /// start moved past everything it holds); durable when it returns.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        state.role.check_follower(&self.topic, self.index)?;
        state
            .log
            .truncate_fully_and_start_at(Offset(offset))
            .map_err(|e| self.storage_error(e))?;
        // Every snapshot is of the log just emptied.
        sluice_storage::producer_snapshot::delete_above(state.log.dir(), Offset(-1))
            .map_err(|e| self.storage_error(e))?;
        state.producers = ProducerStateTable::default();
        let log_start_offset = state.log.log_start_offset().0;
        drop(state);
        self.high_watermark.truncated(offset);
        self.high_watermark.log_start_moved(log_start_offset);
        Ok(())
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

    /// Undoes [`Partition::try_queue_flush`] when the queue refused it.
    pub(crate) fn unqueue_flush(&self) {
        self.flush_queued.store(false, Ordering::Release);
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
        // A closed replica leads nothing: produces and commits waiting for
        // its high watermark answer NOT_LEADER_OR_FOLLOWER now instead of
        // timing out (a replica moved off this node, a deleted topic).
        self.high_watermark.set_leader_epoch(-1);
        match taken {
            Some(state) => {
                producer_snapshot::take_at_close(&state.producers, &state.log);
                state.log.close().map_err(|e| self.storage_error(e))
            }
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

    /// The maintenance pass: rolls the active segment when due (with a
    /// producer snapshot), deletes segments retention lets go (never at or
    /// above the high watermark, Kafka's rule) and the producer snapshots
    /// below the new log start, and forgets producers idle for
    /// `producer_expiration_ms`. A deletion checkpoints the log start
    /// itself; the recovery point has its own interval
    /// ([`Partition::checkpoint_recovery_point`]).
    pub(crate) fn maintain(
        &self,
        now_ms: i64,
        producer_expiration_ms: i64,
    ) -> Result<(), BrokerError> {
        let high_watermark = Offset(self.progress().high_watermark);
        let mut guard = self.lock()?;
        let state = &mut *guard;
        let start_before = state.log.log_start_offset();
        let rolled = state.log.maybe_roll(now_ms);
        if matches!(rolled, Ok(true)) {
            producer_snapshot::take(
                &state.producers,
                state.log.dir(),
                state.log.log_end_offset(),
            );
        }
        let removed = rolled
            .and_then(|_| {
                state
                    .log
                    .delete_retained_segments_below(now_ms, high_watermark)
            })
            .map_err(|e| self.storage_error(e));
        let start_moved = (state.log.log_start_offset() != start_before)
            .then(|| (state.log.dir().to_path_buf(), state.log.log_start_offset()));
        state.producers.expire(now_ms, producer_expiration_ms);
        let log_start_offset = state.log.log_start_offset().0;
        let sealed = state.log.take_sealed_files();
        drop(guard);
        drop(sealed);
        self.high_watermark.log_start_moved(log_start_offset);
        // Unlinks out of the lock (the removed segments' files and
        // unmapping, the snapshots below the new log start): under it, while
        // the file system wrote back dirty pages, they stalled the
        // partition's appends for up to ~300 ms a pass.
        drop(removed?);
        if let Some((dir, start)) = start_moved {
            producer_snapshot::log_start_moved(&dir, start);
        }
        Ok(())
    }

    /// Persists the recovery point (and log start offset) if either moved
    /// since the last checkpoint: a small file written and fsynced with its
    /// directory, under the partition's lock (appends wait for it). Called
    /// every `log.flush.offset.checkpoint.interval.ms`; after a crash,
    /// recovery scans the log from the checkpointed recovery point.
    pub(crate) fn checkpoint_recovery_point(&self) -> Result<(), BrokerError> {
        let mut state = self.lock()?;
        state
            .log
            .checkpoint_recovery_point()
            .map_err(|e| self.storage_error(e))
    }

    /// What a compaction pass (`replica::log_cleaner`) reads: the
    /// inactive segments wholly below the high watermark and older than
    /// `newest_ms`, taken under the lock in one short step (shared mapped
    /// bytes, no copy); the cleaner builds their cleaned copies without the
    /// lock. Leader or follower alike (Kafka cleans every local log): the
    /// range below the high watermark is the same on every in-sync
    /// replica. Producer state needs no change: the cleaner keeps each
    /// producer's last batch.
    pub(crate) fn cleaning_input(
        &self,
        newest_ms: i64,
    ) -> Result<Option<sluice_storage::compaction::CleaningInput>, BrokerError> {
        if self.progress().failed {
            return Err(BrokerError::StorageFailed);
        }
        let limit = Offset(self.progress().high_watermark);
        let state = self.lock()?;
        state
            .log
            .cleaning_input(limit, newest_ms)
            .map_err(|e| self.storage_error(e))
    }

    /// Swaps a cleaned segment in, under the lock (a few renames and
    /// directory fsyncs); false when the segment it replaces changed
    /// meanwhile.
    pub(crate) fn swap_in_cleaned(
        &self,
        built: sluice_storage::compaction::CleanedSegment,
    ) -> Result<bool, BrokerError> {
        let mut state = self.lock()?;
        state
            .log
            .swap_in_cleaned(built, None)
            .map_err(|e| self.storage_error(e))
    }

    /// Testing seam (the replication simulation): every batch from the log
    /// start to the log end, whatever the role, so a checker can compare
    /// replicas. Zero copies: views of the mapping.
    #[doc(hidden)]
    pub fn read_whole_log(&self) -> Result<Vec<FileRegion>, BrokerError> {
        let state = self.lock()?;
        let (start, end) = (state.log.log_start_offset(), state.log.log_end_offset());
        let mut regions = Vec::new();
        let mut next = start;
        while next < end {
            let read = state
                .log
                .read(next, 16 * 1024 * 1024, end, true)
                .map_err(|e| self.storage_error(e))?;
            let Some(last) = read.regions.last() else {
                break;
            };
            let mut moved = next;
            for item in sluice_protocol::BatchIter::new(&last.bytes(), usize::MAX) {
                let Ok((_, view)) = item else { break };
                moved = Offset(view.last_offset() + 1);
            }
            regions.extend(read.regions);
            if moved <= next {
                break;
            }
            next = moved;
        }
        Ok(regions)
    }

    /// Testing seam (the replication simulation): closes the partition as
    /// a crash would — no flush, no checkpoint, no clean-shutdown marker —
    /// and names the bytes never fsynced (see
    /// `sluice_storage::PartitionLog::simulate_crash`).
    #[doc(hidden)]
    pub fn simulate_crash(&self) -> Vec<UnflushedFile> {
        let taken = match self.state.lock() {
            Ok(mut state) => state.take(),
            Err(_) => None,
        };
        taken.map(|s| s.log.simulate_crash()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use sluice_protocol::batch_builder::plain_batch;
    use sluice_storage::LeaderEpoch;

    use super::*;
    use crate::replica::role::Role;
    use std::time::Duration;

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

    /// Node 1, the only replica.
    const SOLE: ReplicaSet<'static> = ReplicaSet {
        node: 1,
        replicas: &[1],
        isr: &[1],
        lag_max_ms: 30_000,
        now_ms: 0,
    };

    fn follower_fetch(fetch_offset: i64, last_fetched_epoch: i32) -> FollowerFetch {
        FollowerFetch {
            follower: 2,
            fetch_offset,
            last_fetched_epoch,
            current_leader_epoch: 3,
            follower_eligible: true,
            max_bytes: 1 << 20,
            min_one_batch: true,
            now_ms: 10,
        }
    }

    /// A produce waiting for acks=all asks for the ISR once its batch is
    /// covered. It once did so still holding the guard of the progress
    /// watch: with a follower read holding the state lock (and reading the
    /// progress) and an append queued to publish, the three waited on each
    /// other for good — the leader of a three-node benchmark stopped
    /// (docs/benchmarks.md, "A leader that stopped under acks=all"). Here
    /// waiters, follower reads and appends run together and must finish.
    #[test]
    fn acks_waiters_follower_reads_and_appends_never_wait_on_each_other() {
        const BATCHES: i64 = 20_000;
        const FIRST: i64 = 4; // leader_with_four_records
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(leader_with_four_records(dir.path(), &[1, 2], &[1, 2]));
        let (finished, finishes) = std::sync::mpsc::channel();
        let appender = {
            let (p, finished) = (Arc::clone(&p), finished.clone());
            std::thread::spawn(move || {
                for _ in 0..BATCHES {
                    let b = batch(1);
                    let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
                    p.append_as_leader(&view, 0, None).unwrap();
                }
                finished.send("appender").unwrap();
            })
        };
        let follower = {
            let (p, finished) = (Arc::clone(&p), finished.clone());
            std::thread::spawn(move || {
                while p.progress().high_watermark < FIRST + BATCHES {
                    let caught_up = p.progress().written_end;
                    p.read_for_follower(&follower_fetch(caught_up, 3), |_| true)
                        .unwrap();
                }
                finished.send("follower").unwrap();
            })
        };
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    for last_offset in FIRST..FIRST + BATCHES {
                        let progress = p
                            .wait_for_progress(|p| p.high_watermark > last_offset)
                            .await;
                        assert!(progress.high_watermark > last_offset);
                        assert_eq!(p.isr().unwrap(), [1, 2]);
                    }
                });
                finished.send("waiter").unwrap();
            })
        };
        for _ in 0..3 {
            let who = finishes.recv_timeout(Duration::from_secs(60));
            assert!(
                who.is_ok(),
                "appends, follower reads and acks waiters deadlocked"
            );
        }
        for t in [appender, follower, waiter] {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_leader_with_a_follower_moves_its_high_watermark_as_the_follower_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_four_records(dir.path(), &[1, 2], &[1, 2]);
        assert_eq!(p.progress().written_end, 4);
        assert_eq!(
            p.progress().high_watermark,
            0,
            "the follower has nothing yet"
        );
        assert!(p.read(0, 1 << 20, true, -1).unwrap().regions.is_empty());

        let (read, change) = p
            .read_for_follower(&follower_fetch(0, -1), |_| true)
            .unwrap();
        assert!(change.is_none(), "already in the ISR");
        let FollowerRead::Records(read) = read else {
            panic!("records expected")
        };
        let bytes: u64 = read.regions.iter().map(|r| r.len()).sum();
        assert!(bytes > 0, "a follower reads above the high watermark");
        assert_eq!(read.high_watermark, 0);

        let (read, _) = p
            .read_for_follower(&follower_fetch(4, 3), |_| true)
            .unwrap();
        assert!(matches!(read, FollowerRead::Records(r) if r.high_watermark == 4));
        assert_eq!(p.progress().high_watermark, 4);

        // A follower past the leader's end of its last epoch diverges
        // there (epoch 3 began at 0, so epoch 2 ended at 0); one whose
        // epoch is newer than any here learns nothing but to truncate to
        // its high watermark (UNDEFINED).
        let (read, _) = p
            .read_for_follower(&follower_fetch(6, 2), |_| true)
            .unwrap();
        assert!(matches!(
            read,
            FollowerRead::Diverging {
                epoch: 2,
                end_offset: 0,
                ..
            }
        ));
        let (read, _) = p
            .read_for_follower(&follower_fetch(6, 9), |_| true)
            .unwrap();
        assert!(matches!(
            read,
            FollowerRead::Diverging {
                epoch: -1,
                end_offset: -1,
                ..
            }
        ));
        assert!(matches!(
            p.check_enough_replicas(3),
            Err(BrokerError::NotEnoughReplicas { isr: 2, .. })
        ));
        assert!(p.check_enough_replicas(2).is_ok());
        let set = ReplicaSet {
            replicas: &[1, 2],
            isr: &[1, 2],
            ..SOLE
        };
        p.apply_role(role(Role::Follower { leader: 2 }, 4), &set)
            .unwrap();
        assert!(matches!(
            p.check_enough_replicas(1),
            Err(BrokerError::NotLeaderOrFollower { leader: 2, .. })
        ));
    }

    /// Found by the replication simulation: a new leader with an empty log
    /// knew no epoch, so followers holding uncommitted records of an older
    /// epoch were told UNDEFINED, kept them (down to their high watermark)
    /// and never caught up.
    #[test]
    fn a_new_leader_tells_followers_where_older_epochs_ended_before_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), role(Role::Follower { leader: 2 }, 0));
        let set = ReplicaSet {
            replicas: &[1, 2],
            isr: &[1],
            ..SOLE
        };
        p.apply_role(role(Role::Leader, 12), &set).unwrap();
        let (read, _) = p
            .read_for_follower(
                &FollowerFetch {
                    current_leader_epoch: 12,
                    ..follower_fetch(3, 0)
                },
                |_| true,
            )
            .unwrap();
        assert!(matches!(
            read,
            FollowerRead::Diverging {
                epoch: 0,
                end_offset: 0,
                ..
            }
        ));
        // Deposed before it wrote: epoch 12 is not its last fetched epoch.
        assert_eq!(p.last_fetched_epoch().unwrap(), Some(12));
        p.apply_role(role(Role::Follower { leader: 2 }, 13), &set)
            .unwrap();
        assert_eq!(p.last_fetched_epoch().unwrap(), None);
    }

    /// Found by the replication simulation: the ISR join rule compared a
    /// follower with the high watermark the leader started its term with,
    /// so a follower missing acknowledged records joined the ISR.
    #[test]
    fn a_follower_below_the_high_watermark_does_not_join_the_isr() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_four_records(dir.path(), &[1, 2, 3], &[1, 2]);
        let (_, change) = p
            .read_for_follower(&follower_fetch(4, 3), |_| true)
            .unwrap();
        assert!(change.is_none());
        assert_eq!(p.progress().high_watermark, 4);
        let behind = FollowerFetch {
            follower: 3,
            ..follower_fetch(0, -1)
        };
        let (_, change) = p.read_for_follower(&behind, |_| true).unwrap();
        assert_eq!(change, None, "follower 3 lacks offsets 0..4");
        let caught_up = FollowerFetch {
            follower: 3,
            ..follower_fetch(4, 3)
        };
        let (_, change) = p.read_for_follower(&caught_up, |_| true).unwrap();
        assert_eq!(change.map(|c| c.proposal.isr), Some(vec![1, 2, 3]));
    }

    /// Node 1 leading at epoch 3 with `replicas` and `isr`, after two
    /// appends of two records.
    fn leader_with_four_records(dir: &std::path::Path, replicas: &[i32], isr: &[i32]) -> Partition {
        let p = open(dir, role(Role::Leader, 3));
        let set = ReplicaSet {
            replicas,
            isr,
            ..SOLE
        };
        p.apply_role(role(Role::Leader, 3), &set).unwrap();
        for _ in 0..2 {
            let b = batch(2);
            let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
            p.append_as_leader(&view, 0, None).unwrap();
        }
        p
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
            None,
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
        let out = p.append_as_leader(&view, 0, None).unwrap();
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

        p.apply_role(role(Role::Follower { leader: 3 }, 8), &SOLE)
            .unwrap();
        assert!(matches!(
            p.append_as_leader(&view, 0, None),
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
            leader.append_as_leader(&view, 0, None).unwrap();
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
        follower.apply_role(role(Role::Leader, 5), &SOLE).unwrap();
        follower.high_watermark().local_end_advanced(2);
        let b = batch(1);
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        assert_eq!(
            follower
                .append_as_leader(&view, 0, None)
                .unwrap()
                .base_offset,
            2
        );
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
