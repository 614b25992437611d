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
//! entries when the segment rolls or the log closes.
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

use std::path::Path;

use crate::error::Result;
use crate::mmap::{MapWriter, MappedFile};
use crate::offset::{FilePosition, RelativeOffset};

/// Size of one `.index` entry.
pub(crate) const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
const ENTRY: u64 = OFFSET_INDEX_ENTRY_BYTES as u64;

/// One `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative: RelativeOffset,
    pub(crate) position: FilePosition,
}

/// The `.index` of one segment.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    w: MapWriter,
    entries: u64,
}

fn decode(b: &[u8]) -> Option<OffsetEntry> {
    let rel = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let pos = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
    Some(OffsetEntry {
        relative: RelativeOffset(rel),
        position: FilePosition(pos),
    })
}

impl OffsetIndex {
    /// A new, empty index with room for `capacity_bytes` (rounded down to
    /// whole entries).
    pub(crate) fn create(path: &Path, capacity_bytes: u64) -> Result<Self> {
        let w = MappedFile::create(path, capacity_bytes - capacity_bytes % ENTRY)?;
        Ok(Self { w, entries: 0 })
    }

    /// Loads an existing index; the bool is false when the file fails the
    /// sanity check and must be rebuilt (it is kept open for that).
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

    /// Drops every entry and reserves `capacity_bytes` again.
    pub(crate) fn reset(&mut self, capacity_bytes: u64) -> Result<()> {
        self.entries = 0;
        self.w
            .truncate_exclusive(0, capacity_bytes - capacity_bytes % ENTRY)
    }

    /// Makes room for `capacity_bytes` after the current entries (the
    /// segment becomes active again after a restart).
    pub(crate) fn reserve_capacity(&mut self, capacity_bytes: u64) -> Result<()> {
        let len = self.entries * ENTRY;
        let cap = (capacity_bytes - capacity_bytes % ENTRY).max(len);
        self.w.truncate_exclusive(len, cap)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.w.remaining() < ENTRY
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.entries
    }

    pub(crate) fn entry(&self, i: u64) -> Option<OffsetEntry> {
        if i >= self.entries {
            return None;
        }
        decode(self.w.shared().slice(i * ENTRY, ENTRY)?)
    }

    pub(crate) fn last(&self) -> Option<OffsetEntry> {
        self.entries.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends an entry if it strictly follows the last one; returns
    /// whether it did. A full index is left alone (the segment rolls first).
    pub(crate) fn append(
        &mut self,
        relative: RelativeOffset,
        position: FilePosition,
    ) -> Result<bool> {
        let follows = match self.last() {
            Some(last) => relative > last.relative && position > last.position,
            None => position.0 > 0,
        };
        if !follows || self.is_full() {
            return Ok(false);
        }
        let mut b = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        b[..4].copy_from_slice(&relative.0.to_be_bytes());
        b[4..].copy_from_slice(&position.0.to_be_bytes());
        if !self.w.append_hint(&b)? {
            return Ok(false);
        }
        self.entries += 1;
        Ok(true)
    }

    /// The last entry whose relative offset is `<= target`: where a scan
    /// for `target` may start. `None` means "from position 0".
    pub(crate) fn lookup(&self, target: RelativeOffset) -> Option<OffsetEntry> {
        // Binary search for the first entry above `target`.
        let (mut lo, mut hi) = (0u64, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if e.relative <= target => lo = mid + 1,
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

/// Counts the entries before the first all-zero one and checks them; the
/// bool is false when the file must be rebuilt.
fn valid_entries(w: &MapWriter) -> (u64, bool) {
    let len = w.published();
    let Some(bytes) = w.shared().slice(0, len) else {
        return (0, false);
    };
    if !len.is_multiple_of(ENTRY) {
        return (0, false);
    }
    let mut count = 0u64;
    let mut last: Option<OffsetEntry> = None;
    let mut chunks = bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES);
    for chunk in chunks.by_ref() {
        let Some(e) = decode(chunk) else {
            return (0, false);
        };
        if e.position.0 == 0 && e.relative.0 == 0 {
            let rest_zero = chunks.all(|c| c.iter().all(|&b| b == 0));
            return (count, rest_zero);
        }
        let increasing = match last {
            Some(l) => e.relative > l.relative && e.position > l.position,
            None => e.position.0 > 0,
        };
        if !increasing {
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

    fn index_with(entries: &[(u32, u32)]) -> (tempfile::TempDir, OffsetIndex) {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::create(&dir.path().join("0.index"), 1024).unwrap();
        for &(r, p) in entries {
            assert!(idx.append(RelativeOffset(r), FilePosition(p)).unwrap());
        }
        (dir, idx)
    }

    #[test]
    fn lookup_at_boundaries() {
        let (_d, idx) = index_with(&[(10, 100), (20, 200), (30, 300)]);
        let at = |t| {
            idx.lookup(RelativeOffset(t))
                .map(|e| (e.relative.0, e.position.0))
        };
        assert_eq!(at(0), None);
        assert_eq!(at(9), None);
        assert_eq!(at(10), Some((10, 100)));
        assert_eq!(at(19), Some((10, 100)));
        assert_eq!(at(20), Some((20, 200)));
        assert_eq!(at(30), Some((30, 300)));
        assert_eq!(at(u32::MAX), Some((30, 300)));
        let (_d, empty) = index_with(&[]);
        assert_eq!(empty.lookup(RelativeOffset(5)), None);
    }

    #[test]
    fn refuses_non_increasing_entries_and_stops_when_full() {
        let (_d, mut idx) = index_with(&[(10, 100)]);
        assert!(!idx.append(RelativeOffset(10), FilePosition(200)).unwrap());
        assert!(!idx.append(RelativeOffset(11), FilePosition(100)).unwrap());
        assert_eq!(idx.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let mut small = OffsetIndex::create(&dir.path().join("s.index"), 20).unwrap();
        assert!(small.append(RelativeOffset(1), FilePosition(1)).unwrap());
        assert!(small.append(RelativeOffset(2), FilePosition(2)).unwrap());
        assert!(small.is_full());
        assert!(!small.append(RelativeOffset(3), FilePosition(3)).unwrap());
    }

    #[test]
    fn reopen_keeps_entries_of_untrimmed_and_trimmed_files() {
        let (dir, mut idx) = index_with(&[(1, 10), (2, 20)]);
        let path = dir.path().join("0.index");
        drop(idx);
        let (reopened, sane) = OffsetIndex::open(&path).unwrap();
        assert!(sane);
        assert_eq!(reopened.len(), 2);
        idx = reopened;
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        let (idx, sane) = OffsetIndex::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.last().unwrap().position, FilePosition(20));
    }

    #[test]
    fn garbage_files_fail_the_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.index");
        std::fs::write(&path, [0u8, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 10]).unwrap();
        assert!(!OffsetIndex::open(&path).unwrap().1, "decreasing entries");
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        assert!(!OffsetIndex::open(&path).unwrap().1, "partial entry");
        let mut b = vec![0u8; 32];
        b[20] = 7;
        std::fs::write(&path, &b).unwrap();
        assert!(!OffsetIndex::open(&path).unwrap().1, "bytes after the end");
        std::fs::write(&path, vec![0u8; 32]).unwrap();
        let (idx, sane) = OffsetIndex::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.len(), 0);
    }
}
