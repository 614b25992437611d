//! One cleaning pass's work outside the partition's lock: what it reads
//! is taken under the lock in one short step ([`PartitionLog::cleaning_input`]:
//! the mapped bytes of the candidate segments, shared, never copied), then
//! keys are mapped and each cleaned segment is built in its `.swap/`
//! directory without the lock; only the swap takes it again
//! (`swap.rs`). Appends to the partition go on meanwhile.
//!
//! ```text
//! under the lock  cleaning_input   candidates = inactive segments ending ≤ limit
//!                                  and holding nothing newer than newest_ms;
//!                                  their bytes (Bytes over the mapping) and
//!                                  every producer's last batch in the whole log
//! no lock         dirty_share      clean vs dirty bytes around first_dirty
//!                 map_keys         pass 1 over the dirty candidates
//!                 builds           pass 2, one group of consecutive segments
//!                                  at a time → <first base>.swap/
//! under the lock  swap_in_cleaned  only if the group is still the one read
//! ```
//!
//! # Groups
//! Consecutive segments are merged while their *cleaned* bytes fit
//! `segment.bytes` and their offsets fit an index's relative offset
//! (`i32`), so cleaning shrinks the number of segments as well as their
//! bytes: a compacted topic whose keys churn keeps a bounded number of
//! files. (Kafka groups by the sizes before cleaning,
//! `LogCleaner.groupSegmentsBySize`; grouping by what is kept merges a
//! segment in the pass that empties it.) A group of one segment that keeps
//! every batch is not rewritten.
//!
//! # Invariants
//! - The bytes held are those of sealed segments below the high watermark:
//!   nothing appends to them. A truncation or retention that removes or
//!   replaces one meanwhile is seen at the swap (base, size and the log's
//!   truncation generation are compared) and the built segment is dropped.
//! - A producer's last batch found here may stop being its last (it
//!   writes again meanwhile): the cleaner then keeps one batch more than
//!   needed, never one less.
//!
//! # References
//! Kafka's `LogCleaner.Cleaner.doClean` (clean outside the log's lock,
//! `replaceSegments` under it) and `LogCleanerManager.cleanableOffsets`.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use sluice_protocol::RecordBatchView;
use sluice_protocol::record_batch::empty_batch;

use super::cleaner::{CleaningRules, Filtered, filter_batch, map_batches};
use super::offset_map::OffsetMap;
use super::throttle::Throttle;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::limits;
use crate::log::PartitionLog;
use crate::offset::Offset;
use crate::segment::{BatchMeta, SWAP_SUFFIX, Segment};

/// A sealed segment as a pass read it.
#[derive(Debug, Clone)]
pub(crate) struct HeldSegment {
    pub(crate) base: Offset,
    pub(crate) next_offset: Offset,
    pub(crate) created_ms: i64,
    /// The whole `.log`, shared with the mapping (no copy).
    pub(crate) bytes: Bytes,
}

/// What one pass reads, taken under the lock.
#[derive(Debug)]
pub struct CleaningInput {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// The log's truncation generation when read.
    pub(crate) generation: u64,
    pub(crate) segments: Vec<HeldSegment>,
    /// Producer id → base offset of its last batch in the whole log.
    pub(crate) producer_last: HashMap<i64, Offset>,
}

/// A cleaned segment built in its swap directory, waiting for the swap.
#[derive(Debug)]
pub struct CleanedSegment {
    pub(crate) segment: Segment,
    pub(crate) swap_dir: PathBuf,
    /// The consecutive segments it replaces, oldest first (never empty).
    pub(crate) replaces: Vec<Replaced>,
    /// The log's truncation generation when they were read.
    pub(crate) generation: u64,
}

/// One segment a cleaned segment replaces, as the pass read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replaced {
    pub(crate) base: Offset,
    pub(crate) size: u64,
    pub(crate) next_offset: Offset,
}

impl CleanedSegment {
    /// The base offset of the (first) segment it replaces.
    pub fn base(&self) -> Offset {
        self.segment.base
    }

