//! A sparse, memory-mapped index file of fixed-size entries: the part
//! `.index` (`offset_index.rs`) and `.timeindex` (`time_index.rs`) share. Each entry type says how it is laid out
//! and ordered ([`IndexEntry`]); [`SparseIndex`] owns the file: create,
//! load and sanity-check, append, binary-search lookup, reset and trim.
//!
//! ```text
//! file: entries of E::BYTES bytes back to back from byte 0, then zeros
//!   [entry 0][entry 1] ... [entry n-1][0 0 0 ... 0]...
//! ```
//!
//! The file is preallocated (zeros) while its segment is active and
//! trimmed to its entries when the segment rolls or the log closes, so a
//! file on disk may end either exactly after its last entry or in zeros.
//!
//! # Invariants
//! - The first `len` entries are the index: the first one may start an
//!   index ([`IndexEntry::may_start`]), each later one strictly follows the
//!   one before ([`IndexEntry::strictly_follows`]), and none is the all-zero
//!   end marker. Lookups rely on the keys strictly increasing.
//! - An index is a hint, never trusted: on load, a file whose length is not
//!   a whole number of entries, whose entries break the order above, or
//!   that holds non-zero bytes after its first all-zero entry, fails the
//!   sanity check and is rebuilt from the `.log` by the caller.
//! - [`IndexEntry::RESERVED_ENTRIES`] slots at the end are never taken by
//!   sparse entries ([`SparseIndex::is_full`] reports full before them), so
//!   a final entry written on roll or close always fits.
//!
//! # Limits
//! - Capacity is whole entries: requested byte capacities are rounded down.
//!
//! # References
//! Kafka's `AbstractIndex` (the shared half of `OffsetIndex` and
//! `TimeIndex`).

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use crate::error::Result;
use crate::mmap::{Hold, MapWriter, MappedFile};

/// The layout and order of one kind of index entry.
pub(crate) trait IndexEntry: Copy + fmt::Debug {
    /// Size of one entry on disk.
    const BYTES: usize;
    /// Slots at the end of the file kept free for a final entry, which
    /// sparse appends must leave alone (see [`SparseIndex::is_full`]).
    const RESERVED_ENTRIES: u64 = 0;
    /// The encoded entry: exactly [`IndexEntry::BYTES`] bytes.
    type Encoded: AsRef<[u8]>;
    /// What [`SparseIndex::lookup`] searches by.
    type Key: Ord + Copy;

    fn encode(&self) -> Self::Encoded;
    /// `None` when `bytes` is not exactly one entry long.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Whether this is the all-zero entry that ends a preallocated file.
    fn is_end_marker(&self) -> bool;
    /// Whether this entry may be the first of an index.
    fn may_start(&self) -> bool {
        !self.is_end_marker()
    }
    /// Whether this entry may come right after `prev`.
    fn strictly_follows(&self, prev: &Self) -> bool;
    fn key(&self) -> Self::Key;
}

/// One sparse index file of `E` entries.
#[derive(Debug)]
pub(crate) struct SparseIndex<E> {
    w: MapWriter,
    len: u64,
    /// Entries were added or dropped since the file was loaded, created
    /// empty or last synced ([`SparseIndex::sync_if_dirty`]).
    dirty: bool,
    // `fn() -> E`: the index makes `E`s, it does not own any.
    entry_type: PhantomData<fn() -> E>,
}

impl<E: IndexEntry> SparseIndex<E> {
    const ENTRY_BYTES: u64 = E::BYTES as u64;

    /// `capacity_bytes` rounded down to whole entries.
    fn whole_entries(capacity_bytes: u64) -> u64 {
        capacity_bytes - capacity_bytes % Self::ENTRY_BYTES
    }

    /// A new, empty index with room for `capacity_bytes` (rounded down to
    /// whole entries).
    pub(crate) fn create(path: &Path, capacity_bytes: u64) -> Result<Self> {
        let w = MappedFile::create(path, Self::whole_entries(capacity_bytes), Hold::MappingOnly)?;
        Ok(Self {
            w,
            len: 0,
            dirty: false,
            entry_type: PhantomData,
        })
    }

    /// Takes over an existing index file (a removed segment's, renamed:
    /// `spare_segment.rs`) as a new, empty index with room for
    /// `capacity_bytes`: its entries written over with zeros and its first
    /// step reserved ([`MappedFile::reuse_zeroed`]), without a new inode.
    /// Dirty: the zeros are durable only once synced, and until then a
    /// power cut could bring back the old entries
    /// (`Segment::reused_indexes_unsynced`).
    pub(crate) fn reuse(path: &Path, capacity_bytes: u64) -> Result<Self> {
        let w =
            MappedFile::reuse_zeroed(path, Self::whole_entries(capacity_bytes), Hold::MappingOnly)?;
        Ok(Self {
            w,
            len: 0,
            dirty: true,
            entry_type: PhantomData,
        })
    }

