//! A removed segment's files, kept to become the partition's next segment.
//!
//! A new segment's file is reserved with `fallocate`, whose blocks are
//! *unwritten* extents: the first writeback of each range converts it,
//! which changes the inode, and every `fdatasync` after an append then
//! writes the inode too. On this machine's ext4 that is a second
//! synchronous device write per sync (`ext4_write_inode` →
//! `__sync_dirty_buffer`): an fdatasync of appended bytes took 0.56 ms
//! into fallocated blocks and 0.31 ms into blocks written before
//! (`bench/scripts/fsync-tail.py`); with a journal it is a journal commit.
//! Freeing a removed segment costs the reclaimer an `ftruncate` and an
//! fdatasync per MiB (`reclaim.rs`). Reusing the file of a segment that
//! retention removed as the next segment's saves both: its blocks are
//! written, so a sync after an append writes data only, and no block is
//! freed or allocated. RocksDB's `recycle_log_file_num` and Scylla's
//! commitlog segment reuse do the same for their logs.
//!
//! The two index files go along: a roll that made new ones had ext4
//! choose two inodes, and without a journal it skips those freed in the
//! last seconds, reading their inode-table blocks to tell; at hundreds of
//! rolls a second (many partitions, small segments) that walk was ~23 % of
//! the broker's CPU (`docs/benchmarks.md`). A reused index is renamed and
//! emptied instead: its entries written over with zeros, no block freed.
//!
//! ```text
//! retention removes X (under the lock) ─► X.{log,index,timeindex} renamed
//!     X.*.deleted
//! RemovedSegments dropped (off the lock) ─► directory fsynced (the
//!     removed names durable), then the X.*.deleted this process made
//!     offered: kept as the partition's newest spares, or to the reclaimer
//! roll to base B (under the lock) ─► newest spare below B and unmapped:
//!     X.log.deleted renamed B.log, mapped whole, nothing published;
//!     X.index.deleted, X.timeindex.deleted renamed B.index, B.timeindex,
//!     entries written over with zeros, first step reserved
//! next checkpoint whose recovery point passes B ─► B's indexes synced first
//! ```
//!
//! # Invariants
//! - A spare holds only offsets below the base of the segment it becomes
//!   ([`SpareSlot::take_for`] checks its `next_offset`). Its old bytes
//!   behind the new segment's end are whole batches of lower offsets, or
//!   pieces of them, or zeros: recovery stops at the first batch that is
//!   not the dense continuation of the segment (`recovery.rs`), so old
//!   bytes are never taken for new ones. Retention and DeleteRecords are
//!   the only sources, and both remove segments below the log start.
//! - A spare is reused only while no mapping of any of its files lives
//!   (`mapped_inodes.rs`): a reader still viewing the old segment keeps
//!   its bytes, and a lookup in its indexes its entries. Its pages are
//!   written over in place, so no socket may hold references to them:
//!   the broker never sends with `sendfile`, which
//!   leaves socket buffers referencing the page-cache pages it sent for as
//!   long as a reader that stopped reading keeps its connection, and a
//!   page written over would hand that reader the new bytes. Replies are
//!   gathered with `writev`, which copies the bytes into the socket
//!   (`broker/src/connection.rs`). A segment this process did not make
//!   (`Segment::made_here`) is freed as before: a killed process's
//!   orphaned sockets, of a version that used `sendfile`, may hold its
//!   pages. It never reaches the reclaimer before it is given up, and
//!   once given up never comes back, so "not mapped" stays true for what
//!   the reclaimer shrinks.
//! - A reused index holds no entry of the removed segment on disk before
//!   a checkpoint's recovery point passes its segment: its zeros are synced
//!   first (`PartitionLog::write_checkpoint`). Recovery trusts the indexes
//!   of segments below the recovery point (sanity checks only); without
//!   a journal a power cut can undo unsynced zeros, and the old entries,
//!   in order, would pass those checks and send lookups to wrong
//!   positions. A segment above the recovery point is scanned and its
//!   indexes rebuilt; a clean close syncs every dirty index.
//! - A spare keeps its `*.deleted` names until it is reused: a crash
//!   leaves a name the next open removes, and the slot is memory only.
//! - Bounded: [`SPARES_PER_PARTITION_MAX`] spares per partition,
//!   [`SPARE_BYTES_MAX`](crate::reclaim::SPARE_BYTES_MAX) bytes over every
//!   log sharing the reclaimer, and none kept on a file system with less
//!   than [`SPARE_FREE_BYTES_MIN`](crate::reclaim::SPARE_FREE_BYTES_MIN)
//!   free (the broker's), so a filling disk gets its removed bytes back. A
//!   spare that does not fit, the oldest when a newer comes to a full
//!   partition, and those still held when their log is dropped go to the
//!   reclaimer.
//! - The newest spare is reused first: the likeliest still in the page
//!   cache, whose pages are then written over in place.
//! - Every write into a reused file is followed by at least a batch
//!   header of zeros, and zeros on to the end of that 4 KiB page
//!   (`MapWriter::append_parts`), written and synced with it. The zero
//!   header is the segment's end to recovery even where the file was not
//!   trimmed: a sealed segment's trim is not synced when its bytes
//!   already were, and a power cut may undo it; without the zeros,
//!   recovery would read the old bytes from inside one of their batches
//!   as a torn batch below the recovery point (damage: the partition
//!   refused). To the page's end: a write covering only part of an
//!   uncached page of written blocks (evicted since) has the kernel read
//!   the page from disk first, inside the append.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::mapped_inodes;
use crate::offset::Offset;
use crate::reclaim::Reclaimer;