    /// What swapping it in rewrites: the segments it replaces (more than
    /// one: a merge) and their `.log` bytes, and what they become.
    pub fn rewritten(&self) -> Rewritten {
        Rewritten {
            segments_cleaned: self.replaces.len(),
            segments_after: 1,
            bytes_before: self.replaces.iter().map(|r| r.size).sum(),
            bytes_after: self.segment.size(),
        }
    }
}

/// What swaps of cleaned segments rewrote, summed over a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Segments rewritten (each merged one counts).
    pub segments_cleaned: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// `.log` bytes of those segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl std::ops::AddAssign for Rewritten {
    fn add_assign(&mut self, other: Self) {
        self.segments_cleaned += other.segments_cleaned;
        self.segments_after += other.segments_after;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
    }
}

/// Bytes below and above the first dirty offset, among the candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirtyShare {
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// Max timestamp of the first dirty segment's first batch (Kafka's
    /// `getFirstBatchTimestamp`), for `max.compaction.lag.ms`.
    pub first_dirty_timestamp: Option<i64>,
}

impl DirtyShare {
    /// `dirty / (clean + dirty)`, 0 when there is nothing.
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            // Byte counts far below 2^52: exact enough as f64.
            self.dirty_bytes as f64 / total as f64
        }
    }
}

impl PartitionLog {
    /// The candidates of a pass (see the module doc): inactive segments
    /// that end at or below `limit` and hold nothing newer than
    /// `newest_ms`; `None` when there are none. Call under the lock; it
    /// reads every batch header of the log once (for the producers' last
    /// batches) and copies no data.
    pub fn cleaning_input(&self, limit: Offset, newest_ms: i64) -> Result<Option<CleaningInput>> {
        self.check()?;
        let inactive = self.segments.len().saturating_sub(1);
        let segments: Vec<HeldSegment> = self
            .segments
            .iter()
            .take(inactive)
            .take_while(|s| s.next_offset <= limit && s.largest_timestamp() <= newest_ms)
            .map(|s| {
                Ok(HeldSegment {
                    base: s.base,
                    next_offset: s.next_offset,
                    created_ms: s.created_ms,
                    bytes: s.bytes(0, s.size())?,
                })
            })
            .collect::<Result<_>>()?;
        if segments.is_empty() {
            return Ok(None);
        }
        let mut producer_last = HashMap::new();
        for seg in &self.segments {
            let bytes = seg.bytes(0, seg.size())?;
            for view in batches(&bytes)? {
                if view.producer_id() >= 0 {
                    producer_last.insert(view.producer_id(), Offset(view.base_offset()));
                }
            }
        }
        Ok(Some(CleaningInput {
            dir: self.dir.clone(),
            config: self.config.clone(),
            generation: self.generation,
            segments,
            producer_last,
        }))
    }
}

impl CleaningInput {
    /// Clean and dirty bytes when everything below `first_dirty` was
    /// cleaned before (`None`: nothing was, all is dirty).
    pub fn dirty_share(&self, first_dirty: Option<Offset>) -> Result<DirtyShare> {
        let mut share = DirtyShare::default();
        for seg in &self.segments {
            let len = seg.bytes.len() as u64;
            if first_dirty.is_some_and(|d| seg.next_offset <= d) {
                share.clean_bytes += len;
                continue;
            }
            if share.first_dirty_timestamp.is_none() {
                share.first_dirty_timestamp = batches(&seg.bytes)?
                    .first()
                    .map(RecordBatchView::max_timestamp);
            }
            share.dirty_bytes += len;
        }
        Ok(share)
    }

