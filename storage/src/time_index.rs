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
//! The file handling (load, sanity check, append, lookup, trim) is
//! [`SparseIndex`]'s; this module is the entry format and its order.
//!
//! # Invariants
//! - Entries strictly increase in both fields. Every batch before an
//!   entry's offset has a max timestamp below the entry's timestamp, so a
//!   search for the first batch with max timestamp `>= t` may start at the
//!   last entry whose timestamp is `<= t`.
//! - One entry of room is kept back so the roll/close entry always fits
//!   ([`IndexEntry::RESERVED_ENTRIES`]).
//! - As with `.index`, an all-zero entry ends a preallocated file, and a
//!   file that fails the sanity check is rebuilt, never trusted.
//!
//! # References
//! Kafka's `TimeIndex`.

use crate::error::Result;
use crate::offset::RelativeOffset;
use crate::sparse_index::{IndexEntry, SparseIndex};

/// Size of one `.timeindex` entry.
pub(crate) const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// One `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative: RelativeOffset,
}

/// The `.timeindex` of one segment; [`SparseIndex::lookup`] takes a
/// timestamp and returns the last entry at or below it: a search for the
/// first batch with max timestamp `>= target` may start at its offset.
pub(crate) type TimeIndex = SparseIndex<TimeEntry>;

impl TimeIndex {
    /// Appends an entry if it strictly follows the last one (in timestamp
    /// and offset) and there is room, the reserved roll slot included;
    /// returns whether it did.
    pub(crate) fn append(&mut self, timestamp: i64, relative: RelativeOffset) -> Result<bool> {
        self.append_entry(TimeEntry {
            timestamp,
            relative,
        })
    }
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = TIME_INDEX_ENTRY_BYTES;
    /// The roll/close entry.
    const RESERVED_ENTRIES: u64 = 1;
    type Encoded = [u8; TIME_INDEX_ENTRY_BYTES];
    type Key = i64;

    fn encode(&self) -> Self::Encoded {
        let mut b = [0u8; TIME_INDEX_ENTRY_BYTES];
        b[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..].copy_from_slice(&self.relative.0.to_be_bytes());
        b
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (ts, rel) = bytes.split_first_chunk::<8>()?;
        Some(TimeEntry {
            timestamp: i64::from_be_bytes(*ts),
            relative: RelativeOffset(u32::from_be_bytes(rel.try_into().ok()?)),
        })
    }

    fn is_end_marker(&self) -> bool {
        self.timestamp == 0 && self.relative.0 == 0
    }

    fn strictly_follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.relative > prev.relative
    }

    fn key(&self) -> i64 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(timestamp: i64, relative: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative: RelativeOffset(relative),
        }
    }

    #[test]
    fn entry_layout_is_timestamp_then_relative_big_endian() {
        let entry = e(0x0102_0304_0506_0708, 0x0a0b_0c0d);
        assert_eq!(entry.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 0xa, 0xb, 0xc, 0xd]);
        assert_eq!(TimeEntry::decode(&entry.encode()), Some(entry));
        assert_eq!(TimeEntry::decode(&e(-1, 3).encode()), Some(e(-1, 3)));
        assert_eq!(TimeEntry::decode(&[0; 11]), None);
        assert_eq!(TimeEntry::decode(&[0; 13]), None);
        assert!(e(0, 0).is_end_marker());
        assert!(!e(0, 0).may_start());
        assert!(e(0, 1).may_start() && e(1, 0).may_start());
    }

    #[test]
    fn appends_increasing_entries_only_and_looks_up_by_timestamp() {
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
        assert_eq!(at(250), Some((200, 5)));
        assert_eq!(at(i64::MAX), Some((300, 9)));
    }

    #[test]
    fn keeps_one_slot_for_the_roll_entry_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let mut idx = TimeIndex::create(&path, 36).unwrap();
        assert!(idx.append(1, RelativeOffset(1)).unwrap());
        assert!(!idx.is_full());
        assert!(idx.append(2, RelativeOffset(2)).unwrap());
        assert!(idx.is_full());
        assert!(idx.append(3, RelativeOffset(3)).unwrap(), "roll entry fits");
        assert!(
            !idx.append(4, RelativeOffset(4)).unwrap(),
            "and nothing after"
        );
        drop(idx);
        let (idx, sane) = TimeIndex::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.last(), Some(e(3, 3)));
        // Timestamps go backwards: rebuilt.
        let mut bad = vec![0u8; 24];
        bad[7] = 9;
        bad[11] = 1;
        bad[19] = 1;
        bad[23] = 2;
        std::fs::write(&path, &bad).unwrap();
        assert!(!TimeIndex::open(&path).unwrap().1);
    }
}