    /// Loads an existing index; the bool is false when the file fails the
    /// sanity check and must be rebuilt (it is kept open, empty, for that).
    pub(crate) fn open(path: &Path) -> Result<(Self, bool)> {
        let w = MappedFile::open(path, Hold::MappingOnly)?;
        let (len, sane) = valid_entries::<E>(&w);
        let mut index = Self {
            w,
            len: 0,
            dirty: false,
            entry_type: PhantomData,
        };
        if sane {
            index.len = len;
            let bytes = len * Self::ENTRY_BYTES;
            index.w.truncate_exclusive(bytes, bytes)?;
        }
        Ok((index, sane))
    }

    /// Opens the trimmed index of a sealed segment, trusting it: every
    /// whole entry in the file (recovery sanity-checked it when the log was
    /// opened, and nothing writes a sealed index). What a lazily reopened
    /// segment uses, so a reopen reads no entry.
    pub(crate) fn open_sealed(path: &Path) -> Result<Self> {
        let w = MappedFile::open(path, Hold::MappingOnly)?;
        let len = w.published() / Self::ENTRY_BYTES;
        Ok(Self {
            w,
            len,
            dirty: false,
            entry_type: PhantomData,
        })
    }

    /// Whether entries changed since the file was last synced.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Records that the file holds entries not yet synced (written through
    /// an earlier mapping of it).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Syncs the entries through a shared view (a sealed segment's files
    /// are shared by readers; the caller keeps the dirty flag).
    pub(crate) fn sync_shared(&self) -> Result<()> {
        crate::flush::fail_point(self.w.path())?;
        self.w.shared().sync_data()
    }

    /// Drops every entry and reserves `capacity_bytes` again.
    pub(crate) fn reset(&mut self, capacity_bytes: u64) -> Result<()> {
        self.len = 0;
        self.dirty = true;
        self.w
            .truncate_exclusive(0, Self::whole_entries(capacity_bytes))
    }

    /// Makes room for `capacity_bytes` after the current entries (the
    /// segment becomes active again after a restart).
    pub(crate) fn reserve_capacity(&mut self, capacity_bytes: u64) -> Result<()> {
        let bytes = self.len * Self::ENTRY_BYTES;
        let capacity = Self::whole_entries(capacity_bytes).max(bytes);
        self.w.truncate_exclusive(bytes, capacity)
    }