/// Spares one partition keeps at most. Retention removes every expired
/// segment in one pass (every `log.retention.check.interval.ms`, 5 min by
/// default): a partition that rolled several segments since the last pass
/// reuses as many of their files before it creates new ones.
pub(crate) const SPARES_PER_PARTITION_MAX: usize = 16;

/// A partition's spares, oldest first. Cheap to clone: the log holds it,
/// and the [`crate::RemovedSegments`] it hands out a clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpareSlot {
    spares: Arc<Mutex<Vec<Spare>>>,
}

/// A removed segment's files (still named `*.deleted`), counted against
/// the reclaimer's spare bytes. Dropped unused, they go to the reclaimer.
#[derive(Debug)]
pub(crate) struct Spare {
    /// The `.log`, `.index` and `.timeindex`, as in [`RemovedFiles`];
    /// either index may be missing. Empty paths once reused.
    files: [PathBuf; 3],
    /// One past the last offset the files' segment held.
    next_offset: Offset,
    len: u64,
    reclaimer: Reclaimer,
}

/// A removed segment's `*.deleted` files, as
/// [`crate::segment::deleted_paths`] names them (`.log`, `.index`,
/// `.timeindex`), and the offset one past its last.
pub(crate) type RemovedFiles = ([PathBuf; 3], Offset);

impl SpareSlot {
    fn lock(&self) -> MutexGuard<'_, Vec<Spare>> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `removed` (the files of segments removed together, oldest
    /// first, renamed `*.deleted`) for later rolls, as the newest spares.
    /// The newest are counted against the reclaimer's spare bytes first;
    /// files they cannot take, and the oldest spares past
    /// [`SPARES_PER_PARTITION_MAX`], go to `reclaimer`.
    pub(crate) fn offer(&self, removed: Vec<RemovedFiles>, reclaimer: &Reclaimer) {
        if removed.is_empty() {
            return;
        }
        let room = removed
            .first()
            .and_then(|([log, ..], _)| log.parent())
            .is_some_and(|dir| reclaimer.has_room_for_spares(dir));
        let mut kept = Vec::with_capacity(removed.len().min(SPARES_PER_PARTITION_MAX));
        for (files, next_offset) in removed.into_iter().rev() {
            let lens = files.each_ref().map(|p| file_len(p));
            let len = lens.iter().sum();
            if !room
                || kept.len() >= SPARES_PER_PARTITION_MAX
                || lens[0] == 0
                || !reclaimer.hold_spare(len)
            {
                for path in files {
                    reclaimer.remove_file(path);
                }
                continue;
            }
            kept.push(Spare {
                files,
                next_offset,
                len,
                reclaimer: reclaimer.clone(),
            });
        }
        let mut spares = self.lock();
        spares.extend(kept.into_iter().rev());
        let over = spares.len().saturating_sub(SPARES_PER_PARTITION_MAX);
        let oldest: Vec<Spare> = spares.drain(..over).collect();
        drop(spares);
        drop(oldest);
    }

