//! Cleaning one partition log's inactive segments in place, and swapping
//! each cleaned group of segments in so that a kill -9 at any point loses
//! nothing and duplicates nothing.
//!
//! ```text
//! per group of consecutive inactive segments below the mapped end
//! (oldest first; `first` is the group's first base, see pass.rs "Groups"):
//!   1. build <first>.swap/<first>.{log,index,timeindex} from the kept
//!      batches of the whole group, fdatasync the new .log
//!   2. unlink <first>.index and <first>.timeindex      (crash: old segments, indexes rebuilt)
//!   3. rename <first>.swap/<first>.log over <first>.log (atomic, the commit point;
//!                                                        crash: new .log, indexes rebuilt,
//!                                                        the rest of the group removed)
//!   4. fsync the directory, delete the group's other segments (renamed
//!      to .deleted, handed to the reclaimer, which frees them in steps)
//!   5. rename the new indexes in, remove <first>.swap/, fsync the directory
//! recovery removes a leftover <first>.swap/, rebuilds missing indexes and
//! deletes a segment that starts inside the one before it (only step 3
//! makes that: what it holds is all in the new first segment)
//! ```
//!
//! A `.log` is only ever replaced by one atomic rename, so after a crash
//! the directory holds either the old group or the cleaned segment (with
//! perhaps some of the old ones it covers, which recovery deletes).
//! Readers holding regions of the old files keep the old inodes.
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
//! - A cleaned segment covers exactly the offsets its group did.
//! - A built segment is swapped in only over the very segments it was
//!   built from (same bases, `.log` sizes and next offsets, consecutive,
//!   and no truncation since): otherwise it is thrown away.
//!
//! # Locking
//! Only [`PartitionLog::swap_in_cleaned`] needs the partition's `&mut`
//! (its lock): steps 2–5 above, a few renames and unlinks and two
//! directory fsyncs. The candidates are read and each cleaned segment is
//! built (step 1) outside it (`pass.rs`).
//!
//! # References
//! Kafka's `LogCleaner.cleanSegments`, `LocalLog.replaceSegments`.

use super::cleaner::CleaningRules;
use super::offset_map::OffsetMap;
use super::pass::{CleanedSegment, Replaced, Rewritten};
use super::throttle::Throttle;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::segment::{self, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};

/// What one cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleaningReport {
    pub rewritten: Rewritten,
    /// Offsets below this were cleaned against the map.
    pub cleaned_below: Option<Offset>,
}

/// A crash point for tests: the pass stops (as a kill -9 would) right
/// after the named step of the first group it swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterSwapBuilt,
    AfterIndexesRemoved,
    AfterLogRenamed,
    /// After the first of the group's other segments is deleted (a
    /// group of one: after the `.log` rename).
    AfterOneCoveredDeleted,
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
        for built in input.builds(end, map, rules, &mut throttle) {
            let built = built?;
            let rewritten = built.rewritten();
            if self.swap_in_cleaned(built, crash)? {
                report.rewritten += rewritten;
            }
            if crash.is_some() {
                break;
            }
        }
        Ok(report)
    }

    /// Swaps `built` in for the segments it was built from (see the
    /// module doc); false, and `built` thrown away, when any of them is
    /// gone or changed. Durable when it returns true.
    pub fn swap_in_cleaned(
        &mut self,
        built: CleanedSegment,
        crash: Option<CrashPoint>,
    ) -> Result<bool> {
        let Some(i) = self.position_of(&built.replaces, built.generation) else {
            let _ = std::fs::remove_dir_all(&built.swap_dir);
            return Ok(false);
        };
        let r = self.swap_in(i, built, crash);
        self.poison_on_err(r).map(|()| true)
    }

    /// Where the segments `replaces` names still are, consecutive and
    /// unchanged, with the active segment after them (never replaced).
    fn position_of(&self, replaces: &[Replaced], generation: u64) -> Option<usize> {
        let first = replaces.first()?;
        if generation != self.generation || self.check().is_err() {
            return None;
        }
        let i = self.segments.iter().position(|s| s.base == first.base)?;
        let current = self.segments.get(i..i + replaces.len())?;
        let unchanged = current
            .iter()
            .zip(replaces)
            .all(|(s, r)| s.base == r.base && s.size() == r.size && s.next_offset == r.next_offset);
        (unchanged && i + replaces.len() < self.segments.len()).then_some(i)
    }

    /// Steps 2–5 of the module doc for the group starting at segment `i`.
    fn swap_in(
        &mut self,
        i: usize,
        built: CleanedSegment,
        crash: Option<CrashPoint>,
    ) -> Result<()> {
        let CleanedSegment {
            segment: mut new,
            swap_dir,
            replaces,
            ..
        } = built;
        let base = new.base;
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
        let rename_in = |ext: &str| {
            let from = segment::segment_path(&swap_dir, base, ext);
            let to = segment::segment_path(&self.dir, base, ext);
            std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &to, e))
        };
        rename_in(LOG_EXT)?;
        if replaces.len() > 1 || crash == Some(CrashPoint::AfterLogRenamed) {
            // The commit is durable before any segment it covers goes.
            checkpoint::sync_dir(&self.dir)?;
        }
        if crash == Some(CrashPoint::AfterLogRenamed) {
            return Ok(());
        }
        for covered in replaces.iter().skip(1) {
            // Renamed now; freed by the reclaimer (in steps, once the old
            // segments below drop their mappings), as retention's are.
            segment::rename_to_deleted(&self.dir, covered.base)?;
            segment::reclaim_deleted(&self.dir, covered.base, &self.reclaimer);
            if crash == Some(CrashPoint::AfterOneCoveredDeleted) {
                break;
            }
        }
        if crash == Some(CrashPoint::AfterOneCoveredDeleted) {
            checkpoint::sync_dir(&self.dir)?;
            return Ok(());
        }
        rename_in(INDEX_EXT)?;
        rename_in(TIME_INDEX_EXT)?;
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
        // The old segments' files close as they drop; readers holding
        // regions of them keep the unlinked inodes.
        let end = (i + replaces.len()).min(self.segments.len());
        self.segments.splice(i..end, [new]).for_each(drop);
        Ok(())
    }
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