    /// Full for sparse entries: only the reserved slots (if any) are left.
    pub(crate) fn is_full(&self) -> bool {
        self.w.remaining() < (E::RESERVED_ENTRIES + 1) * Self::ENTRY_BYTES
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn entry(&self, i: u64) -> Option<E> {
        if i >= self.len {
            return None;
        }
        E::decode(
            self.w
                .shared()
                .slice(i * Self::ENTRY_BYTES, Self::ENTRY_BYTES)?,
        )
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.len.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Appends `e` if it strictly follows the last entry and there is room
    /// (reserved slots included); returns whether it did. A full index, or
    /// a full disk, skips the entry: a sparse index missing one only makes
    /// a lookup scan further.
    pub(crate) fn append_entry(&mut self, e: E) -> Result<bool> {
        let follows = match self.last() {
            Some(last) => e.strictly_follows(&last),
            None => e.may_start(),
        };
        if !follows || self.w.remaining() < Self::ENTRY_BYTES {
            return Ok(false);
        }
        let encoded = e.encode();
        debug_assert_eq!(encoded.as_ref().len(), E::BYTES, "{e:?} encoded badly");
        if !self.w.append_hint(encoded.as_ref())? {
            return Ok(false);
        }
        self.len += 1;
        self.dirty = true;
        Ok(true)
    }

    /// Makes the entries durable if they changed since they last were (an
    /// `msync` of the mapping: the file holds no descriptor).
    pub(crate) fn sync_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            crate::flush::fail_point(self.w.path())?;
            self.w.shared().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The last entry whose key is `<= target`; `None` when every key is
    /// above it (or the index is empty).
    pub(crate) fn lookup(&self, target: E::Key) -> Option<E> {
        // Binary search for the first entry above `target`.
        let (mut lo, mut hi) = (0u64, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if e.key() <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// Shrinks the file to its entries: no further appends.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.w.trim()
    }

    /// Records that the file now lives at `path` (after a rename): the
    /// index holds no descriptor, so later calls open it by this path.
    pub(crate) fn renamed_exclusive(&mut self, path: &Path) -> Result<()> {
        self.w.renamed_exclusive(path)
    }
}

/// Counts the entries before the first all-zero one and checks them; the
/// bool is false when the file must be rebuilt.
fn valid_entries<E: IndexEntry>(w: &MapWriter) -> (u64, bool) {
    let bytes_len = w.published();
    let Some(bytes) = w.shared().slice(0, bytes_len) else {
        return (0, false);
    };
    if !bytes_len.is_multiple_of(E::BYTES as u64) {
        return (0, false);
    }
    let mut count = 0u64;
    let mut last: Option<E> = None;
    let mut chunks = bytes.chunks_exact(E::BYTES);
    for chunk in chunks.by_ref() {
        let Some(e) = E::decode(chunk) else {
            return (0, false);
        };
        if e.is_end_marker() {
            let rest_zero = chunks.all(|c| c.iter().all(|&b| b == 0));
            return (count, rest_zero);
        }
        let in_order = match last {
            Some(l) => e.strictly_follows(&l),
            None => e.may_start(),
        };
        if !in_order {
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

    /// The smallest entry there is: a strictly increasing, non-zero `u32`.
    /// Keeps the generic tests free of either real format.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Seq(u32);

    impl IndexEntry for Seq {
        const BYTES: usize = 4;
        type Encoded = [u8; 4];
        type Key = u32;

        fn encode(&self) -> [u8; 4] {
            self.0.to_be_bytes()
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            Some(Seq(u32::from_be_bytes(bytes.try_into().ok()?)))
        }
        fn is_end_marker(&self) -> bool {
            self.0 == 0
        }
        fn strictly_follows(&self, prev: &Self) -> bool {
            self.0 > prev.0
        }
        fn key(&self) -> u32 {
            self.0
        }
    }

    fn index_with(entries: &[u32]) -> (tempfile::TempDir, SparseIndex<Seq>) {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = SparseIndex::create(&dir.path().join("0.index"), 1024).unwrap();
        for &s in entries {
            assert!(idx.append_entry(Seq(s)).unwrap(), "append {s}");
        }
        (dir, idx)
    }

    #[test]
    fn lookup_at_boundaries() {
        let (_d, idx) = index_with(&[10, 20, 30]);
        let at = |t| idx.lookup(t).map(|e| e.0);
        assert_eq!(at(0), None);
        assert_eq!(at(9), None);
        assert_eq!(at(10), Some(10));
        assert_eq!(at(19), Some(10));
        assert_eq!(at(20), Some(20));
        assert_eq!(at(30), Some(30));
        assert_eq!(at(u32::MAX), Some(30));
        let (_d, empty) = index_with(&[]);
        assert_eq!(empty.lookup(5), None);
        assert_eq!(empty.last(), None);
    }

    #[test]
    fn refuses_out_of_order_entries_and_stops_when_full() {
        let (_d, mut idx) = index_with(&[10]);
        assert!(!idx.append_entry(Seq(10)).unwrap(), "equal");
        assert!(!idx.append_entry(Seq(9)).unwrap(), "lower");
        assert_eq!(idx.len(), 1);
        let (_d, mut empty) = index_with(&[]);
        assert!(!empty.append_entry(Seq(0)).unwrap(), "end marker first");
        let dir = tempfile::tempdir().unwrap();
        // 10 bytes hold two whole 4-byte entries.
        let mut small = SparseIndex::create(&dir.path().join("s.index"), 10).unwrap();
        assert!(small.append_entry(Seq(1)).unwrap());
        assert!(!small.is_full());
        assert!(small.append_entry(Seq(2)).unwrap());
        assert!(small.is_full());
        assert!(!small.append_entry(Seq(3)).unwrap());
        assert_eq!(small.len(), 2);
    }

    #[test]
    fn reset_and_reserve_capacity() {
        let (_d, mut idx) = index_with(&[1, 2]);
        idx.trim().unwrap();
        assert!(idx.is_full(), "a trimmed index takes no more entries");
        idx.reserve_capacity(16).unwrap();
        assert_eq!(idx.len(), 2);
        assert!(idx.append_entry(Seq(3)).unwrap());
        assert!(idx.append_entry(Seq(4)).unwrap());
        assert!(idx.is_full());
        idx.reset(8).unwrap();
        assert_eq!((idx.len(), idx.last()), (0, None));
        assert!(idx.append_entry(Seq(1)).unwrap(), "restarts from scratch");
    }

    #[test]
    fn reopen_keeps_entries_of_untrimmed_and_trimmed_files() {
        let (dir, idx) = index_with(&[1, 2]);
        let path = dir.path().join("0.index");
        drop(idx);
        let (mut idx, sane) = SparseIndex::<Seq>::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.len(), 2);
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        let (idx, sane) = SparseIndex::<Seq>::open(&path).unwrap();
        assert!(sane);
        assert_eq!(idx.last(), Some(Seq(2)));
        assert_eq!(idx.entry(0), Some(Seq(1)));
        assert_eq!(idx.entry(2), None);
    }

    #[test]
    fn garbage_files_fail_the_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.index");
        let open = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            SparseIndex::<Seq>::open(&path).unwrap()
        };
        assert!(!open(&[0, 0, 0, 5, 0, 0, 0, 4]).1, "decreasing entries");
        assert!(!open(&[0, 0, 0, 5, 0, 0, 0, 5]).1, "repeated entry");
        assert!(!open(&[1, 2, 3]).1, "partial entry");
        let mut b = vec![0u8; 16];
        b[3] = 1;
        b[10] = 7;
        let (idx, sane) = open(&b);
        assert!(!sane, "bytes after the end");
        assert_eq!(idx.len(), 0, "an insane index is kept open but empty");
        let (idx, sane) = open(&[0u8; 16]);
        assert!(sane);
        assert_eq!(idx.len(), 0);
        let (idx, sane) = open(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert!(sane, "zero padding after the entries");
        assert_eq!(idx.len(), 2);
    }
}