    /// The newest spare all of whose offsets lie below `base` and that no
    /// mapping holds. Spares reaching `base` serve no later roll either and
    /// are given up; mapped ones stay for a later roll.
    pub(crate) fn take_for(&self, base: Offset) -> Option<Spare> {
        let mut spares = self.lock();
        // Offsets at or above `base` (never retention's), or a file gone
        // (its directory was deleted): useless now and later.
        let (useless, kept): (Vec<Spare>, Vec<Spare>) = std::mem::take(&mut *spares)
            .into_iter()
            .partition(|s| s.next_offset > base || !s.path().exists());
        *spares = kept;
        let taken = spares
            .iter()
            .rposition(|s| !s.is_mapped())
            .map(|i| spares.remove(i));
        drop(spares);
        drop(useless);
        taken
    }
}

/// The length of the file at `path`; 0 when it is missing or not a file.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .ok()
        .filter(|meta| meta.is_file())
        .map_or(0, |meta| meta.len())
}

impl Spare {
    /// Whether a mapping of any of its files lives (a reader of its
    /// segment); also when the `.log` cannot be looked at. A missing index
    /// is not mapped.
    fn is_mapped(&self) -> bool {
        let [log, indexes @ ..] = &self.files;
        std::fs::metadata(log).map_or(true, |meta| mapped_inodes::is_mapped(&meta))
            || indexes.iter().any(|path| {
                std::fs::metadata(path).is_ok_and(|meta| mapped_inodes::is_mapped(&meta))
            })
    }

    /// The `.log`'s current (`*.deleted`) path.
    pub(crate) fn path(&self) -> &Path {
        let [log, ..] = &self.files;
        log
    }

    /// The `.index`'s and `.timeindex`'s current (`*.deleted`) paths;
    /// either may be missing.
    pub(crate) fn index_paths(&self) -> [&Path; 2] {
        let [_, index, time_index] = &self.files;
        [index, time_index]
    }

    /// The files became a segment's (renamed): no longer a spare. An index
    /// the segment did not take (missing, or it could not be renamed) is
    /// freed.
    pub(crate) fn reused(mut self) {
        self.reclaimer.release_spare(self.len, true);
        self.len = 0;
        let [_, indexes @ ..] = std::mem::take(&mut self.files);
        for path in indexes {
            if path.exists() {
                self.reclaimer.remove_file(path);
            }
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if self.path().as_os_str().is_empty() {
            return;
        }
        self.reclaimer.release_spare(self.len, false);
        for path in std::mem::take(&mut self.files) {
            self.reclaimer.remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::mmap::{Hold, MappedFile};
    use crate::reclaim::SPARE_BYTES_MAX;
    use crate::test_util::{TS, batch, batch_ranges, small_config};
    use crate::{LeaderEpoch, LogConfig, PartitionLog, RemovedSegments};

    /// Batches of 512 bytes, 16 to a segment: eight end on a page.
    const BATCH_BYTES: u64 = 512;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 16 * BATCH_BYTES,
            segment_index_bytes: 4096,
            ..small_config()
        }
    }

    fn open(dir: &Path) -> PartitionLog {
        PartitionLog::open(dir, config()).unwrap()
    }

    /// A segment's files, in the order `segment::deleted_paths` names them.
    const EXTS: [&str; 3] = ["log", "index", "timeindex"];

    fn file(dir: &Path, base: Offset, ext: &str) -> PathBuf {
        dir.join(format!("{:020}.{ext}", base.0))
    }

    fn inode(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    fn append(log: &mut PartitionLog) {
        append_batch_of(log, BATCH_BYTES as usize);
    }

    /// Appends one two-record batch of `bytes` bytes.
    fn append_batch_of(log: &mut PartitionLog, bytes: usize) {
        append_stamped(log, bytes, TS);
    }

    /// Appends one two-record batch of `bytes` bytes stamped `max_ts`.
    fn append_stamped(log: &mut PartitionLog, bytes: usize, max_ts: i64) {
        log.append_as_leader(&batch(0, 2, max_ts, bytes - 61), LeaderEpoch(1), 0)
            .unwrap();
    }

    /// Appends until the log rolls; the new active segment's base.
    fn append_until_roll(log: &mut PartitionLog) -> Offset {
        append_until_roll_with(log, append)
    }

    /// Calls `append_one` until the log rolls; the new active segment's
    /// base.
    fn append_until_roll_with(
        log: &mut PartitionLog,
        mut append_one: impl FnMut(&mut PartitionLog),
    ) -> Offset {
        let segments = log.segment_base_offsets().len();
        while log.segment_base_offsets().len() == segments {
            append_one(log);
        }
        *log.segment_base_offsets().last().unwrap()
    }

    /// Every offset from the log start to the end, read back in order.
    fn assert_dense(log: &PartitionLog) {
        let info = log
            .read(log.log_start_offset(), u32::MAX, log.log_end_offset(), true)
            .unwrap();
        let ranges = batch_ranges(&info);
        let mut next = log.log_start_offset().0;
        for (base, last, _) in ranges {
            assert_eq!(base, next, "offsets not dense");
            next = last + 1;
        }
        assert_eq!(next, log.log_end_offset().0);
    }

    /// A log whose first two segments DeleteRecords removed, and the bases
    /// it had then.
    fn log_with_spare(dir: &Path) -> (PartitionLog, Vec<Offset>) {
        let (log, bases, removed) = log_with_removed(dir);
        drop(removed);
        (log, bases)
    }

    /// [`log_with_spare`] before the removed segments are dropped.
    fn log_with_removed(dir: &Path) -> (PartitionLog, Vec<Offset>, RemovedSegments) {
        let mut log = open(dir);
        for _ in 0..70 {
            append(&mut log);
        }
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 4, "{bases:?}");
        let removed = log.advance_log_start_offset(bases[2]).unwrap();
        assert_eq!(removed.count(), 2);
        (log, bases, removed)
    }

    #[test]
    fn the_newest_removed_log_becomes_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, bases) = log_with_spare(d);
        // All three files of both wait under their removed names.
        let spares = [0, 1].map(|i| EXTS.map(|ext| file(d, bases[i], &format!("{ext}.deleted"))));
        let inodes = spares
            .each_ref()
            .map(|files| files.each_ref().map(|p| inode(p)));
        let bytes: u64 = spares
            .iter()
            .flatten()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(bytes > 2 * 16 * BATCH_BYTES, "indexes too");
        assert_eq!(log.reclaimer.stats().spare_bytes, bytes);