    /// Pass 1 over the candidates from `first_dirty` on: maps their keys
    /// (as far as `map` holds them). Returns the offset below which
    /// segments may be cleaned against the map, or `None` when nothing was
    /// mapped or `throttle` was stopped.
    pub fn map_keys(
        &self,
        map: &mut OffsetMap,
        rules: &CleaningRules,
        first_dirty: Option<Offset>,
        throttle: &mut Throttle,
    ) -> Result<Option<Offset>> {
        map.clear();
        let mut views = Vec::new();
        for seg in &self.segments {
            if first_dirty.is_some_and(|d| seg.next_offset <= d) {
                continue;
            }
            views.extend(batches(&seg.bytes)?);
        }
        let mut stopped = false;
        let mapped = views.iter().copied().take_while(|v| {
            stopped = !throttle.account(v.size() as u64);
            !stopped
        });
        let end = map_batches(mapped, map, rules.records_bytes_max)
            .map_err(|e| self.invalid(e))?
            .map(Offset);
        Ok(if stopped { None } else { end })
    }

    /// The end (next offset) of the last candidate segment ending at or
    /// below `mapped_end`: where the dirty section starts after a pass.
    pub fn end_of_segments_below(&self, mapped_end: Offset) -> Option<Offset> {
        self.segments
            .iter()
            .take_while(|s| s.next_offset <= mapped_end)
            .last()
            .map(|s| s.next_offset)
    }

    /// Pass 2 over the segments ending at or below `mapped_end`, oldest
    /// first: yields one cleaned segment per group that changes (see
    /// "Groups" in the module doc), each built in its `<base>.swap/` and
    /// fdatasynced. No lock is needed. Ends early when `throttle` stops.
    pub fn builds<'a>(
        &'a self,
        mapped_end: Offset,
        map: &'a OffsetMap,
        rules: &'a CleaningRules,
        throttle: &'a mut Throttle,
    ) -> Builds<'a> {
        let below = self
            .segments
            .iter()
            .take_while(|s| s.next_offset <= mapped_end)
            .count();
        Builds {
            input: self,
            pending: self.segments.get(..below).unwrap_or_default(),
            map,
            rules,
            throttle,
            carried: None,
        }
    }

    /// Writes `group`'s kept batches (`first` is its first segment) to a
    /// new segment in its swap directory.
    fn write_group(
        &self,
        first: &HeldSegment,
        group: &[(&HeldSegment, Kept)],
    ) -> Result<CleanedSegment> {
        let base = first.base;
        let swap_dir = self.dir.join(format!("{:020}{SWAP_SUFFIX}", base.0));
        let _ = std::fs::remove_dir_all(&swap_dir);
        std::fs::create_dir(&swap_dir).map_err(|e| Error::io("mkdir", &swap_dir, e))?;
        let written = self.write_segment(&swap_dir, base, first.created_ms, group);
        let new = match written {
            Ok(new) => new,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&swap_dir);
                return Err(e);
            }
        };
        let replaces = group
            .iter()
            .map(|(held, _)| Replaced {
                base: held.base,
                size: held.bytes.len() as u64,
                next_offset: held.next_offset,
            })
            .collect();
        Ok(CleanedSegment {
            segment: new,
            swap_dir,
            replaces,
            generation: self.generation,
        })
    }

    fn write_segment(
        &self,
        swap_dir: &std::path::Path,
        base: Offset,
        created_ms: i64,
        group: &[(&HeldSegment, Kept)],
    ) -> Result<Segment> {
        let mut new = Segment::create(swap_dir, base, &self.config, created_ms)?;
        let mut pos = 0u64;
        for batch in group.iter().flat_map(|(_, kept)| &kept.batches) {
            let view = RecordBatchView::parse(batch, limits::MAX_STORED_BATCH_BYTES)
                .map_err(|e| self.invalid(e))?;
            new.files_mut()?.log.append(batch)?;
            new.note_batch(pos, BatchMeta::of(&view), &self.config)?;
            pos += batch.len() as u64;
        }
        new.seal()?;
        new.files_mut()?.log.shared().sync_data()?;
        new.sync_indexes()?;
        Ok(new)
    }

    /// The batches a segment keeps. Batches kept whole are shared with
    /// the mapping (no copy); rewritten ones are new buffers.
    fn cleaned_batches(&self, old: &Bytes, map: &OffsetMap, rules: &CleaningRules) -> Result<Kept> {
        let mut out: Vec<Bytes> = Vec::new();
        let mut changed = false;
        // A run of dropped batches: (first base, last offset, leader epoch
        // of the first, max timestamp).
        let mut gap: Option<(i64, i64, i32, i64)> = None;
        let mut pos = 0usize;
        for view in batches(old)? {
            let at = pos;
            pos += view.size();
            let is_last =
                self.producer_last.get(&view.producer_id()) == Some(&Offset(view.base_offset()));
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
                Filtered::Keep => old.slice(at..pos),
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
        Ok(Kept {
            bytes: out.iter().map(|b| b.len() as u64).sum(),
            batches: out,
            changed,
        })
    }

    fn invalid(&self, source: sluice_protocol::DecodeError) -> Error {
        Error::Corrupt {
            path: self.dir.clone(),
            position: 0,
            reason: format!("cleaning: {source}"),
        }
    }
}

