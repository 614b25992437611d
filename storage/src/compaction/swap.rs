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
//!
//! # Caveats
//! - Cleaning runs under the partition's `&mut` (its lock): appends wait
//!   for one cleaning pass, which reads and rewrites at most the inactive
//!   segments below `limit`. Kafka cleans outside the log lock and takes
//!   it only for the swap.
//! - Segments are cleaned one by one and never merged, so a segment
//!   emptied by cleaning stays as a file holding one empty batch.
//!
//! # References
//! Kafka's `LogCleaner.cleanSegments`, `LocalLog.replaceSegments`.

use std::collections::HashMap;

use bytes::Bytes;
use sluice_protocol::RecordBatchView;
use sluice_protocol::record_batch::empty_batch;

use super::cleaner::{CleaningRules, Filtered, filter_batch, map_batches};
use super::offset_map::OffsetMap;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::limits;
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::segment::{self, BatchMeta, INDEX_EXT, LOG_EXT, SWAP_SUFFIX, Segment, TIME_INDEX_EXT};

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
    /// One cleaning pass over the inactive segments that end at or below
    /// `limit` and hold nothing newer than `newest_ms` (the
    /// `min.compaction.lag.ms` bound): maps their keys (as far as `map`
    /// holds them), then rewrites each segment below the mapped end that
    /// loses anything. Durable when it returns.
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
        self.check()?;
        map.clear();
        let inactive = self.segments.len().saturating_sub(1);
        let candidates = self
            .segments
            .iter()
            .take(inactive)
            .take_while(|s| s.next_offset <= limit && s.largest_timestamp() <= newest_ms)
            .count();
        let mut report = CleaningReport::default();
        if candidates == 0 {
            return Ok(report);
        }
        let producer_last = self.producers_last_batch()?;
        let mut views = Vec::new();
        let held: Vec<Bytes> = self
            .segments
            .iter()
            .take(candidates)
            .map(|s| s.bytes(0, s.size()))
            .collect::<Result<_>>()?;
        for bytes in &held {
            views.extend(batches(bytes)?);
        }
        let mapped_end = map_batches(views.iter().copied(), map, rules.records_bytes_max)
            .map_err(|e| self.invalid(e))?
            .map(Offset);
        let Some(end) = mapped_end else {
            return Ok(report);
        };
        report.cleaned_below = Some(end);
        for i in 0..candidates {
            let Some(seg) = self.segments.get(i) else {
                break;
            };
            if seg.next_offset > end {
                break;
            }
            let old = held.get(i).cloned().unwrap_or_default();
            let Some(kept) = self.cleaned_batches(&old, map, rules, &producer_last)? else {
                continue;
            };
            report.segments_cleaned += 1;
            report.bytes_before += old.len() as u64;
            report.bytes_after += kept.iter().map(|b| b.len() as u64).sum::<u64>();
            let r = self.swap_in(i, &kept, crash);
            self.poison_on_err(r)?;
            if crash.is_some() {
                break;
            }
        }
        Ok(report)
    }

    /// Each producer id → base offset of its last batch in the whole log.
    /// Bounded by the producers present in the log (one entry each).
    fn producers_last_batch(&self) -> Result<HashMap<i64, Offset>> {
        let mut last = HashMap::new();
        for seg in &self.segments {
            let bytes = seg.bytes(0, seg.size())?;
            for view in batches(&bytes)? {
                if view.producer_id() >= 0 {
                    last.insert(view.producer_id(), Offset(view.base_offset()));
                }
            }
        }
        Ok(last)
    }

    /// The batches a segment keeps, or `None` when it keeps everything.
    fn cleaned_batches(
        &self,
        old: &[u8],
        map: &OffsetMap,
        rules: &CleaningRules,
        producer_last: &HashMap<i64, Offset>,
    ) -> Result<Option<Vec<Bytes>>> {
        let mut out: Vec<Bytes> = Vec::new();
        let mut changed = false;
        // A run of dropped batches: (first base, last offset, leader epoch
        // of the first, max timestamp).
        let mut gap: Option<(i64, i64, i32, i64)> = None;
        for view in batches(old)? {
            let is_last =
                producer_last.get(&view.producer_id()) == Some(&Offset(view.base_offset()));
            let filtered = filter_batch(&view, map, rules, is_last).map_err(|e| self.invalid(e))?;
            let kept = match filtered {
                Filtered::Drop => {
                    changed = true;
                    let g = gap.get_or_insert((
                        view.base_offset(),
                        0,
                        view.partition_leader_epoch(),
                        -1,
                    ));
                    g.1 = view.last_offset();
                    g.3 = g.3.max(view.max_timestamp());
                    continue;
                }
                Filtered::Keep => Bytes::copy_from_slice(view.as_bytes()),
                Filtered::Rewrite(b) => {
                    changed = true;
                    b
                }
            };
            if let Some((base, last, epoch, ts)) = gap.take() {
                out.push(empty_batch(base, last, epoch, ts).map_err(|e| self.invalid(e))?);
            }
            out.push(kept);
        }
        if let Some((base, last, epoch, ts)) = gap.take() {
            out.push(empty_batch(base, last, epoch, ts).map_err(|e| self.invalid(e))?);
        }
        Ok(changed.then_some(out))
    }

    /// Replaces segment `i` by one holding `kept` (see the module doc).
    fn swap_in(&mut self, i: usize, kept: &[Bytes], crash: Option<CrashPoint>) -> Result<()> {
        let Some(old) = self.segments.get(i) else {
            return Ok(());
        };
        let base = old.base;
        let swap_dir = self.dir.join(format!("{:020}{SWAP_SUFFIX}", base.0));
        let _ = std::fs::remove_dir_all(&swap_dir);
        std::fs::create_dir(&swap_dir).map_err(|e| Error::io("mkdir", &swap_dir, e))?;
        let mut new = Segment::create(&swap_dir, base, &self.config, old.created_ms)?;
        let mut pos = 0u64;
        for batch in kept {
            let view = RecordBatchView::parse(batch, limits::MAX_STORED_BATCH_BYTES)
                .map_err(|e| self.invalid(e))?;
            new.log.append(batch)?;
            new.note_batch(pos, BatchMeta::of(&view), &self.config)?;
            pos += batch.len() as u64;
        }
        new.seal()?;
        new.log.shared().sync_data()?;
        new.sync_indexes()?;
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
        new.log
            .renamed_exclusive(&segment::segment_path(&self.dir, base, LOG_EXT))?;
        new.offset_index
            .renamed_exclusive(&segment::segment_path(&self.dir, base, INDEX_EXT))?;
        new.time_index.renamed_exclusive(&segment::segment_path(
            &self.dir,
            base,
            TIME_INDEX_EXT,
        ))?;
        std::fs::remove_dir(&swap_dir).map_err(|e| Error::io("rmdir", &swap_dir, e))?;
        checkpoint::sync_dir(&self.dir)?;
        new.flushed_bytes = new.size();
        if let Some(slot) = self.segments.get_mut(i) {
            *slot = new;
        }
        Ok(())
    }

    fn invalid(&self, source: sluice_protocol::DecodeError) -> Error {
        Error::Corrupt {
            path: self.dir.clone(),
            position: 0,
            reason: format!("cleaning: {source}"),
        }
    }
}

/// The batches of a sealed segment's bytes.
fn batches(bytes: &[u8]) -> Result<Vec<RecordBatchView<'_>>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let view = RecordBatchView::parse(rest, limits::MAX_STORED_BATCH_BYTES).map_err(|e| {
            Error::Corrupt {
                path: std::path::PathBuf::new(),
                position: (bytes.len() - rest.len()) as u64,
                reason: e.to_string(),
            }
        })?;
        rest = rest.get(view.size()..).unwrap_or_default();
        out.push(view);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
