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
//!                 build            pass 2 for one segment → <base>.swap/
//! under the lock  swap_in_cleaned  only if the segment is still the one read
//! ```
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
    /// What it replaces: base, `.log` size, next offset, generation.
    pub(crate) replaces: (Offset, u64, Offset, u64),
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl CleanedSegment {
    /// The base offset of the segment it replaces.
    pub fn base(&self) -> Offset {
        self.replaces.0
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

    /// The segments a pass over `mapped_end` may clean: those ending at or
    /// below it, oldest first (their bases).
    pub fn cleanable_below(&self, mapped_end: Offset) -> Vec<Offset> {
        self.segments
            .iter()
            .take_while(|s| s.next_offset <= mapped_end)
            .map(|s| s.base)
            .collect()
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

    /// Pass 2 for the segment at `base`: builds its cleaned copy in
    /// `<base>.swap/`, fdatasynced, or `None` when it keeps everything (or
    /// `throttle` was stopped). No lock is needed.
    pub fn build(
        &self,
        base: Offset,
        map: &OffsetMap,
        rules: &CleaningRules,
        throttle: &mut Throttle,
    ) -> Result<Option<CleanedSegment>> {
        let Some(old) = self.segments.iter().find(|s| s.base == base) else {
            return Ok(None);
        };
        if !throttle.account(old.bytes.len() as u64) {
            return Ok(None);
        }
        let Some(kept) = self.cleaned_batches(&old.bytes, map, rules)? else {
            return Ok(None);
        };
        let swap_dir = self.dir.join(format!("{:020}{SWAP_SUFFIX}", base.0));
        let _ = std::fs::remove_dir_all(&swap_dir);
        std::fs::create_dir(&swap_dir).map_err(|e| Error::io("mkdir", &swap_dir, e))?;
        let mut new = Segment::create(&swap_dir, base, &self.config, old.created_ms)?;
        let mut pos = 0u64;
        for batch in &kept {
            let view = RecordBatchView::parse(batch, limits::MAX_STORED_BATCH_BYTES)
                .map_err(|e| self.invalid(e))?;
            new.files_mut()?.log.append(batch)?;
            new.note_batch(pos, BatchMeta::of(&view), &self.config)?;
            pos += batch.len() as u64;
            if !throttle.account(batch.len() as u64) {
                let _ = std::fs::remove_dir_all(&swap_dir);
                return Ok(None);
            }
        }
        new.seal()?;
        new.files_mut()?.log.shared().sync_data()?;
        new.sync_indexes()?;
        Ok(Some(CleanedSegment {
            segment: new,
            swap_dir,
            replaces: (
                base,
                old.bytes.len() as u64,
                old.next_offset,
                self.generation,
            ),
            bytes_before: old.bytes.len() as u64,
            bytes_after: pos,
        }))
    }

    /// The batches a segment keeps, or `None` when it keeps everything.
    /// Batches kept whole are shared with the mapping (no copy); rewritten
    /// ones are new buffers.
    fn cleaned_batches(
        &self,
        old: &Bytes,
        map: &OffsetMap,
        rules: &CleaningRules,
    ) -> Result<Option<Vec<Bytes>>> {
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
        Ok(changed.then_some(out))
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