/// What one segment keeps after cleaning.
#[derive(Debug)]
struct Kept {
    batches: Vec<Bytes>,
    bytes: u64,
    /// Some batch was dropped or rewritten.
    changed: bool,
}

/// The cleaned segments of one pass, one group at a time
/// ([`CleaningInput::builds`]). A group's kept batches are held until it is
/// written: at most `segment.bytes` of them, plus the segment that did
/// not fit, carried into the next group.
pub struct Builds<'a> {
    input: &'a CleaningInput,
    /// The segments not yet taken into a group, oldest first.
    pending: &'a [HeldSegment],
    map: &'a OffsetMap,
    rules: &'a CleaningRules,
    throttle: &'a mut Throttle,
    /// A segment already filtered that did not fit the previous group.
    carried: Option<(&'a HeldSegment, Kept)>,
}

impl<'a> Builds<'a> {
    /// Filters the next pending segment, charging its bytes to the
    /// throttle; `None` when none is left or the throttle stopped.
    fn next_filtered(&mut self) -> Option<Result<(&'a HeldSegment, Kept)>> {
        if let Some(carried) = self.carried.take() {
            return Some(Ok(carried));
        }
        let (held, rest) = self.pending.split_first()?;
        self.pending = rest;
        if !self.throttle.account(held.bytes.len() as u64) {
            self.pending = &[];
            return None;
        }
        let kept = self
            .input
            .cleaned_batches(&held.bytes, self.map, self.rules);
        Some(kept.map(|kept| (held, kept)))
    }

    /// Whether `next` may join `group` (see "Groups" in the module doc).
    fn fits(&self, group: &[(&HeldSegment, Kept)], next: &(&HeldSegment, Kept)) -> bool {
        let Some((first, _)) = group.first() else {
            return true;
        };
        let bytes: u64 = group.iter().map(|(_, k)| k.bytes).sum::<u64>() + next.1.bytes;
        let span = next.0.next_offset.0.saturating_sub(first.base.0);
        bytes <= self.input.config.segment_bytes && span <= i64::from(i32::MAX)
    }
}

impl Iterator for Builds<'_> {
    type Item = Result<CleanedSegment>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut group: Vec<(&HeldSegment, Kept)> = Vec::new();
            while let Some(filtered) = self.next_filtered() {
                let next = match filtered {
                    Ok(next) => next,
                    Err(e) => return Some(Err(e)),
                };
                if !self.fits(&group, &next) {
                    self.carried = Some(next);
                    break;
                }
                group.push(next);
            }
            let &(first, _) = group.first()?;
            let changed = group.len() > 1 || group.iter().any(|(_, k)| k.changed);
            if !changed {
                continue;
            }
            let built = match self.input.write_group(first, &group) {
                Ok(built) => built,
                Err(e) => return Some(Err(e)),
            };
            // What was written is charged too; a stop throws it away.
            if !self.throttle.account(built.segment.size()) {
                let _ = std::fs::remove_dir_all(&built.swap_dir);
                self.pending = &[];
                self.carried = None;
                return None;
            }
            return Some(Ok(built));
        }
    }
}

/// The batches of a sealed segment's bytes.
pub(crate) fn batches(bytes: &[u8]) -> Result<Vec<RecordBatchView<'_>>> {
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
