//! Which records of a log section survive compaction, and the batches
//! that carry them: the pure part of Kafka's `Cleaner` (no files here).
//!
//! ```text
//! pass 1  map_batches    dirty section, in offset order: key → latest offset
//!                        (stops before a batch whose keys might not fit)
//! pass 2  filter_batch   every batch below the mapped end, oldest first:
//!   record kept  ⇔ it has a key
//!                ∧ no later offset of its key is in the map
//!                ∧ ¬(it is a tombstone ∧ its batch lies below the delete horizon)
//!   all kept     → the batch's bytes as they are (no copy)
//!   none kept    → dropped, unless it is its producer's last batch: then an
//!                  empty batch (recordsCount 0) keeps the producer's
//!                  id, epoch and sequence range in the log
//!   some kept    → a new batch: the same header (base offset, last offset
//!                  delta, producer fields, timestamps), the kept records'
//!                  bytes copied as they were, compressed with the batch's
//!                  own codec
//! ```
//!
//! # Invariants
//! - A kept record keeps its offset and timestamp: its bytes hold deltas
//!   from the batch's base offset and base timestamp, which never change.
//!   Offsets of removed records become gaps; batch boundaries stay where
//!   they were, so `lastOffset` of every kept batch is unchanged.
//! - For every key, the record at its latest offset in the mapped section
//!   is kept, unless it is a tombstone below the delete horizon.
//! - Control batches are kept whole (Sluice writes none today; a future
//!   transaction marker must never be cleaned away by this pass).
//!
//! # Limits
//! - The map is bounded (`OffsetMap`); pass 1 stops at the first batch
//!   whose record count could overflow it, so one cleaning covers as much
//!   of the dirty section as the memory allows, and the next continues.
//! - Decompression is bounded by `records_bytes_max` per batch.
//!
//! # Caveats
//! - The delete horizon is an offset the caller gives: tombstones in
//!   batches that end below it go. The broker passes the clean point as it
//!   stood `delete.retention.ms` ago (`replica::clean_history`), so a
//!   tombstone stays that long after the pass that first cleaned it, as
//!   Kafka's KIP-534 horizon stamped into the batch does.
//! - A record without a key cannot be compacted: it is removed, as Kafka's
//!   cleaner does (produce refuses such records on a compacted topic).
//!
//! # References
//! Kafka's `LogCleaner.Cleaner` (`buildOffsetMap`, `cleanInto`,
//! `shouldRetainRecord`) and `MemoryRecords.filterTo`.

use bytes::Bytes;
use sluice_protocol::compression::compress;
use sluice_protocol::record_batch::CompressionType;
use sluice_protocol::records::{BatchRecords, RecordIter};
use sluice_protocol::{DecodeError, RecordBatchView};

use super::offset_map::OffsetMap;

/// What decides a record's fate besides the map.
#[derive(Debug, Clone, Copy)]
pub struct CleaningRules {
    /// Tombstones in batches whose last offset is below this are removed;
    /// `None` keeps every tombstone.
    pub tombstones_removable_below: Option<i64>,
    /// Decompressed bytes one batch may take.
    pub records_bytes_max: usize,
}

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record kept: copy the batch as it is.
    Keep,
    /// Nothing kept and nothing to remember: leave it out.
    Drop,
    /// A new batch holding what was kept (possibly no record at all).
    Rewrite(Bytes),
}

/// Pass 1: puts every key of `batches` (in offset order) into `map`.
/// Returns the offset just past the last batch mapped whole; a batch whose
/// records could overflow the map is not started, so everything below the
/// returned offset can be cleaned against `map`.
pub fn map_batches<'a>(
    batches: impl IntoIterator<Item = RecordBatchView<'a>>,
    map: &mut OffsetMap,
    records_bytes_max: usize,
) -> Result<Option<i64>, DecodeError> {
    let mut mapped_end = None;
    for view in batches {
        if view.is_control() {
            mapped_end = Some(view.last_offset() + 1);
            continue;
        }
        let count = usize::try_from(view.records_count()).unwrap_or(usize::MAX);
        if map.len().saturating_add(count) > map.keys_max() {
            break;
        }
        let records = BatchRecords::new(view, records_bytes_max)?;
        for record in records.iter() {
            let record = record?;
            if let Some(key) = record.key {
                let offset = view.base_offset() + i64::from(record.offset_delta);
                // Room was checked above: at most `count` new keys.
                map.put(key, offset);
            }
        }
        mapped_end = Some(view.last_offset() + 1);
    }
    Ok(mapped_end)
}

/// Pass 2: the fate of one batch below the mapped end. `producer_last`:
/// the batch is the last one in the log of its (idempotent) producer.
pub fn filter_batch(
    view: &RecordBatchView<'_>,
    map: &OffsetMap,
    rules: &CleaningRules,
    producer_last: bool,
) -> Result<Filtered, DecodeError> {
    if view.is_control() {
        return Ok(Filtered::Keep);
    }
    let tombstones_expire = rules
        .tombstones_removable_below
        .is_some_and(|below| view.last_offset() < below);
    let records = BatchRecords::new(*view, rules.records_bytes_max)?;
    let mut kept: Vec<u8> = Vec::new();
    let (mut total, mut kept_count) = (0_i32, 0_i32);
    let mut iter = RecordIter::new(records.bytes());
    while let Some(next) = iter.next_raw() {
        let (record, raw) = next?;
        total += 1;
        let offset = view.base_offset() + i64::from(record.offset_delta);
        let retain = record.key.is_some_and(|key| {
            let latest = map.get(key).is_none_or(|o| offset >= o);
            latest && !(record.value.is_none() && tombstones_expire)
        });
        if retain {
            kept.extend_from_slice(raw);
            kept_count += 1;
        }
    }
    if kept_count == total {
        return Ok(Filtered::Keep);
    }
    if kept_count == 0 && !producer_last {
        return Ok(Filtered::Drop);
    }
    // An empty batch is written uncompressed, as Kafka's `writeEmptyHeader`.
    let codec = match view.compression() {
        Some(codec) if kept_count > 0 => codec,
        _ => CompressionType::None,
    };
    let body = match codec {
        CompressionType::None => Bytes::from(kept),
        codec => compress(codec, &kept, None)?,
    };
    view.with_records(codec, kept_count, &body)
        .map(Filtered::Rewrite)
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
