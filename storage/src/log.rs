//! `PartitionLog`: one partition's ordered segments, and the append, read
//! and flush paths over them.
//!
//! Append: validate every batch (framing, magic, CRC-32C, size) → assign
//! offsets (leader) or check them (follower) → roll if the active segment
//! cannot take the batch → one copy into the mapped `.log`, rewrite of
//! `baseOffset`/`partitionLeaderEpoch` in place → sparse index entries.
//!
//! # What is durable after each call
//!
//! | call | durable on return |
//! |---|---|
//! | `append_as_leader` / `append_as_follower` | nothing (page cache only; a process crash keeps it, a power cut may not) |
//! | `roll` | nothing (the new segment's directory entry with the next flush; the checkpoint with the next `checkpoint_recovery_point`), unless [`crate::limits::RECOVERY_SCAN_BYTES_MAX`] lie past the checkpointed recovery point: then the checkpoint |
//! | `PendingFlush::sync` | every batch below `PendingFlush::log_end_offset()` |
//! | `complete_flush` / `flush` / `maybe_flush` (when it flushes) | same as `sync`; the recovery point in memory advances, the checkpoint file does not |
//! | `checkpoint_recovery_point` | the recovery point and log start offset, in the checkpoint; a leader-epoch truncation from the start; the reused index files (`spare_segment.rs`) of segments below the recovery point, emptied |
//! | `advance_log_start_offset` | the new log start offset (checkpoint) |
//! | `truncate_to` / `truncate_fully_and_start_at` | the truncation: removed batches never come back after a crash |
//! | `delete_retained_segments` | nothing: the files are renamed, and unlinked when the returned value drops; the log start reaches the checkpoint with the next `checkpoint_recovery_point` (recovery derives it from the first segment; a segment a power cut resurrects is deleted again) |
//! | `close` | everything, plus the clean-shutdown marker (only what is not durable yet is synced; a log holding no batch needs neither) |
//! | `open` of a new directory | the directory's entry in its parent (the log directory); the segment's entries with the first flush |
//!
//! # Invariants
//! - `segments` is never empty, sorted by base offset, dense: each
//!   segment's base offset is the previous one's `next_offset`. The last
//!   one is the active segment, the only one appended to.
//! - `log_start <= log_end`; `recovery_point <= log_end`; every offset
//!   below `recovery_point` has been fsynced.
//! - Once the shared [`LogDirHealth`] is poisoned every call fails with
//!   `Error::Poisoned`; a log that recovery found damaged below its
//!   recovery point fails every call with `Error::Damaged` and writes no
//!   file.
//!
//! # Caveats
//! - Offsets are dense: compaction and its gaps are not implemented yet.
//! - The active segment reserves `segment.bytes` of disk (plus two index
//!   files of `segment.index.bytes`) per partition from the moment it is
//!   created: size the disk for it, or lower `segment.bytes` for topics
//!   with many partitions.
//! - The active segment holds one descriptor and three memory mappings;
//!   inactive segments hold theirs only while open under the broker-wide
//!   [`FileBudget`] (`file_budget.rs`), so a node's descriptors and maps do
//!   not grow with its data.
//! - Reads do not re-check CRCs: batches were checked on append and by
//!   recovery; consumers check them again.
//!
//! # References
//! Kafka's `UnifiedLog` / `LocalLog`, KIP-74 (fetch min one batch).

use std::path::{Path, PathBuf};

use sluice_protocol::DecodeError;
use sluice_protocol::record_batch::{BatchIter, TimestampType};

use crate::checkpoint::{self, Checkpoint};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::file_budget::FileBudget;
use crate::leader_epoch::LeaderEpochCache;
use crate::limits;
use crate::log_dir::LogDirHealth;
use crate::offset::{FilePosition, LeaderEpoch, Offset};
use crate::reclaim::Reclaimer;
use crate::recovery;
use crate::sealed_files::SealedFiles;
use crate::segment::{BatchMeta, Segment};
use crate::spare_segment::SpareSlot;

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// `Some(now_ms)` when a batch uses LogAppendTime (the broker has put
    /// that time in its maxTimestamp), else `None` (Kafka's -1).
    pub log_append_time_ms: Option<i64>,
    /// Largest batch maxTimestamp among the appended batches.
    pub max_timestamp: i64,
    /// Base offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: Offset,
    /// Position of the first appended batch in its segment.
    pub position: FilePosition,
    /// Base offset of the segment holding the first appended batch.
    pub segment_base_offset: Offset,
    /// Offsets consumed (`last_offset - base_offset + 1`).
    pub records_count: u64,
    /// Batches appended.
    pub batch_count: u32,
    /// Bytes appended.
    pub bytes: u64,
    /// The log start offset after the append.
    pub log_start_offset: Offset,
}

/// One `.log` file a crash could cut: bytes past `flushed_len` may be lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnflushedFile {
    pub path: PathBuf,
    pub flushed_len: u64,
    pub written_len: u64,
}

