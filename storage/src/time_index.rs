//! The sparse `.timeindex` file: max timestamp so far → relative offset.
//!
//! ```text
//! entry (12 bytes, big-endian), back to back from byte 0:
//!   0  8  largest batch maxTimestamp in the segment up to this entry, i64
//!   8  4  relative offset of the base offset of the batch holding it, u32
//! ```
//!
//! An entry is added whenever an `.index` entry is, if the segment's max
//! timestamp grew since the last entry, and once more when the segment
//! rolls or the log closes, so the last entry holds the segment's max.
//!
//! # Invariants
//! - Entries strictly increase in both fields. Every batch before an
//!   entry's offset has a max timestamp below the entry's timestamp, so a
//!   search for the first batch with max timestamp `>= t` may start at the
//!   last entry whose timestamp is `<= t`.
//! - One entry of room is kept back so the roll/close entry always fits.
//! - As with `.index`, an all-zero entry ends a preallocated file, and a
//!   file that fails the sanity check is rebuilt, never trusted.
//!
//! # References
//! Kafka's `TimeIndex`.

use std::path::Path;

use crate::error::Result;
use crate::mmap::{MapWriter, MappedFile};
use crate::offset::RelativeOffset;

/// Size of one `.timeindex` entry.
pub(crate) const TIME_INDEX_ENTRY_BYTES: usize = 12;
const ENTRY: u64 = TIME_INDEX_ENTRY_BYTES as u64;

/// One `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative: RelativeOffset,
}

/// The `.timeindex` of one segment.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    w: MapWriter,
    entries: u64,
}

fn decode(b: &[u8]) -> Option<TimeEntry> {
    let ts = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let rel = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    Some(TimeEntry {
        timestamp: ts,
        relative: RelativeOffset(rel),
    })
}

impl TimeIndex {
    pub(crate) fn create(path: &Path, capacity_bytes: u64) -> Result<Self> {
        let w = MappedFile::create(path, capacity_bytes - capacity_bytes % ENTRY)?;
        Ok(Self { w, entries: 0 })
    }

    /// Loads an existing index; the bool is false when it must be rebuilt.
    pub(crate) fn open(path: &Path) -> Result<(Self, bool)> {
        let w = MappedFile::open(path)?;
        let (entries, sane) = valid_entries(&w);
        let mut index = Self { w, entries: 0 };
        if sane {
            index.entries = entries;
            let len = entries * ENTRY;
            index.w.truncate_exclusive(len, len)?;
        }
        Ok((index, sane))
    }

    pub(crate) fn reset(&mut self, capacity_bytes: u64) -> Result<()> {
        self.entries = 0;
        self.w
            .truncate_exclusive(0, capacity_bytes - capacity_bytes % ENTRY)
    }

    pub(crate) fn reserve_capacity(&mut self, capacity_bytes: u64) -> Result<()> {
        let len = self.entries * ENTRY;
        let cap = (capacity_bytes - capacity_bytes % ENTRY).max(len);
        self.w.truncate_exclusive(len, cap)
    }

    /// Full for sparse entries: the last slot is kept for the roll entry.
    pub(crate) fn is_full(&self) -> bool {
        self.w.remaining() < 2 * ENTRY
    }

    pub(crate) fn entry(&self, i: u64) -> Option<TimeEntry> {
        if i >= self.entries {
            return None;
        }
        decode(self.w.shared().slice(i * ENTRY, ENTRY)?)
    }

    pub(crate) fn last(&self) -> Option<TimeEntry> {
        self.entries.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends an entry if it strictly follows the last one (in timestamp
    /// and offset) and there is room; returns whether it did.
    pub(crate) fn append(&mut self, timestamp: i64, relative: RelativeOffset) -> Result<bool> {
        let follows = match self.last() {
            Some(last) => timestamp > last.timestamp && relative > last.relative,
            None => timestamp != 0 || relative.0 != 0,
        };
        if !follows || self.w.remaining() < ENTRY {
            return Ok(false);
        }
        let mut b = [0u8; TIME_INDEX_ENTRY_BYTES];
        b[..8].copy_from_slice(&timestamp.to_be_bytes());
        b[8..].copy_from_slice(&relative.0.to_be_bytes());
        if !self.w.append_hint(&b)? {
            return Ok(false);
        }
        self.entries += 1;
        Ok(true)
    }

    /// The last entry with timestamp `<= target`: a search for the first
    /// batch with max timestamp `>= target` may start at its offset.
    pub(crate) fn lookup(&self, target: i64) -> Option<TimeEntry> {
        let (mut lo, mut hi) = (0u64, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if e.timestamp <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1).and_then(|i| self.entry(i))
    }

    pub(crate) fn trim(&mut self) -> Result<()> {
        self.w.trim()
    }

    pub(crate) fn writer(&self) -> &MapWriter {
        &self.w
    }
}

fn valid_entries(w: &MapWriter) -> (u64, bool) {
    let len = w.published();
    let Some(bytes) = w.shared().slice(0, len) else {
        return (0, false);
    };
    if !len.is_multiple_of(ENTRY) {
        return (0, false);
    }
    let mut count = 0u64;
    let mut last: Option<TimeEntry> = None;
    let mut chunks = bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES);
    for chunk in chunks.by_ref() {
        let Some(e) = decode(chunk) else {
            return (0, false);
        };
        if e.timestamp == 0 && e.relative.0 == 0 {
            let rest_zero = chunks.all(|c| c.iter().all(|&b| b == 0));
            return (count, rest_zero);
        }
        if let Some(l) = last
            && (e.timestamp <= l.timestamp || e.relative <= l.relative)
        {
            return (0, false);
        }
        last = Some(e);
        count += 1;
    }
    (count, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_at_boundaries_and_increasing_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::create(&dir.path().join("0.timeindex"), 120).unwrap();
        assert!(idx.append(100, RelativeOffset(0)).unwrap());
        assert!(idx.append(200, RelativeOffset(5)).unwrap());
        assert!(idx.append(300, RelativeOffset(9)).unwrap());
        assert!(
            !idx.append(300, RelativeOffset(12)).unwrap(),
            "same timestamp"
        );
        assert!(!idx.append(400, RelativeOffset(9)).unwrap(), "same offset");
        let at = |t| idx.lookup(t).map(|e| (e.timestamp, e.relative.0));
        assert_eq!(at(99), None);
        assert_eq!(at(100), Some((100, 0)));
        assert_eq!(at(250), Some((200, 5)));
        assert_eq!(at(300), Some((300, 9)));
        assert_eq!(at(i64::MAX), Some((300, 9)));
    }

    #[test]
    fn keeps_one_slot_for_the_roll_entry_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let mut idx = TimeIndex::create(&path, 36).unwrap();
        assert!(idx.append(1, RelativeOffset(1)).unwrap());
        assert!(idx.append(2, RelativeOffset(2)).unwrap());
        assert!(idx.is_full());
        assert!(idx.append(3, RelativeOffset(3)).unwrap(), "roll entry fits");
        drop(idx);
        let (idx, sane) = TimeIndex::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.last().unwrap().timestamp, 3);
        let mut bad = vec![0u8; 24];
        bad[7] = 9;
        bad[19] = 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(!TimeIndex::open(&path).unwrap().1);
    }
}
