//! Removing data: retention, DeleteRecords, and truncation.
//!
//! - [`PartitionLog::delete_retained_segments`] deletes whole segments from the
//!   start, by `retention.ms` (a segment's largest timestamp older than
//!   `now - retention.ms`) and `retention.bytes` (while the log without
//!   the oldest segment is still at least that large), and segments wholly
//!   below the log start offset.
//! - [`PartitionLog::advance_log_start_offset`]; DeleteRecords.
//! - [`PartitionLog::truncate_to`] and [`PartitionLog::truncate_fully_and_start_at`] do
//!   replication's truncation to a leader-epoch boundary.
//!
//! # Invariants
//! - Deleting renames each file to `*.deleted` under the caller's lock
//!   and unlinks it when the returned [`RemovedSegments`] is dropped,
//!   outside the lock (Kafka renames and deletes later too); open readers
//!   keep the inode, so their `FileRegion`s and `Bytes` stay valid.
//! - Retention does not write the checkpoint: the log start it moves to is
//!   the first remaining segment's base, which recovery derives anyway
//!   (`max(checkpoint, first base)`); the periodic checkpoint records it
//!   (Kafka's `log.flush.start.offset.checkpoint.interval.ms`). A segment
//!   whose unlink a power cut undoes comes back with the old log start and
//!   is removed again by the next pass. DeleteRecords, whose log start lies
//!   inside a segment, checkpoints before it returns.
//! - Truncation never changes or shrinks bytes a reader may view: the
//!   kept prefix of the affected segment is copied into new `*.swap` files
//!   (indexes rebuilt), fsynced, and renamed over the old names. Readers of
//!   the old segment keep the old inode. This costs a copy of up to one
//!   segment, acceptable for a rare operation.
//! - The active segment is never deleted by retention; when it alone has
//!   expired by time it is rolled first (Kafka does the same).

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::removed_segments::RemovedSegments;
use crate::sealed_files::SealedFiles;
use crate::segment::{self, INDEX_EXT, LOG_EXT, SWAP_SUFFIX, Segment, TIME_INDEX_EXT};

impl PartitionLog {
    /// [`PartitionLog::delete_retained_segments_below`] with every offset
    /// readable (the high watermark at the log end offset).
    pub fn delete_retained_segments(&mut self, now_ms: i64) -> Result<usize> {
        let end = self.log_end_offset();
        Ok(self.delete_retained_segments_below(now_ms, end)?.count())
    }

    /// Applies retention.ms, retention.bytes and the log start offset;
    /// returns the segments removed, whose files are unlinked when it is
    /// dropped (outside the partition's lock). The new log start offset is
    /// checkpointed by the next `checkpoint_recovery_point`.
    ///
    /// Never deletes a segment holding an offset at or above
    /// `high_watermark` (Kafka's `deletableSegments`): data consumers cannot
    /// read yet is never removed, whatever its timestamps or size say.
    pub fn delete_retained_segments_below(
        &mut self,
        now_ms: i64,
        high_watermark: Offset,
    ) -> Result<RemovedSegments> {
        self.check()?;
        let expired = |s: &Segment, retention_ms: u64| {
            now_ms.saturating_sub(s.largest_timestamp())
                > i64::try_from(retention_ms).unwrap_or(i64::MAX)
        };
        if let Some(ms) = self.config.retention_ms {
            let all_inactive_expired = self.segments.iter().rev().skip(1).all(|s| expired(s, ms));
            if all_inactive_expired && !self.active().is_empty() && expired(self.active(), ms) {
                self.roll(now_ms)?;
            }
        }
        let mut count = 0;
        let mut remaining = self.size_bytes();
        for seg in self.segments.iter().rev().skip(1).rev() {
            if seg.next_offset > high_watermark {
                break;
            }
            let by_time = self.config.retention_ms.is_some_and(|ms| expired(seg, ms));
            let by_bytes = self
                .config
                .retention_bytes
                .is_some_and(|max| remaining.saturating_sub(seg.size()) >= max);
            let by_start = seg.next_offset <= self.log_start;
            if !(by_time || by_bytes || by_start) {
                break;
            }
            remaining -= seg.size();
            count += 1;
        }
        self.remove_oldest(count)
    }