        // The newer first, then the older.
        let older_reused = append_until_roll(&mut log);
        assert_eq!(
            EXTS.map(|ext| inode(&file(d, older_reused, ext))),
            inodes[1]
        );
        let new_base = append_until_roll(&mut log);
        assert_eq!(EXTS.map(|ext| inode(&file(d, new_base, ext))), inodes[0]);
        assert!(spares.iter().flatten().all(|p| !p.exists()));
        let stats = log.reclaimer.stats();
        assert_eq!((stats.spare_bytes, stats.reused_total), (0, 2));
        append(&mut log);
        assert_dense(&log);

        // Nothing past the end is served, and the written page ends in
        // zeros where the old segment's bytes were.
        let info = log
            .read(new_base, u32::MAX, log.log_end_offset(), true)
            .unwrap();
        let published: u64 = info.regions.iter().map(|r| r.bytes().len() as u64).sum();
        assert_eq!(published, 2 * BATCH_BYTES);
        let bytes = std::fs::read(file(d, new_base, "log")).unwrap();
        assert_eq!(bytes.len(), 16 * 512, "the old file, whole");
        assert!(bytes[1024..4096].iter().all(|&b| b == 0));
        assert!(bytes[4096..4104] != [0; 8], "old bytes past the page");
    }

    /// Appends batches of rising timestamps, the last stamped `*ts`, until
    /// the log rolls; the new active segment's base.
    fn append_timed_until_roll(log: &mut PartitionLog, ts: &mut i64) -> Offset {
        append_until_roll_with(log, |log| {
            *ts += 1;
            append_stamped(log, BATCH_BYTES as usize, *ts);
        })
    }

    /// Every offset of `log` from `from` on is found through the indexes
    /// in its own batch, and every timestamp `(TS, last]` in the batch
    /// that carries it.
    fn assert_lookups(log: &PartitionLog, from: Offset, last_ts: i64) {
        let end = log.log_end_offset();
        for o in from.0..end.0 {
            let info = log.read(Offset(o), 1, end, true).unwrap();
            let (base, last, _) = batch_ranges(&info)[0];
            assert!(
                (base..=last).contains(&o),
                "offset {o} read from {base}..={last}"
            );
        }
        for ts in TS + 1..=last_ts {
            let found = log.offset_for_timestamp(ts).unwrap().unwrap();
            let view = sluice_protocol::RecordBatchView::parse(&found, 1 << 20).unwrap();
            assert_eq!(view.max_timestamp(), ts);
        }
    }

    #[test]
    fn reused_indexes_are_emptied_and_index_only_the_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, bases) = log_with_spare(d);
        let old_index = std::fs::read(file(d, bases[1], "index.deleted")).unwrap();
        assert!(old_index.len() >= 8 * 8, "the removed index held entries");
        let old_inode = inode(&file(d, bases[1], "index.deleted"));
        let mut ts = TS;
        let reused = append_timed_until_roll(&mut log, &mut ts);
        assert_eq!(inode(&file(d, reused, "index")), old_inode, "reused");
        append_timed_until_roll(&mut log, &mut ts);
        assert_lookups(&log, reused, ts);

        // Trusted at the next open: the indexes are loaded, not rebuilt,
        // and hold what a rebuild from the `.log` makes.
        log.close().unwrap();
        let kept = EXTS.map(|ext| std::fs::read(file(d, reused, ext)).unwrap());
        assert!(!kept[1].is_empty() && !kept[2].is_empty());
        let log = open(d);
        assert_lookups(&log, reused, ts);
        drop(log);
        for ext in ["index", "timeindex"] {
            std::fs::remove_file(file(d, reused, ext)).unwrap();
        }
        open(d).close().unwrap();
        let rebuilt = EXTS.map(|ext| std::fs::read(file(d, reused, ext)).unwrap());
        assert_eq!(rebuilt, kept);
    }

    #[test]
    fn a_checkpoint_past_a_segment_syncs_its_reused_indexes_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, _) = log_with_spare(d);
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        log.roll(TS).unwrap();
        let reused = log.segment_count() - 1;
        let unsynced = |log: &PartitionLog| {
            let seg = &log.segments[reused];
            let files = seg.files().unwrap();
            let dirty = files.offset_index.is_dirty() && files.time_index.is_dirty();
            assert_eq!(
                dirty, seg.reused_indexes_unsynced,
                "the zeros are unsynced until synced"
            );
            seg.reused_indexes_unsynced
        };
        assert!(unsynced(&log));
        // The recovery point at the segment's base: recovery scans it and
        // rebuilds its indexes, so nothing need be synced yet.
        log.checkpoint_recovery_point().unwrap();
        assert!(unsynced(&log));
        append(&mut log);
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        assert!(!unsynced(&log));
    }

    #[test]
    fn a_crash_in_a_reused_segment_recovers_its_batches_and_no_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, _) = log_with_spare(d);
        let new_base = append_until_roll(&mut log);
        // Eight batches end on a page: the next page is zeroed (a batch
        // header's worth of zeros follows every write), not left holding
        // the removed segment's batches.
        let old = std::fs::read(file(d, new_base, "log")).unwrap();
        let old_base = i64::from_be_bytes(old[4096..4104].try_into().unwrap());
        assert!((1..new_base.0).contains(&old_base), "{old_base}");
        for _ in 1..8 {
            append(&mut log);
        }
        log.flush().unwrap();
        let end = log.log_end_offset();
        let bytes = std::fs::read(file(d, new_base, "log")).unwrap();
        assert!(bytes[4096..].iter().all(|&b| b == 0));
        let _ = log.simulate_crash();

        let log = open(d);
        assert_eq!(log.log_end_offset(), end);
        assert_dense(&log);
        // Cut at the real end and re-reserved: the old bytes are gone.
        let bytes = std::fs::read(file(d, new_base, "log")).unwrap();
        assert!(bytes[4096..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_sealed_reused_segment_whose_trim_was_lost_reopens_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Removed segments of 600-byte batches, three pages long: page
        // boundaries fall inside their batches.
        let config = LogConfig {
            segment_bytes: 24 * BATCH_BYTES,
            ..config()
        };
        let mut log = PartitionLog::open(d, config.clone()).unwrap();
        for _ in 0..60 {
            append_batch_of(&mut log, 600);
        }
        let bases = log.segment_base_offsets();
        drop(log.advance_log_start_offset(bases[2]).unwrap());
        let spare = file(d, bases[1], "log.deleted");
        let old_bytes = std::fs::read(&spare).unwrap();
        assert!(old_bytes.len() > 8192);

        // Its file reused by 512-byte batches: eight end on the page.
        let reused = append_until_roll(&mut log);
        for _ in 1..8 {
            append(&mut log);
        }
        log.flush().unwrap();
        let end_of_reused = log.log_end_offset();
        let path = file(d, reused, "log");
        let before_seal = std::fs::read(&path).unwrap();
        log.roll(TS).unwrap();
        append(&mut log);
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        let end = log.log_end_offset();
        let _ = log.simulate_crash();

        // The seal's trim never reached the disk (no fsync follows it
        // once the bytes were synced): the file is back as it was synced.
        assert_eq!(std::fs::read(&path).unwrap(), &before_seal[..4096]);
        std::fs::write(&path, &before_seal).unwrap();

        let log = PartitionLog::open(d, config).unwrap();
        assert_eq!(log.log_end_offset(), end);
        assert!(end > end_of_reused);
        assert_dense(&log);
        // What recovery read past the new batches: a page of zeros, then
        // the old segment's bytes from inside one of its batches.
        assert_eq!(before_seal.len(), old_bytes.len());
        assert!(before_seal[4096..8192].iter().all(|&b| b == 0));
        assert_eq!(before_seal[8192..], old_bytes[8192..]);
    }

    #[test]
    fn removed_files_wait_for_the_next_open_when_their_names_cannot_be_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, bases, removed) = log_with_removed(d);
        crate::flush::fail_next_sync();
        drop(removed);
        // Neither kept to be written over nor shrunk: a power cut could
        // still bring them back under their segments' names.
        let left = [0, 1].map(|i| file(d, bases[i], "log.deleted"));
        assert!(left.iter().all(|p| p.exists()));
        assert!(file(d, bases[0], "index.deleted").exists());
        append_until_roll(&mut log);
        let stats = log.reclaimer.stats();
        assert_eq!((stats.spare_bytes, stats.reused_total), (0, 0));
        drop(log);

        let log = open(d);
        assert!(left.iter().all(|p| !p.exists()), "removed at the open");
        assert_dense(&log);
    }

    #[test]
    fn a_crash_before_the_reused_segment_holds_a_batch_leaves_it_empty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, _) = log_with_spare(d);
        let end = log.log_end_offset();
        log.roll(TS).unwrap();
        assert_eq!(log.reclaimer.stats().reused_total, 1);
        log.flush().unwrap();
        let _ = log.simulate_crash();

        let mut log = open(d);
        assert_eq!(log.log_end_offset(), end);
        append(&mut log);
        assert_dense(&log);
    }

    #[test]
    fn a_clean_close_trims_the_reused_segment_and_reopens_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, _) = log_with_spare(d);
        let new_base = append_until_roll(&mut log);
        let end = log.log_end_offset();
        log.close().unwrap();
        assert_eq!(
            std::fs::metadata(file(d, new_base, "log")).unwrap().len(),
            BATCH_BYTES
        );
        let log = open(d);
        assert_eq!(log.log_end_offset(), end);
        assert_dense(&log);
    }

    /// A removed `.log` offered without index files.
    fn alone(log: &Path) -> [PathBuf; 3] {
        [
            log,
            &log.with_extension("index-gone"),
            &log.with_extension("timeindex-gone"),
        ]
        .map(Path::to_path_buf)
    }

    /// A removed `.log` of `len` bytes.
    fn removed_file(dir: &Path, len: usize) -> PathBuf {
        let path = dir.join("00000000000000000000.log.deleted");
        std::fs::write(&path, vec![7u8; len]).unwrap();
        path
    }

    #[test]
    fn a_spare_holding_offsets_at_or_above_the_base_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let reclaimer = Reclaimer::inline();
        let slot = SpareSlot::default();
        let path = removed_file(dir.path(), 1000);
        slot.offer(vec![(alone(&path), Offset(100))], &reclaimer);
        assert_eq!(reclaimer.stats().spare_bytes, 1000);
        assert!(slot.take_for(Offset(99)).is_none());
        assert!(!path.exists(), "freed, not kept");
        assert_eq!(reclaimer.stats().spare_bytes, 0);

        let path = removed_file(dir.path(), 1000);
        slot.offer(vec![(alone(&path), Offset(100))], &reclaimer);
        let spare = slot.take_for(Offset(100)).unwrap();
        assert_eq!(spare.path(), path);
        drop(spare);
        assert!(!path.exists(), "an unused spare is freed when dropped");
    }

    #[test]
    fn a_spare_still_mapped_by_a_reader_waits() {
        let dir = tempfile::tempdir().unwrap();
        let reclaimer = Reclaimer::inline();
        let slot = SpareSlot::default();
        let path = removed_file(dir.path(), 1000);
        let reader = MappedFile::open(&path, Hold::Descriptor).unwrap();
        slot.offer(vec![(alone(&path), Offset(10))], &reclaimer);
        assert!(slot.take_for(Offset(10)).is_none());
        assert!(path.exists(), "kept for a later roll");
        drop(reader);
        assert!(slot.take_for(Offset(10)).is_some());

        // So does one whose index a lookup still maps.
        let path = removed_file(dir.path(), 1000);
        let files = alone(&path);
        std::fs::write(&files[1], [1u8; 64]).unwrap();
        let lookup = MappedFile::open(&files[1], Hold::MappingOnly).unwrap();
        slot.offer(vec![(files.clone(), Offset(10))], &reclaimer);
        assert!(slot.take_for(Offset(10)).is_none());
        drop(lookup);
        let spare = slot.take_for(Offset(10)).unwrap();
        assert_eq!(spare.index_paths()[0], files[1]);
        drop(spare);
        assert!(files.iter().all(|p| !p.exists()), "freed with the spare");
    }

    #[test]
    fn the_newest_spares_are_kept_within_the_byte_and_count_limits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let named = |name: &str, len: usize| {
            let path = d.join(format!("{name}.log.deleted"));
            std::fs::write(&path, vec![7u8; len]).unwrap();
            path
        };
        let reclaimer = Reclaimer::inline();
        let (first, second) = (SpareSlot::default(), SpareSlot::default());
        // Room for one of two removed together: the newer is kept.
        assert!(reclaimer.hold_spare(SPARE_BYTES_MAX - 1500));
        let (older, newer) = (named("a", 1000), named("b", 1000));
        first.offer(
            vec![(alone(&older), Offset(10)), (alone(&newer), Offset(20))],
            &reclaimer,
        );
        assert!(!older.exists() && newer.exists());
        // Nothing left for another partition's.
        let other = named("c", 1000);
        second.offer(vec![(alone(&other), Offset(10))], &reclaimer);
        assert!(!other.exists(), "over the byte limit: freed");
        reclaimer.release_spare(SPARE_BYTES_MAX - 1500, false);

        // Past the count limit the oldest go; the newest is taken first.
        let many: Vec<(PathBuf, Offset)> = (0..SPARES_PER_PARTITION_MAX)
            .map(|i| (named(&format!("m{i}"), 100), Offset(30 + i as i64)))
            .collect();
        first.offer(
            many.iter().map(|(p, o)| (alone(p), *o)).collect(),
            &reclaimer,
        );
        assert!(!newer.exists(), "the oldest spare went");
        assert!(many.iter().all(|(p, _)| p.exists()));
        let newest = &many[SPARES_PER_PARTITION_MAX - 1].0;
        assert_eq!(first.take_for(Offset(1000)).unwrap().path(), newest);
        drop(first);
        assert!(
            many.iter().all(|(p, _)| !p.exists()),
            "freed with their slot"
        );
        assert_eq!(reclaimer.stats().spare_bytes, 0);
    }

    #[test]
    fn no_spare_is_kept_on_a_file_system_short_of_free_space() {
        let dir = tempfile::tempdir().unwrap();
        for (min, kept) in [(u64::MAX, false), (1, true)] {
            let reclaimer = Reclaimer::inline_keeping_free(min);
            let slot = SpareSlot::default();
            let path = removed_file(dir.path(), 1000);
            slot.offer(vec![(alone(&path), Offset(10))], &reclaimer);
            assert_eq!(path.exists(), kept, "{min} bytes free required");
        }
    }

    #[test]
    fn a_segment_opened_from_a_previous_run_is_freed_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut log, _) = log_with_spare(d);
        let made = *log.segment_base_offsets().last().unwrap();
        append_until_roll(&mut log);
        // Its orphaned sockets may hold pages of what it made.
        log.close().unwrap();
        let mut log = open(d);
        assert!(log.segment_base_offsets().contains(&made));
        append_until_roll(&mut log);
        let removed = log
            .advance_log_start_offset(*log.segment_base_offsets().last().unwrap())
            .unwrap();
        assert!(removed.count() >= 2);
        drop(removed);
        assert!(
            !file(d, made, "log.deleted").exists(),
            "opened, not made, here"
        );
        let stats = log.reclaimer.stats();
        assert_eq!(stats.spare_bytes, 0, "{stats:?}");
    }
}
