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
//! - Deleting renames each file to `*.deleted` and then unlinks it (as
//!   Kafka does); open readers keep the inode, so their `FileRegion`s and
//!   `Bytes` stay valid.
//! - Truncation never changes or shrinks bytes a reader may view: the
//!   kept prefix of the affected segment is copied into new `*.swap` files
//!   (indexes rebuilt), fsynced, and renamed over the old names. Readers of
//!   the old segment keep the old inode. This costs a copy of up to one
//!   segment, acceptable for a rare operation.
//! - The active segment is never deleted by retention; when it alone has
//!   expired by time it is rolled first (Kafka does the same).

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::segment::{self, INDEX_EXT, LOG_EXT, SWAP_SUFFIX, Segment, TIME_INDEX_EXT};

impl PartitionLog {
    /// Applies retention.ms, retention.bytes and the log start offset;
    /// returns the number of segments deleted. The new log start offset is
    /// checkpointed.
    pub fn delete_retained_segments(&mut self, now_ms: i64) -> Result<usize> {
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
        self.delete_oldest(count)?;
        Ok(count)
    }

    /// Deletes the `count` oldest segments (never the active one) and
    /// checkpoints the new log start offset.
    fn delete_oldest(&mut self, count: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let count = count.min(self.segments.len().saturating_sub(1));
        let doomed: Vec<Segment> = self.segments.drain(..count).collect();
        if let Some(first) = self.segments.first() {
            self.log_start = self.log_start.max(first.base);
        }
        for seg in doomed {
            tracing::info!(path = %seg.path().display(), "deleting segment");
            let r = seg.delete(&self.dir);
            self.poison_on_err(r)?;
        }
        self.write_checkpoint()
    }

    /// DeleteRecords: records below `offset` are no longer readable. The
    /// new log start offset is checkpointed before this returns, so it
    /// survives a restart; whole segments below it are deleted.
    pub fn advance_log_start_offset(&mut self, offset: Offset) -> Result<()> {
        self.check()?;
        if offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start {
            return Ok(());
        }
        self.log_start = offset;
        self.write_checkpoint()?;
        let below = self
            .segments
            .iter()
            .rev()
            .skip(1)
            .rev()
            .take_while(|s| s.next_offset <= offset)
            .count();
        self.delete_oldest(below)
    }

    /// Removes every batch from the one containing `offset` on (truncation
    /// is at a batch boundary, so the new log end offset is the base offset
    /// of that batch, `<= offset`), and returns the new log end offset.
    /// No-op when `offset >= log end`; below the log start offset it is
    /// `truncate_fully_and_start_at(offset)`. Durable when it returns.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<Offset> {
        self.check()?;
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
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
        let old = self.segments.pop().ok_or(Error::EmptyAppend)?;
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
        let bytes = old
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
            copy.log.append(batch)?;
            copy.note_batch(pos, meta, &self.config)?;
            pos += meta.size;
        }
        copy.log.shared().sync_data()?;
        for ext in [TIME_INDEX_EXT, INDEX_EXT, LOG_EXT] {
            let from = segment::segment_path(&swap_dir, old.base, ext);
            let to = segment::segment_path(&self.dir, old.base, ext);
            std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &to, e))?;
        }
        copy.log
            .renamed_exclusive(&segment::segment_path(&self.dir, old.base, LOG_EXT))?;
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
        let r = self.restart_at(offset);
        self.poison_on_err(r)
    }

    fn restart_at(&mut self, offset: Offset) -> Result<()> {
        Checkpoint {
            recovery_point: offset,
            log_start_offset: offset,
        }
        .write(&self.dir)?;
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
