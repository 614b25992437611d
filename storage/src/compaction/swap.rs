//! Cleaning one partition log's inactive segments in place, and swapping
//! each cleaned segment in so that a kill -9 at any point loses nothing
//! and duplicates nothing.
//!
//! ```text
//! per inactive segment below the mapped end (oldest first):
//!   1. build <base>.swap/<base>.{log,index,timeindex} from the kept batches,
//!      fdatasync the new .log
//!   2. unlink <base>.index and <base>.timeindex          (crash: old .log, indexes rebuilt)
//!   3. rename <base>.swap/<base>.log over <base>.log      (atomic; crash: new .log, indexes rebuilt)
//!   4. rename the new indexes in, remove <base>.swap/, fsync the directory
//! recovery removes a leftover <base>.swap/ and rebuilds missing indexes
//! ```
//!
//! A `.log` is only ever replaced by one atomic rename, so after a crash
//! the directory holds either the old or the cleaned segment, each whole;
//! both hold the same offset range. Readers holding regions of the old
//! files keep the old inodes.
//!
//! Batch offsets stay dense, as recovery and the indexes require: a run
//! of batches that lose every record becomes one empty batch (recordsCount
//! 0) spanning their offsets, as Kafka keeps an emptied producer batch;
//! a producer's last batch stays as its own (possibly empty) batch, so
//! its id, epoch and sequence range stay in the log.
//!
//! # Invariants
//! - The active segment is never cleaned, nor anything at or above the
//!   `limit` offset the caller passes (the high watermark, or the
//!   `min.compaction.lag.ms` bound).
//! - A cleaned segment covers exactly the offsets the old one did.
//! - A built segment is swapped in only over the very segment it was
//!   built from (same base, `.log` size and next offset, and no
//!   truncation since): otherwise it is thrown away.
//!
//! # Locking
//! Only [`PartitionLog::swap_in_cleaned`] needs the partition's `&mut`
//! (its lock): steps 2–4 above, a few renames and two directory fsyncs.
//! The candidates are read and each cleaned segment is built (step 1)
//! outside it (`pass.rs`).
//!
//! # Caveats
//! - Segments are cleaned one by one and never merged, so a segment
//!   emptied by cleaning stays as a file holding one empty batch.
//!
//! # References
//! Kafka's `LogCleaner.cleanSegments`, `LocalLog.replaceSegments`.

use super::cleaner::CleaningRules;
use super::offset_map::OffsetMap;
use super::pass::CleanedSegment;
use super::throttle::Throttle;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::segment::{self, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};

/// What one cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleaningReport {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// `.log` bytes of those segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Offsets below this were cleaned against the map.
    pub cleaned_below: Option<Offset>,
}

/// A crash point for tests: the pass stops (as a kill -9 would) right
/// after the named step of the first segment it swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterSwapBuilt,
    AfterIndexesRemoved,
    AfterLogRenamed,
}

impl PartitionLog {
    /// One whole cleaning pass (input, map, build, swap, in one call and
    /// under the caller's `&mut`): the inactive segments that end at or
    /// below `limit` and hold nothing newer than `newest_ms`, all of them
    /// dirty. Durable when it returns. The broker's cleaner runs the same
    /// steps with the lock taken only to read and to swap.
    pub fn clean(
        &mut self,
        map: &mut OffsetMap,
        rules: &CleaningRules,
        limit: Offset,
        newest_ms: i64,
    ) -> Result<CleaningReport> {
        self.clean_until_crash(map, rules, (limit, newest_ms), None)
    }

    /// [`PartitionLog::clean`] with a test crash point.
    #[doc(hidden)]
    pub fn clean_until_crash(
        &mut self,
        map: &mut OffsetMap,
        rules: &CleaningRules,
        (limit, newest_ms): (Offset, i64),
        crash: Option<CrashPoint>,
    ) -> Result<CleaningReport> {
        let mut report = CleaningReport::default();
        let Some(input) = self.cleaning_input(limit, newest_ms)? else {
            return Ok(report);
        };
        let mut throttle = Throttle::unlimited();
        let Some(end) = input.map_keys(map, rules, None, &mut throttle)? else {
            return Ok(report);
        };
        report.cleaned_below = Some(end);
        for base in input.cleanable_below(end) {
            let Some(built) = input.build(base, map, rules, &mut throttle)? else {
                continue;
            };
            let (before, after) = (built.bytes_before, built.bytes_after);
            if self.swap_in_cleaned(built, crash)? {
                report.segments_cleaned += 1;
                report.bytes_before += before;
                report.bytes_after += after;
            }
            if crash.is_some() {
                break;
            }
        }
        Ok(report)
    }

    /// Swaps `built` in for the segment it was built from (see the module
    /// doc); false, and `built` thrown away, when that segment is gone or
    /// changed. Durable when it returns true.
    pub fn swap_in_cleaned(
        &mut self,
        built: CleanedSegment,
        crash: Option<CrashPoint>,
    ) -> Result<bool> {
        let (base, size, next_offset, generation) = built.replaces;
        let current = self
            .segments
            .iter()
            .position(|s| s.base == base && s.size() == size && s.next_offset == next_offset);
        let Some(i) = current.filter(|_| generation == self.generation && self.check().is_ok())
        else {
            let _ = std::fs::remove_dir_all(&built.swap_dir);
            return Ok(false);
        };
        // The last segment is the active one: never replaced.
        if i + 1 >= self.segments.len() {
            let _ = std::fs::remove_dir_all(&built.swap_dir);
            return Ok(false);
        }
        let r = self.swap_in(i, built, crash);
        self.poison_on_err(r).map(|()| true)
    }

    /// Steps 2–4 of the module doc for segment `i`.
    fn swap_in(
        &mut self,
        i: usize,
        built: CleanedSegment,
        crash: Option<CrashPoint>,
    ) -> Result<()> {
        let CleanedSegment {
            segment: mut new,
            swap_dir,
            replaces: (base, ..),
            ..
        } = built;
        if crash == Some(CrashPoint::AfterSwapBuilt) {
            return Ok(());
        }
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let path = segment::segment_path(&self.dir, base, ext);
            std::fs::remove_file(&path).map_err(|e| Error::io("unlink", &path, e))?;
        }
        checkpoint::sync_dir(&self.dir)?;
        if crash == Some(CrashPoint::AfterIndexesRemoved) {
            return Ok(());
        }
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let from = segment::segment_path(&swap_dir, base, ext);
            let to = segment::segment_path(&self.dir, base, ext);
            std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &to, e))?;
            if ext == LOG_EXT && crash == Some(CrashPoint::AfterLogRenamed) {
                checkpoint::sync_dir(&self.dir)?;
                return Ok(());
            }
        }
        let files = new.files_mut()?;
        files
            .log
            .renamed_exclusive(&segment::segment_path(&self.dir, base, LOG_EXT))?;
        files
            .offset_index
            .renamed_exclusive(&segment::segment_path(&self.dir, base, INDEX_EXT))?;
        files.time_index.renamed_exclusive(&segment::segment_path(
            &self.dir,
            base,
            TIME_INDEX_EXT,
        ))?;
        std::fs::remove_dir(&swap_dir).map_err(|e| Error::io("rmdir", &swap_dir, e))?;
        checkpoint::sync_dir(&self.dir)?;
        new.flushed_bytes = new.size();
        // Sealed: its files close until read, under the shared budget.
        new.release(&self.dir, &self.files);
        if let Some(slot) = self.segments.get_mut(i) {
            *slot = new;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
