//! The sparse `.index` file: relative offset → byte position in the `.log`.
//!
//! ```text
//! entry (8 bytes, big-endian), back to back from byte 0:
//!   0  4  relative offset (offset - segment base offset), u32
//!   4  4  position of the batch with that base offset in the .log, u32
//! ```
//!
//! One entry is added before a batch once `index.interval.bytes` of batches
//! have been written since the last entry, pointing at that batch. The file
//! is preallocated to `segment.index.bytes` (zeros) and trimmed to its
//! entries when the segment rolls or the log closes. The file handling
//! (load, sanity check, append, lookup, trim) is [`SparseIndex`]'s; this
//! module is the entry format and its order.
//!
//! # Invariants
//! - Entries strictly increase in both fields, and every position is > 0
//!   (no entry is written for the first batch), so an all-zero entry marks
//!   the end of a preallocated file.
//! - An index is a hint, never trusted: on load, a file whose entries do
//!   not strictly increase, or that holds non-zero bytes after its first
//!   zero entry, is rebuilt from the `.log` (the caller also checks the last
//!   entry against the `.log`).
//!
//! # References
//! Kafka's `OffsetIndex`.

use crate::error::Result;
use crate::offset::{FilePosition, RelativeOffset};
use crate::sparse_index::{IndexEntry, SparseIndex};

/// Size of one `.index` entry.
pub(crate) const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

/// One `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative: RelativeOffset,
    pub(crate) position: FilePosition,
}

/// The `.index` of one segment; [`SparseIndex::lookup`] takes a
/// [`RelativeOffset`] and returns the last entry at or below it, where a
/// scan for that offset may start (`None`: from position 0).
pub(crate) type OffsetIndex = SparseIndex<OffsetEntry>;

impl OffsetIndex {
    /// Appends an entry if it strictly follows the last one; returns
    /// whether it did. A full index is left alone (the segment rolls first).
    pub(crate) fn append(
        &mut self,
        relative: RelativeOffset,
        position: FilePosition,
    ) -> Result<bool> {
        self.append_entry(OffsetEntry { relative, position })
    }
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = OFFSET_INDEX_ENTRY_BYTES;
    type Encoded = [u8; OFFSET_INDEX_ENTRY_BYTES];
    type Key = RelativeOffset;

    fn encode(&self) -> Self::Encoded {
        let mut b = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        b[..4].copy_from_slice(&self.relative.0.to_be_bytes());
        b[4..].copy_from_slice(&self.position.0.to_be_bytes());
        b
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (rel, pos) = bytes.split_first_chunk::<4>()?;
        Some(OffsetEntry {
            relative: RelativeOffset(u32::from_be_bytes(*rel)),
            position: FilePosition(u32::from_be_bytes(pos.try_into().ok()?)),
        })
    }

    fn is_end_marker(&self) -> bool {
        self.relative.0 == 0 && self.position.0 == 0
    }

    /// Stricter than "not the end marker": the first batch (position 0)
    /// never gets an entry.
    fn may_start(&self) -> bool {
        self.position.0 > 0
    }

    fn strictly_follows(&self, prev: &Self) -> bool {
        self.relative > prev.relative && self.position > prev.position
    }

    fn key(&self) -> RelativeOffset {
        self.relative
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(relative: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative: RelativeOffset(relative),
            position: FilePosition(position),
        }
    }

    #[test]
    fn entry_layout_is_relative_then_position_big_endian() {
        let entry = e(0x0102_0304, 0x0a0b_0c0d);
        assert_eq!(entry.encode(), [1, 2, 3, 4, 0xa, 0xb, 0xc, 0xd]);
        assert_eq!(OffsetEntry::decode(&entry.encode()), Some(entry));
        assert_eq!(OffsetEntry::decode(&[1, 2, 3, 4, 5, 6, 7]), None);
        assert_eq!(OffsetEntry::decode(&[0; 9]), None);
        assert!(e(0, 0).is_end_marker());
        assert!(!e(0, 1).is_end_marker() && !e(1, 0).is_end_marker());
    }

    #[test]
    fn entries_increase_in_both_fields_and_never_point_at_position_0() {
        assert!(!e(10, 200).strictly_follows(&e(10, 100)), "same offset");
        assert!(!e(11, 100).strictly_follows(&e(10, 100)), "same position");
        assert!(!e(9, 200).strictly_follows(&e(10, 100)), "lower offset");
        assert!(e(11, 101).strictly_follows(&e(10, 100)));
        assert!(!e(5, 0).may_start(), "first batch gets no entry");
        assert!(e(0, 1).may_start());
    }

    #[test]
    fn appends_and_looks_up_by_relative_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(&path, 1024).unwrap();
        assert!(idx.append(RelativeOffset(10), FilePosition(100)).unwrap());
        assert!(idx.append(RelativeOffset(20), FilePosition(200)).unwrap());
        assert!(!idx.append(RelativeOffset(20), FilePosition(300)).unwrap());
        assert_eq!(idx.lookup(RelativeOffset(19)), Some(e(10, 100)));
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [0, 0, 0, 10, 0, 0, 0, 100, 0, 0, 0, 20, 0, 0, 0, 200]
        );
        // Offsets go backwards while positions grow: rebuilt.
        std::fs::write(&path, [0u8, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 10]).unwrap();
        assert!(!OffsetIndex::open(&path).unwrap().1);
    }
}