struct Planned<'a> {
    bytes: &'a [u8],
    meta: BatchMeta,
    log_append_time: bool,
    /// The batch's partitionLeaderEpoch as received (a follower keeps it).
    epoch: i32,
}

/// A partition's log. See the module docs.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start: Offset,
    pub(crate) recovery_point: Offset,
    pub(crate) health: LogDirHealth,
    /// Where inactive segments' files are opened and closed.
    pub(crate) files: FileBudget,
    /// Where removed segments' files go to be freed (in place for a
    /// standalone log; a [`crate::LogDir`]'s thread for the broker's).
    pub(crate) reclaimer: Reclaimer,
    /// Removed segments' `.log`s kept to become the next segments'
    /// (`spare_segment.rs`).
    pub(crate) spare: SpareSlot,
    /// Bumped by truncations: a `PendingFlush` from before is ignored.
    pub(crate) generation: u64,
    /// Directory entries changed (segments created) / known fsynced.
    pub(crate) dir_changes: u64,
    pub(crate) dir_synced: u64,
    pub(crate) last_flush_ms: Option<i64>,
    /// What the checkpoint file holds, once this process wrote it: an
    /// unchanged checkpoint is not rewritten (each write costs two fsyncs).
    pub(crate) last_checkpoint: Option<Checkpoint>,
    /// Leader epoch → first offset (`leader_epoch.rs`), kept in step by
    /// append, truncation and the log start moving.
    pub(crate) epochs: LeaderEpochCache,
    /// Recovery found damage below the recovery point: every call fails
    /// with [`Error::Damaged`] and no file is written.
    pub(crate) damage: Option<recovery::Damage>,
    /// Files of segments rolls sealed, for the caller to close after its
    /// lock ([`PartitionLog::take_sealed_files`], `sealed_files.rs`).
    pub(crate) sealed_files: SealedFiles,
}

pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir` (`<topic>-<partition>`),
    /// recovering it: see `recovery.rs`. The directory gets its own health
    /// flag; use [`crate::LogDir::open_partition`] to share one.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self> {
        Self::open_with_health(dir, config, LogDirHealth::new(dir))
    }

    /// [`PartitionLog::open`] sharing `health` with other partitions.
    pub fn open_with_health(dir: &Path, config: LogConfig, health: LogDirHealth) -> Result<Self> {
        Self::open_with_budget(dir, config, health, FileBudget::default())
    }

    /// [`PartitionLog::open_with_health`] whose inactive segments open and
    /// close under `files`, a budget shared with other partitions.
    pub fn open_with_budget(
        dir: &Path,
        config: LogConfig,
        health: LogDirHealth,
        files: FileBudget,
    ) -> Result<Self> {
        let (log, created) = Self::open_leaving_parent(dir, config, health, files)?;
        // A new partition directory's own entry lives in its parent: without
        // this fsync a power cut can take back the whole partition, synced
        // segments included (found by tests/powerloss).
        if created && let Some(parent) = dir.parent() {
            checkpoint::sync_dir(parent).inspect_err(|_| log.health.poison())?;
        }
        Ok(log)
    }

    /// [`PartitionLog::open_with_health`] without the fsync of the parent
    /// directory; the bool says whether `dir` was created, and then the
    /// caller must fsync the parent before it hands the log out
    /// ([`crate::LogDir::open_partitions`] does it once for many).
    pub(crate) fn open_leaving_parent(
        dir: &Path,
        config: LogConfig,
        health: LogDirHealth,
        files: FileBudget,
    ) -> Result<(Self, bool)> {
        config.validate()?;
        health.check()?;
        let created = !dir.is_dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
        let r = recovery::recover(dir, &config, wall_clock_ms()).inspect_err(|e| {
            if matches!(e, Error::Io { .. }) {
                health.poison();
            }
        })?;
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments: r.segments,
            log_start: r.log_start,
            recovery_point: r.recovery_point,
            health,
            files,
            reclaimer: Reclaimer::inline(),
            spare: SpareSlot::default(),
            generation: 0,
            dir_changes: u64::from(r.dir_unsynced),
            dir_synced: 0,
            last_flush_ms: None,
            last_checkpoint: Some(r.on_disk),
            damage: r.damage,
            epochs: LeaderEpochCache::empty(dir),
            sealed_files: SealedFiles::default(),
        };
        // Recovery read every segment; the inactive ones close until read.
        log.release_inactive();
        if log.damage.is_some() {
            // Left exactly as found: no checkpoint, marker or truncation.
            return Ok((log, created));
        }
        if log.log_start > log.log_end_offset() {
            // The checkpoint's log start lies past the data that survived
            // (unflushed tail lost): keep offsets monotonic for consumers.
            let start = log.log_start;
            log.truncate_fully_and_start_at(start)?;
        }
        log.write_checkpoint()?;
        log.load_leader_epochs()?;
        let removed = checkpoint::remove_clean_shutdown(dir);
        log.poison_on_err(removed)?;
        Ok((log, created))
    }

    /// Removed segments' files go to `reclaimer` from now on.
    pub(crate) fn with_reclaimer(mut self, reclaimer: Reclaimer) -> Self {
        self.reclaimer = reclaimer;
        self
    }

    /// Hands every inactive segment's files to the budget, closed until
    /// read.
    fn release_inactive(&mut self) {
        let inactive = self.segments.len().saturating_sub(1);
        for seg in self.segments.iter_mut().take(inactive) {
            seg.release(&self.dir, &self.files);
        }
    }

    /// Loads the leader-epoch checkpoint, or rebuilds it from the batch
    /// headers when it is missing or damaged, then fits it to the log that
    /// survived recovery (a cut tail, a moved log start).
    fn load_leader_epochs(&mut self) -> Result<()> {
        let loaded = LeaderEpochCache::load(&self.dir)?;
        let rebuilt = loaded.is_none();
        self.epochs = match loaded {
            Some(cache) => cache,
            None => self.scan_leader_epochs()?,
        };
        let (start, end) = (self.log_start, self.log_end_offset());
        self.epochs.truncate_from_end(end)?;
        self.epochs.truncate_from_start(start);
        if rebuilt && !self.epochs.entries().is_empty() {
            self.epochs.flush()?;
        }
        Ok(())
    }

    /// The leader-epoch cache of the batch headers from the log start on
    /// (headers only, read through the mapping).
    fn scan_leader_epochs(&self) -> Result<LeaderEpochCache> {
        let mut cache = LeaderEpochCache::empty(&self.dir);
        let mut next = self.log_start;
        let end = self.log_end_offset();
        while next < end {
            let read = self.read(next, 16 * 1024 * 1024, end, true)?;
            let before = next;
            for region in &read.regions {
                let bytes = region.bytes();
                for (_, view) in BatchIter::new(&bytes, usize::MAX).map_while(|b| b.ok()) {
                    cache.assign_in_memory(
                        LeaderEpoch(view.partition_leader_epoch()),
                        Offset(view.base_offset()),
                    );
                    next = Offset(view.last_offset()).next();
                }
            }
            if next <= before {
                break;
            }
        }
        Ok(cache)
    }

    /// The leader-epoch cache (OffsetForLeaderEpoch, the follower's last
    /// fetched epoch).
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// A new leader's epoch starts at the log end offset, before any batch
    /// of it is written (Kafka's `maybeAssignEpochStartOffset` in
    /// `makeLeader`): a follower asking about an older epoch then learns
    /// where it ended here, even while this log holds no batch of the new
    /// epoch. Changes nothing when the cache already ends with `epoch`.
    pub fn assign_leader_epoch_start(&mut self, epoch: LeaderEpoch) -> Result<()> {
        let end = self.log_end_offset();
        let r = self.epochs.assign(epoch, end);
        self.poison_on_err(r)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the config (a topic config change). Takes effect at the
    /// next roll, retention pass and flush-policy check; existing segments
    /// keep their size.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The first offset a read may ask for.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start
    }

    /// One past the last offset in the log.
    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// Every offset below this is fsynced (as of the last completed flush).
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.iter().map(|s| s.base).collect()
    }

    pub fn health(&self) -> &LogDirHealth {
        &self.health
    }

    /// Offsets appended but not yet fsynced.
    pub fn unflushed_messages(&self) -> u64 {
        u64::try_from(self.log_end_offset().0 - self.recovery_point.0).unwrap_or(0)
    }

    pub(crate) fn active(&self) -> &Segment {
        // The invariant "segments is never empty" holds from open on; the
        // fallback index keeps this total without a panic path.
        let last = self.segments.len().saturating_sub(1);
        #[allow(clippy::indexing_slicing)]
        &self.segments[last]
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len().saturating_sub(1);
        #[allow(clippy::indexing_slicing)]
        &mut self.segments[last]
    }

    pub(crate) fn check(&self) -> Result<()> {
        self.health.check()?;
        match &self.damage {
            None => Ok(()),
            Some(d) => Err(Error::Damaged {
                path: d.path.clone(),
                position: d.position,
                reason: d.reason.clone(),
            }),
        }
    }

    /// Whether recovery found this partition damaged below its recovery
    /// point ([`Error::Damaged`]): it serves nothing until repaired.
    pub fn is_damaged(&self) -> bool {
        self.damage.is_some()
    }

    /// Poisons the directory on a failure that may leave the files and
    /// memory apart ([`Error::takes_log_dir_offline`]); a refused resource
    /// or preallocation fails the call alone.
    pub(crate) fn poison_on_err<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && e.takes_log_dir_offline()
        {
            tracing::error!(dir = %self.dir.display(), error = %e, "log directory is now offline");
            self.health.poison();
        }
        r
    }

    /// Appends batches as the leader: offsets are assigned from the log end
    /// offset and each batch's `baseOffset` and `partitionLeaderEpoch` are
    /// rewritten (outside the CRC).
    ///
    /// The batches must already be validated by the caller, CRC-32C
    /// included (the produce handler does it): this checks framing (length
    /// bounds, magic, `lastOffsetDelta`) and `max.message.bytes`, not the
    /// CRC. A batch with a bad CRC stored here would end the log at the
    /// next unclean recovery, taking every later batch with it.
    pub fn append_as_leader(
        &mut self,
        batches: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append(batches, Some(leader_epoch), now_ms)
    }

    /// Appends batches as a follower: offsets and epochs are kept and must
    /// continue the log exactly (`Error::OffsetMismatch` otherwise). Every
    /// batch's CRC-32C is verified (`Error::InvalidBatch`).
    pub fn append_as_follower(&mut self, batches: &[u8]) -> Result<AppendInfo> {
        self.append(batches, None, wall_clock_ms())
    }

    fn append(
        &mut self,
        batches: &[u8],
        stamp: Option<LeaderEpoch>,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check()?;
        // Files an earlier roll sealed that the caller did not take.
        if !self.sealed_files.is_empty() {
            drop(self.take_sealed_files());
        }
        let plan = self.plan(batches, stamp.is_some())?;
        let (Some(first), Some(last)) = (plan.first(), plan.last()) else {
            return Err(Error::EmptyAppend);
        };
        let mut info = AppendInfo {
            base_offset: first.meta.base,
            last_offset: last.meta.last,
            log_append_time_ms: None,
            max_timestamp: -1,
            offset_of_max_timestamp: first.meta.base,
            position: FilePosition(0),
            segment_base_offset: self.active().base,
            records_count: 0,
            batch_count: 0,
            bytes: 0,
            log_start_offset: self.log_start,
        };
        let total: u64 = plan.iter().map(|p| p.meta.size).sum();
        // A few integers: copied so the active segment can be borrowed
        // mutably beside it.
        let config = self.config.clone();
        // Keep one append in one segment when a fresh segment can hold it.
        if !self.active().fits(total, last.meta.last, &self.config)
            && total <= self.config.segment_bytes
        {
            self.roll(now_ms)?;
        }
        for (i, p) in plan.iter().enumerate() {
            if !self.active().fits(p.meta.size, p.meta.last, &self.config) {
                self.roll(now_ms)?;
            }
            let seg = self.active_mut();
            let seg_base = seg.base;
            let r = seg.append_batch(p.bytes, p.meta, stamp, &config);
            let pos = self.poison_on_err(r)?;
            // One comparison unless the batch opens a new epoch.
            let epoch = stamp.unwrap_or(LeaderEpoch(p.epoch));
            let r = self.epochs.assign(epoch, p.meta.base);
            self.poison_on_err(r)?;
            if i == 0 {
                info.position = pos;
                info.segment_base_offset = seg_base;
            }
            if p.meta.max_timestamp > info.max_timestamp {
                info.max_timestamp = p.meta.max_timestamp;
                info.offset_of_max_timestamp = p.meta.base;
            }
            if p.log_append_time {
                info.log_append_time_ms = Some(now_ms);
            }
            info.records_count += (p.meta.last.0 - p.meta.base.0 + 1) as u64;
            info.batch_count += 1;
            info.bytes += p.meta.size;
        }
        Ok(info)
    }

    /// Checks every batch before any byte is written, so a bad batch
    /// rejects the whole append.
    fn plan<'a>(&self, batches: &'a [u8], leader: bool) -> Result<Vec<Planned<'a>>> {
        let max = self.config.max_message_bytes as usize;
        let mut next = self.log_end_offset();
        let mut out = Vec::new();
        let mut iter = BatchIter::new(batches, max);
        while let Some(item) = iter.next() {
            let (at, view) = item.map_err(|e| batch_error(e, iter.position(), max))?;
            // The leader's caller (the produce handler) has verified the
            // CRC-32C already; checking it twice cost 15 % of append
            // throughput (docs/benchmarks.md). Replicated bytes are checked
            // here: no other layer owns that check.
            if !leader {
                view.verify_crc().map_err(|source| Error::InvalidBatch {
                    position: at,
                    source,
                })?;
            }
            let delta = i64::from(view.last_offset_delta());
            if delta < 0 {
                return Err(Error::InvalidBatch {
                    position: at,
                    source: DecodeError::InvalidBatchField {
                        field: "lastOffsetDelta",
                        value: delta,
                    },
                });
            }
            let base = if leader {
                next
            } else {
                Offset(view.base_offset())
            };
            if base != next {
                return Err(Error::OffsetMismatch {
                    expected: next,
                    found: base,
                });
            }
            let last =
                base.checked_add(delta)
                    .filter(|l| l.0 < i64::MAX)
                    .ok_or(Error::InvalidBatch {
                        position: at,
                        source: DecodeError::InvalidBatchField {
                            field: "lastOffsetDelta",
                            value: delta,
                        },
                    })?;
            let meta = BatchMeta {
                base,
                last,
                ..BatchMeta::of(&view)
            };
            out.push(Planned {
                bytes: view.as_bytes(),
                meta,
                log_append_time: view.timestamp_type() == TimestampType::LogAppendTime,
                epoch: view.partition_leader_epoch(),
            });
            next = last.next();
        }
        Ok(out)
    }

    /// Index of the segment that holds `offset` (the last with base <= it).
    pub(crate) fn segment_for(&self, offset: Offset) -> usize {
        self.segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1)
    }

    pub(crate) fn out_of_range(&self, requested: Offset) -> Error {
        Error::OffsetOutOfRange {
            requested,
            log_start: self.log_start,
            log_end: self.log_end_offset(),
        }
    }

    /// Starts a new active segment at the log end offset (no-op when the
    /// active segment is empty). Seals the old one (trims its files); its
    /// open files wait in [`Self::take_sealed_files`] to be closed.
    ///
    /// Writes the checkpoint only once the log past the checkpointed
    /// recovery point holds [`crate::limits::RECOVERY_SCAN_BYTES_MAX`]: its two fsyncs
    /// (0.4-1.8 ms here, median 0.6) hold the partition's lock, and with
    /// 64 MiB segments a roll pays them one time in 16. Otherwise the
    /// periodic `checkpoint_recovery_point`
    /// (`log.flush.offset.checkpoint.interval.ms`) writes it, as Kafka's
    /// roll leaves it to its checkpoint thread. A crash in between scans
    /// from the older recovery point, which is always safe: at most that
    /// much more than the active segment.
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        self.check()?;
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.log_end_offset();
        let new = match self.spare.take_for(base) {
            Some(spare) => Segment::reuse(&self.dir, base, &self.config, now_ms, spare)
                .inspect_err(|e| {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "could not reuse a removed segment's file; creating a new one");
                })
                .ok(),
            None => None,
        };
        // A refused preallocation (full disk) changes nothing: no poison.
        let new = match new {
            Some(reused) => reused,
            None => Segment::create(&self.dir, base, &self.config, now_ms)?,
        };
        if let Err(e) = self.active_mut().seal() {
            // Leave no file of the new segment behind, or the next roll
            // would find it in the way; sealing again is harmless.
            if let Err(d) = new.delete(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %d, "could not remove a segment whose roll failed");
            }
            return self.poison_on_err(Err(e));
        }
        self.segments.push(new);
        // The sealed segment's files close once the caller takes them (a
        // reader holding them keeps them until done); the next read maps
        // them again, descriptor-less.
        if let Some(sealed) = self.segments.iter_mut().rev().nth(1)
            && let Some(files) = sealed.release_files(&self.dir, &self.files)
        {
            self.sealed_files.keep(sealed.base, files);
        }
        self.dir_changes += 1;
        if self.bytes_past_checkpoint() >= limits::RECOVERY_SCAN_BYTES_MAX {
            self.write_checkpoint()?;
        }
        Ok(())
    }

    /// Bytes a recovery from the checkpoint on disk would scan: those of
    /// the segment holding its recovery point and every later one (all of
    /// them before any checkpoint was written).
    fn bytes_past_checkpoint(&self) -> u64 {
        let from = self
            .last_checkpoint
            .map_or(0, |c| self.segment_for(c.recovery_point));
        self.segments.iter().skip(from).map(Segment::size).sum()
    }

    /// The files of the segments rolls sealed since the last call, to be
    /// dropped (unmapped, closed) after the caller's lock: see
    /// `sealed_files.rs`. Call it after every append.
    pub fn take_sealed_files(&mut self) -> SealedFiles {
        std::mem::take(&mut self.sealed_files)
    }

    /// Rolls when the active segment is older than `segment.ms`.
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<bool> {
        self.check()?;
        let active = self.active();
        let age = now_ms.saturating_sub(active.rolling_base_ms());
        if active.is_empty() || age < i64::try_from(self.config.segment_ms).unwrap_or(i64::MAX) {
            return Ok(false);
        }
        self.roll(now_ms)?;
        Ok(true)
    }

    pub(crate) fn write_checkpoint(&mut self) -> Result<()> {
        let c = Checkpoint {
            recovery_point: self.recovery_point,
            log_start_offset: self.log_start,
        };
        if self.last_checkpoint == Some(c) {
            return Ok(());
        }
        // Recovery trusts the indexes of a segment the recovery point has
        // passed: reused ones must not hold the removed segment's entries
        // any more, on disk (`spare_segment.rs`). A segment starting at or
        // above it is synced by a later checkpoint before it is passed.
        let rp = self.recovery_point;
        let synced = self
            .segments
            .iter_mut()
            .filter(|seg| seg.reused_indexes_unsynced && seg.base < rp)
            .try_for_each(|seg| {
                seg.sync_indexes()?;
                seg.reused_indexes_unsynced = false;
                Ok(())
            });
        self.poison_on_err(synced)?;
        self.poison_on_err(c.write(&self.dir))?;
        self.last_checkpoint = Some(c);
        Ok(())
    }

    /// Persists the recovery point and log start offset (atomically; see
    /// `checkpoint.rs`). Flushes do not do this by themselves.
    pub fn checkpoint_recovery_point(&mut self) -> Result<()> {
        self.check()?;
        self.write_checkpoint()?;
        let r = self.epochs.flush_if_stale();
        self.poison_on_err(r)
    }

    /// Flushes everything, trims the active segment, writes the checkpoint
    /// and the clean-shutdown marker: the next open skips the scan.
    ///
    /// Only what is not durable yet is fsynced: `.log` bytes past the last
    /// flush (with the directory, if segments were created since), and the
    /// indexes that gained entries since they were last synced. A log that
    /// holds no batch gets no marker and no fsync at all: an open without
    /// a marker scans nothing there either.
    pub fn close(mut self) -> Result<()> {
        self.check()?;
        let sealed = self.active_mut().seal();
        self.poison_on_err(sealed)?;
        if self.size_bytes() == 0 {
            return self.write_checkpoint();
        }
        self.flush()?;
        let synced = self.segments.iter_mut().try_for_each(Segment::sync_indexes);
        self.poison_on_err(synced)?;
        self.write_checkpoint()?;
        let r = self.epochs.flush_if_stale();
        self.poison_on_err(r)?;
        // The marker's rename is followed by an fsync of the directory,
        // which makes every entry in it durable before the marker counts.
        let marker = checkpoint::write_clean_shutdown(&self.dir, self.log_end_offset());
        self.poison_on_err(marker)
    }

    /// Testing seam: drops the log as a crash would (no trim, no
    /// checkpoint, no marker) and names the `.log` bytes that were never
    /// fsynced, which a power cut could lose or tear.
    #[doc(hidden)]
    pub fn simulate_crash(self) -> Vec<UnflushedFile> {
        self.segments
            .iter()
            .filter(|s| s.flushed_bytes < s.size())
            .map(|s| UnflushedFile {
                path: s.path(),
                flushed_len: s.flushed_bytes,
                written_len: s.size(),
            })
            .collect()
    }
}

/// Maps a framing error of an incoming batch to the append's error.
fn batch_error(e: DecodeError, position: usize, max: usize) -> Error {
    match e {
        DecodeError::BatchLengthOutOfBounds { length, .. } if length > (max as i64 - 12).max(0) => {
            Error::BatchTooLarge {
                size: (length + 12) as u64,
                max: max as u64,
            }
        }
        source => Error::InvalidBatch { position, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{
        TS, batch, batch_ranges as views, filled_log as filled, open_small as open, small_config,
    };

    /// A roll leaves the checkpoint to `checkpoint_recovery_point` (no
    /// fsyncs under the partition's lock) while less than
    /// `RECOVERY_SCAN_BYTES_MAX` lies past it, and a crash after rolls
    /// from an older checkpoint still recovers every flushed batch.
    #[test]
    fn a_roll_writes_no_checkpoint_and_a_crash_after_it_recovers_from_the_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut log = open(d);
        let checkpoint = || std::fs::read(d.join(checkpoint::CHECKPOINT_FILE)).ok();
        log.append_as_leader(&batch(0, 2, TS, 100), LeaderEpoch(1), 0)
            .unwrap();
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        let written = checkpoint();
        assert!(written.is_some());
        for _ in 0..3 {
            log.append_as_leader(&batch(0, 2, TS, 100), LeaderEpoch(1), 0)
                .unwrap();
            log.flush().unwrap();
            log.roll(TS).unwrap();
        }
        assert_eq!(log.segment_count(), 4);
        assert_eq!(checkpoint(), written, "a roll rewrote the checkpoint");
        // Recovery would scan from the segment holding the checkpointed
        // recovery point (offset 2, in the first): every byte, far below
        // what makes a roll write the checkpoint.
        assert_eq!(log.bytes_past_checkpoint(), log.size_bytes());
        let end = log.log_end_offset();
        assert!(log.simulate_crash().is_empty());

        let mut log = open(d);
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.segment_count(), 4);
        let read = log.read(Offset(0), u32::MAX, end, true).unwrap();
        assert_eq!(views(&read).len(), 4);
        drop(read);
        log.checkpoint_recovery_point().unwrap();
        assert_ne!(checkpoint(), written, "the periodic checkpoint moves it");
        // Now at the log end, in the empty active segment.
        assert_eq!(log.bytes_past_checkpoint(), 0);
    }

    #[test]
    fn leader_append_assigns_offsets_and_stamps_epoch_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let mut two = batch(0, 3, TS, 10);
        two.extend(batch(0, 2, TS + 5, 10));
        let info = log.append_as_leader(&two, LeaderEpoch(7), 42).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(4)));
        assert_eq!(info.records_count, 5);
        assert_eq!(info.batch_count, 2);
        assert_eq!(info.max_timestamp, TS + 5);
        assert_eq!(info.offset_of_max_timestamp, Offset(3));
        assert_eq!(info.position, FilePosition(0));
        assert_eq!(info.log_append_time_ms, None);
        let info = log
            .append_as_leader(&batch(99, 1, TS, 0), LeaderEpoch(8), 43)
            .unwrap();
        assert_eq!(info.base_offset, Offset(5));
        assert_eq!(info.position, FilePosition(142));
        assert_eq!(log.log_end_offset(), Offset(6));
        let read = log.read(Offset(0), 1 << 20, Offset(6), false).unwrap();
        assert_eq!(views(&read), vec![(0, 2, 7), (3, 4, 7), (5, 5, 8)]);
        assert_eq!(read.next_offset, Offset(6));
        assert_eq!(read.bytes, log.size_bytes());
    }

    #[test]
    fn a_new_partition_directory_is_made_durable_in_its_parent() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("t-0");
        crate::flush::fail_next_sync();
        match PartitionLog::open(&dir, small_config()) {
            Err(Error::Io { op, path, .. }) => {
                assert_eq!((op, path.as_path()), ("fsync", parent.path()));
            }
            other => panic!("the parent was not fsynced first: {:?}", other.map(|_| ())),
        }
        // An existing directory is not re-synced in its parent.
        let log = PartitionLog::open(&dir, small_config()).unwrap();
        log.close().unwrap();
        crate::flush::fail_next_sync();
        let reopened = PartitionLog::open(&dir, small_config());
        assert!(
            !matches!(&reopened, Err(Error::Io { path, .. }) if path == parent.path()),
            "reopening synced the parent again"
        );
    }

    #[test]
    fn bad_appends_are_typed_errors_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let mut good_then_bad = batch(0, 1, TS, 5);
        let mut bad = batch(0, 1, TS, 5);
        *bad.last_mut().unwrap() ^= 1;
        good_then_bad.extend(&bad);
        assert!(matches!(
            log.append_as_follower(&good_then_bad),
            Err(Error::InvalidBatch {
                position: 66,
                source: DecodeError::CrcMismatch { .. }
            })
        ));
        let mut bad_magic = batch(0, 1, TS, 5);
        bad_magic[16] = 1;
        assert!(matches!(
            log.append_as_leader(&bad_magic, LeaderEpoch(0), 0),
            Err(Error::InvalidBatch {
                position: 0,
                source: DecodeError::UnsupportedMagic { magic: 1 }
            })
        ));
        assert!(matches!(
            log.append_as_leader(&batch(0, 1, TS, 3000), LeaderEpoch(0), 0),
            Err(Error::BatchTooLarge {
                size: 3061,
                max: 2048
            })
        ));
        assert!(matches!(
            log.append_as_leader(&[], LeaderEpoch(0), 0),
            Err(Error::EmptyAppend)
        ));
        let torn = batch(0, 1, TS, 5);
        assert!(matches!(
            log.append_as_leader(&torn[..40], LeaderEpoch(0), 0),
            Err(Error::InvalidBatch { position: 0, .. })
        ));
        assert_eq!(log.log_end_offset(), Offset(0));
        assert_eq!(log.size_bytes(), 0);
    }

    /// Issue 13: `segment.bytes=1024`, raised to 1 MiB, then one 2 KiB
    /// batch took the log directory offline. A batch up to
    /// `max.message.bytes` goes in whatever `segment.bytes` is, alone in a
    /// segment grown for it, and survives a reopen.
    #[test]
    fn a_batch_larger_than_the_segment_gets_a_segment_sized_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = LogConfig {
            segment_bytes: 1024,
            max_message_bytes: 1 << 20,
            ..small_config()
        };
        let mut log = PartitionLog::open(dir.path(), tiny.clone()).unwrap();
        let big = batch(0, 1, TS, 2048);
        // Into the empty first segment, then into a roll of its own.
        log.append_as_leader(&big, LeaderEpoch(0), 0).unwrap();
        log.append_as_leader(&big, LeaderEpoch(0), 0).unwrap();
        assert_eq!(log.segment_count(), 2);
        // segment.bytes raised on an empty active segment made at 1024.
        log.roll(0).unwrap();
        log.append_as_leader(&batch(0, 1, TS, 10), LeaderEpoch(0), 0)
            .unwrap();
        log.roll(0).unwrap();
        log.set_config(LogConfig {
            segment_bytes: 1 << 20,
            ..tiny
        })
        .unwrap();
        log.append_as_leader(&big, LeaderEpoch(0), 0).unwrap();
        log.append_as_leader(&big, LeaderEpoch(0), 0).unwrap();
        assert!(!log.health().is_poisoned());
        assert_eq!(log.log_end_offset(), Offset(5));
        log.close().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        let read = log.read(Offset(0), 1 << 20, Offset(5), false).unwrap();
        let ranges = views(&read);
        assert_eq!(ranges.len(), 5, "{ranges:?}");
        assert_eq!(log.segment_count(), 4);
    }

    #[test]
    fn follower_keeps_offsets_and_rejects_gaps_and_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        log.append_as_follower(&batch(0, 2, TS, 1)).unwrap();
        assert!(matches!(
            log.append_as_follower(&batch(3, 1, TS, 1)),
            Err(Error::OffsetMismatch {
                expected: Offset(2),
                found: Offset(3)
            })
        ));
        assert!(matches!(
            log.append_as_follower(&batch(1, 1, TS, 1)),
            Err(Error::OffsetMismatch {
                expected: Offset(2),
                found: Offset(1)
            })
        ));
        let info = log.append_as_follower(&batch(2, 4, TS, 1)).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(2), Offset(5)));
    }

    #[test]
    fn rolls_at_segment_bytes_and_trims_the_old_segment() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 11);
        assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(20)]);
        let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert_eq!(len("00000000000000000000.log"), 4000);
        assert_eq!(
            len("00000000000000000020.log"),
            4096,
            "active is preallocated"
        );
        assert_eq!(len("00000000000000000000.index") % 8, 0);
        assert!(len("00000000000000000000.index") > 0);
        assert_eq!(len("00000000000000000020.index"), 256);
        // Index lookups through the sparse entries find every batch.
        for o in 0..22 {
            let r = log.read(Offset(o), 1, Offset(22), true).unwrap();
            assert_eq!(r.first_offset, Some(Offset(o - o % 2)), "offset {o}");
        }
    }

    #[test]
    fn maybe_roll_follows_segment_ms_from_the_first_batch() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 1000,
            ..small_config()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        assert!(
            !log.maybe_roll(TS + 5000).unwrap(),
            "empty segments never roll"
        );
        log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(0), TS)
            .unwrap();
        assert!(!log.maybe_roll(TS + 999).unwrap());
        assert!(log.maybe_roll(TS + 1000).unwrap());
        assert_eq!(log.segment_count(), 2);
    }

    #[test]
    fn a_full_disk_at_roll_is_a_typed_error_that_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 10); // the active segment is full
        let before = std::fs::read_dir(dir.path()).unwrap().count();
        crate::mmap::fail_next_fallocate();
        let err = log
            .append_as_leader(&batch(0, 2, TS, 339), LeaderEpoch(1), 0)
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::NoSpace {
                    requested: 4096,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_storage_error());
        assert!(!log.health().is_poisoned());
        assert_eq!(log.log_end_offset(), Offset(20));
        assert_eq!(log.segment_count(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            before,
            "no half-made segment"
        );
        let info = log
            .append_as_leader(&batch(0, 2, TS, 339), LeaderEpoch(1), 0)
            .unwrap();
        assert_eq!(
            info.base_offset,
            Offset(20),
            "a retry once space is back succeeds"
        );
    }

    #[test]
    fn a_full_index_rolls_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_index_bytes: 48, // 4 time-index slots, one kept for the roll
            index_interval_bytes: 1,
            ..small_config()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        for i in 0..6 {
            log.append_as_leader(&batch(0, 1, TS + i, 10), LeaderEpoch(0), 0)
                .unwrap();
        }
        // Entries go in before batches 2, 3 and 4; then the time index is
        // full and batch 5 starts a new segment.
        assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(4)]);
        let r = log.read(Offset(3), 1, Offset(6), true).unwrap();
        assert_eq!(r.first_offset, Some(Offset(3)));
    }

    /// Regions of the active segment and of a sealed one (mapped without
    /// a descriptor: `file_budget.rs`) give the file's bytes.
    #[test]
    fn regions_give_the_file_bytes_from_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 12);
        let r = log.read(Offset(20), 1000, Offset(24), false).unwrap();
        let region = &r.regions[0];
        assert_eq!((region.position(), region.len()), (0, 800));
        let active = std::fs::read(dir.path().join("00000000000000000020.log")).unwrap();
        assert_eq!(&region.bytes()[..], &active[..800]);
        assert!(region.path().ends_with("00000000000000000020.log"));
        let r = log.read(Offset(4), 1000, Offset(24), false).unwrap();
        let sealed = &r.regions[0];
        assert_eq!((sealed.position(), sealed.len()), (800, 800));
        let on_disk = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
        assert_eq!(&sealed.bytes()[..], &on_disk[800..1600]);
    }

    #[test]
    fn the_broker_can_share_logs_and_regions_across_threads() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<PartitionLog>();
        is_send_sync::<crate::FileRegion>();
        is_send_sync::<crate::PendingFlush>();
    }
}