    /// Removes the `count` oldest segments (never the active one): out of
    /// the list, the log start past them, their files renamed to
    /// `*.deleted`; the unlinks wait for the returned value's drop.
    fn remove_oldest(&mut self, count: usize) -> Result<RemovedSegments> {
        let count = count.min(self.segments.len().saturating_sub(1));
        if count == 0 {
            return Ok(RemovedSegments::none(&self.dir, &self.reclaimer));
        }
        let removed: Vec<Segment> = self.segments.drain(..count).collect();
        let mut sealed = SealedFiles::default();
        if let Some(first) = self.segments.first() {
            self.log_start = self.log_start.max(first.base);
            sealed = self.sealed_files.take_below(first.base);
        }
        let start = self.log_start;
        self.epochs.truncate_from_start(start);
        for seg in &removed {
            tracing::info!(path = %seg.path().display(), "deleting segment");
            let r = segment::rename_to_deleted(&self.dir, seg.base);
            self.poison_on_err(r)?;
        }
        Ok(RemovedSegments::new(
            &self.dir,
            removed,
            sealed,
            &self.reclaimer,
            &self.spare,
        ))
    }

    /// DeleteRecords: records below `offset` are no longer readable. The
    /// new log start offset is checkpointed before this returns, so it
    /// survives a restart; whole segments below it are removed, their
    /// files freed when the returned value is dropped (after the caller's
    /// lock, as for retention).
    pub fn advance_log_start_offset(&mut self, offset: Offset) -> Result<RemovedSegments> {
        self.check()?;
        if offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start {
            return Ok(RemovedSegments::none(&self.dir, &self.reclaimer));
        }
        self.log_start = offset;
        self.write_checkpoint()?;
        self.epochs.truncate_from_start(offset);
        let below = self
            .segments
            .iter()
            .rev()
            .skip(1)
            .rev()
            .take_while(|s| s.next_offset <= offset)
            .count();
        self.remove_oldest(below)
    }

    /// Removes every batch from the one containing `offset` on (truncation
    /// is at a batch boundary, so the new log end offset is the base offset
    /// of that batch, `<= offset`), and returns the new log end offset.
    /// No-op when `offset >= log end`; below the log start offset it is
    /// `truncate_fully_and_start_at(offset)`. Durable when it returns.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<Offset> {
        self.check()?;
        if offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch that starts at the log end (a
            // leader that assigned it and wrote nothing before it lost
            // leadership) goes, as Kafka's `truncateTo` drops it: a
            // follower must not claim it as its last fetched epoch.
            let end = self.log_end_offset();
            let r = self.epochs.truncate_from_end(end);
            self.poison_on_err(r)?;
            return Ok(end);
        }
        if offset < self.log_start {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(offset);
        }
        let i = self.segment_for(offset);
        let (cut_pos, new_end) = match self
            .segments
            .get(i)
            .map(|s| s.find(offset))
            .transpose()?
            .flatten()
        {
            Some((pos, meta)) => (pos, meta.base),
            None => return Ok(self.log_end_offset()),
        };
        let r = self.truncate_segment_at(i, cut_pos, new_end);
        self.poison_on_err(r)?;
        let r = self.epochs.truncate_from_end(new_end);
        self.poison_on_err(r)?;
        Ok(new_end)
    }

    fn truncate_segment_at(&mut self, i: usize, cut_pos: u64, new_end: Offset) -> Result<()> {
        self.generation += 1;
        self.recovery_point = self.recovery_point.min(new_end);
        // Lower the persisted recovery point first: a crash from here on
        // re-scans the truncated segment instead of trusting it.
        self.write_checkpoint()?;
        for seg in self.segments.drain(i + 1..).rev() {
            seg.delete(&self.dir)?;
        }
        let Some(old) = self.segments.pop() else {
            return Err(Error::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: "log without segments".to_string(),
            });
        };
        let copy = self.copy_prefix(&old, cut_pos)?;
        drop(old);
        self.segments.push(copy);
        checkpoint::sync_dir(&self.dir)?;
        self.dir_synced = self.dir_changes;
        Ok(())
    }

    /// A new segment at `old`'s base holding its first `len` bytes, built
    /// under `*.swap` names, fsynced and renamed over `old`'s files.
    fn copy_prefix(&self, old: &Segment, len: u64) -> Result<Segment> {
        let swap_dir = self.dir.join(format!("{:020}{SWAP_SUFFIX}", old.base.0));
        let _ = std::fs::remove_dir_all(&swap_dir);
        std::fs::create_dir(&swap_dir).map_err(|e| Error::io("mkdir", &swap_dir, e))?;
        let mut copy = Segment::create(&swap_dir, old.base, &self.config, old.created_ms)?;
        let old_files = old.files()?;
        let bytes = old_files
            .log
            .shared()
            .slice(0, len)
            .ok_or_else(|| Error::Corrupt {
                path: old.path().to_path_buf(),
                position: len,
                reason: "truncation point past the end".to_string(),
            })?;
        let mut pos = 0;
        while pos < len {
            let meta = old.batch_at(pos)?;
            let batch = bytes
                .get(pos as usize..(pos + meta.size) as usize)
                .unwrap_or_default();
            copy.files_mut()?.log.append(batch)?;
            copy.note_batch(pos, meta, &self.config)?;
            pos += meta.size;
        }
        let files = copy.files_mut()?;
        files.log.shared().sync_data()?;
        for ext in [TIME_INDEX_EXT, INDEX_EXT, LOG_EXT] {
            let from = segment::segment_path(&swap_dir, old.base, ext);
            let to = segment::segment_path(&self.dir, old.base, ext);
            std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &to, e))?;
        }
        files
            .log
            .renamed_exclusive(&segment::segment_path(&self.dir, old.base, LOG_EXT))?;
        files
            .offset_index
            .renamed_exclusive(&segment::segment_path(&self.dir, old.base, INDEX_EXT))?;
        files.time_index.renamed_exclusive(&segment::segment_path(
            &self.dir,
            old.base,
            TIME_INDEX_EXT,
        ))?;
        std::fs::remove_dir(&swap_dir).map_err(|e| Error::io("rmdir", &swap_dir, e))?;
        copy.flushed_bytes = copy.size();
        Ok(copy)
    }

    /// Deletes every segment and starts an empty log at `offset` (log start
    /// = log end = recovery point = `offset`). Durable when it returns.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<()> {
        self.check()?;
        self.generation += 1;
        self.log_start = offset;
        self.recovery_point = offset;
        let r = self.restart_at(offset).and_then(|()| self.epochs.clear());
        self.poison_on_err(r)
    }

    /// Called with `log_start` and `recovery_point` already at `offset`.
    fn restart_at(&mut self, offset: Offset) -> Result<()> {
        self.write_checkpoint()?;
        let created_ms = self.active().created_ms;
        for seg in self.segments.drain(..) {
            seg.delete(&self.dir)?;
        }
        let seg = Segment::create(&self.dir, offset, &self.config, created_ms)?;
        self.segments.push(seg);
        checkpoint::sync_dir(&self.dir)?;
        self.dir_synced = self.dir_changes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{batch, small_config};
    use crate::{Error, LeaderEpoch, LogConfig, Offset, PartitionLog};
    use std::path::Path;

    const TS: i64 = 1_700_000_000_000;

    fn filled(dir: &Path, config: LogConfig, n: i64) -> PartitionLog {
        let mut log = PartitionLog::open(dir, config).unwrap();
        for i in 0..n {
            log.append_as_leader(&batch(0, 2, TS + i * 1000, 339), LeaderEpoch(1), TS)
                .unwrap();
        }
        log
    }

    #[test]
    fn retention_never_deletes_at_or_above_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), small_config(), 25);
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 3, "{bases:?}");
        let config = LogConfig {
            retention_ms: Some(1),
            ..log.config().clone()
        };
        log.set_config(config).unwrap();
        // Everything expired by time, but only the first segment lies
        // wholly below the high watermark.
        let removed = log
            .delete_retained_segments_below(TS + 1_000_000, bases[1])
            .unwrap();
        assert_eq!(removed.count(), 1);
        assert_eq!(log.log_start_offset(), bases[1]);
        // Renamed while the caller holds the value (its lock), unlinked
        // when it is dropped.
        let first = dir.path().join(format!("{:020}.log", bases[0].0));
        let renamed = dir.path().join(format!("{:020}.log.deleted", bases[0].0));
        assert!(!first.exists() && renamed.exists());
        drop(removed);
        // Its files wait, under the removed names, to become the next
        // segment's (`spare_segment.rs`).
        let index = dir.path().join(format!("{:020}.index.deleted", bases[0].0));
        assert!(index.exists() && renamed.exists(), "kept as the spare");
        let hw = log.log_end_offset();
        assert_eq!(
            log.delete_retained_segments_below(TS + 1_000_000, Offset(bases[2].0 - 1))
                .unwrap()
                .count(),
            0,
            "a segment ending above the high watermark was deleted"
        );
        assert_eq!(
            log.read(bases[1], 1 << 20, hw, false).unwrap().first_offset,
            Some(bases[1])
        );
    }

    #[test]
    fn a_crash_before_the_unlinks_reopens_at_the_new_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), small_config(), 25);
        let bases = log.segment_base_offsets();
        let end = log.log_end_offset();
        let config = LogConfig {
            retention_bytes: Some(1),
            ..log.config().clone()
        };
        log.set_config(config).unwrap();
        let removed = log.delete_retained_segments_below(TS, end).unwrap();
        assert_eq!(removed.count(), bases.len() - 1, "all but the active");
        // The crash: files renamed, never unlinked, and no checkpoint of
        // the new log start written since.
        std::mem::forget(removed);
        drop(log);
        let leftovers = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".deleted")
                })
                .count()
        };
        assert_eq!(leftovers(), 3 * (bases.len() - 1));
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        let last = *bases.last().unwrap();
        assert_eq!(
            log.log_start_offset(),
            last,
            "derived from the first segment"
        );
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.segment_base_offsets(), vec![last]);
        assert_eq!(leftovers(), 0, "the open removed them");
        assert_eq!(
            log.read(last, 1 << 20, end, false).unwrap().first_offset,
            Some(last)
        );
    }

    #[test]
    fn retention_by_time_deletes_expired_segments_and_rolls_an_expired_active() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(10_000),
            ..small_config()
        };
        let mut log = filled(dir.path(), config, 25); // segments of 10 batches
        // Segment 0 max ts TS+9s, segment 20 max TS+19s, active TS+24s.
        assert_eq!(log.delete_retained_segments(TS + 19_000).unwrap(), 0);
        assert_eq!(log.delete_retained_segments(TS + 19_001).unwrap(), 1);
        assert_eq!(log.log_start_offset(), Offset(20));
        assert!(!dir.path().join("00000000000000000000.log").exists());
        assert!(matches!(
            log.read(Offset(0), 100, Offset(50), true),
            Err(Error::OffsetOutOfRange {
                log_start: Offset(20),
                ..
            })
        ));
        assert_eq!(log.delete_retained_segments(TS + 60_000).unwrap(), 2);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), Offset(50));
        assert_eq!(log.log_end_offset(), Offset(50));
        drop(log);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_start_offset(), Offset(50));
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: Some(5000),
            ..small_config()
        };
        let mut log = filled(dir.path(), config, 25); // 4000 + 4000 + 2000 bytes
        assert_eq!(log.delete_retained_segments(TS).unwrap(), 1);
        assert_eq!(log.size_bytes(), 6000);
        assert_eq!(
            log.delete_retained_segments(TS).unwrap(),
            0,
            "never the active segment"
        );
    }

    #[test]
    fn advance_log_start_offset_is_persisted_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), small_config(), 25);
        assert!(matches!(
            log.advance_log_start_offset(Offset(51)),
            Err(Error::OffsetOutOfRange { .. })
        ));
        drop(log.advance_log_start_offset(Offset(23)).unwrap());
        assert_eq!(log.segment_count(), 2, "segment 0 is wholly below");
        let r = log.read(Offset(23), 1, Offset(50), true).unwrap();
        assert_eq!(r.first_offset, Some(Offset(22)));
        drop(log.simulate_crash());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_start_offset(), Offset(23));
        assert!(log.read(Offset(22), 1, Offset(50), true).is_err());
        let ts = log.offset_for_timestamp(0).unwrap().unwrap();
        assert_eq!(i64::from_be_bytes(ts[..8].try_into().unwrap()), 22);
    }

    #[test]
    fn truncate_to_cuts_at_a_batch_boundary_and_readers_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), small_config(), 25);
        let before = log.read(Offset(20), u32::MAX, Offset(50), false).unwrap();
        let held = before.regions[0].bytes();
        let held_copy = held.to_vec();
        assert_eq!(log.truncate_to(Offset(27)).unwrap(), Offset(26));
        assert_eq!(log.log_end_offset(), Offset(26));
        assert_eq!(log.segment_count(), 2);
        assert_eq!(&held[..], &held_copy[..], "a reader's bytes never change");
        assert_eq!(
            std::fs::metadata(dir.path().join("00000000000000000020.log"))
                .unwrap()
                .len(),
            4096
        );
        let info = log
            .append_as_leader(&batch(0, 1, TS, 5), LeaderEpoch(2), TS)
            .unwrap();
        assert_eq!(info.base_offset, Offset(26));
        assert_eq!(
            log.truncate_to(Offset(100)).unwrap(),
            Offset(27),
            "past the end: no-op"
        );
        assert_eq!(log.truncate_to(Offset(20)).unwrap(), Offset(20));
        assert_eq!(log.segment_count(), 2);
        assert!(
            log.read(Offset(20), 100, Offset(20), true)
                .unwrap()
                .regions
                .is_empty()
        );
        drop(log.simulate_crash());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), Offset(20), "truncation is durable");
    }

    #[test]
    fn truncate_fully_and_start_at_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), small_config(), 25);
        log.truncate_fully_and_start_at(Offset(1000)).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(1000), Offset(1000))
        );
        assert_eq!(log.segment_count(), 1);
        let info = log
            .append_as_leader(&batch(0, 1, TS, 5), LeaderEpoch(2), TS)
            .unwrap();
        assert_eq!(info.base_offset, Offset(1000));
        drop(log.simulate_crash());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_start_offset(), Offset(1000));
        assert_eq!(log.log_end_offset(), Offset(1001));
    }
}
