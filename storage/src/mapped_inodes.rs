//! Which files this process has mapped right now, by inode.
//!
//! The reclaimer (`reclaim.rs`) shrinks a removed segment's file in steps
//! before unlinking it, or reuses it as a new segment's
//! (`spare_segment.rs`). Shrinking a file that is still mapped would fault
//! (SIGBUS) a reader touching a cut page, and writing over one would change
//! the bytes under a reader's view. So every
//! [`crate::mmap::MappedFile`] holds a [`MappingRegistration`] of its
//! inode for as long as it lives, and the reclaimer shrinks only a file
//! whose inode has none ([`is_mapped`]).
//!
//! # Invariants
//! - A `MappedFile` registers its inode before it is shared and
//!   unregisters when it is dropped, which happens once the last `Arc` of
//!   it is gone: after that nothing reads its mapping or its descriptor.
//! - A file out of every log (renamed `*.deleted`, or in a `*.deleted`
//!   partition directory) gains no new mapping: mappings are only made by
//!   opening a log's own paths. So "not mapped" stays true once seen.
//! - The table holds one entry per inode mapped now (a count of its
//!   mappings: a growing file is mapped once per reservation a reader
//!   still holds): bounded by the live mappings.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// A file's identity for as long as it exists: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct InodeKey {
    dev: u64,
    ino: u64,
}

impl InodeKey {
    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Live mappings per inode.
static MAPPED: Mutex<BTreeMap<InodeKey, usize>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<InodeKey, usize>> {
    // Nothing panics while holding the lock; a poisoned table is still whole.
    MAPPED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One mapping of an inode; unregistered when dropped. Cloning registers
/// another mapping of the same inode (a file that grew and was mapped
/// again).
#[derive(Debug)]
pub(crate) struct MappingRegistration {
    key: InodeKey,
}

impl MappingRegistration {
    /// Registers a mapping of `file` (at `path`, for the error message).
    pub(crate) fn of(file: &File, path: &Path) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        Ok(Self::register(InodeKey::of(&meta)))
    }

    fn register(key: InodeKey) -> Self {
        *table().entry(key).or_insert(0) += 1;
        Self { key }
    }
}

impl Clone for MappingRegistration {
    fn clone(&self) -> Self {
        Self::register(self.key)
    }
}

impl Drop for MappingRegistration {
    fn drop(&mut self) {
        let mut table = table();
        if let Some(count) = table.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.remove(&self.key);
            }
        }
    }
}

/// Whether any mapping of the file `meta` describes is alive.
pub(crate) fn is_mapped(meta: &Metadata) -> bool {
    table().contains_key(&InodeKey::of(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_mapping_of_an_inode_until_the_last_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let other = File::create(dir.path().join("g")).unwrap();
        let meta = || file.metadata().unwrap();
        assert!(!is_mapped(&meta()));
        let first = MappingRegistration::of(&file, &path).unwrap();
        let second = first.clone();
        assert!(is_mapped(&meta()));
        assert!(!is_mapped(&other.metadata().unwrap()));
        drop(first);
        assert!(is_mapped(&meta()), "one mapping is still alive");
        drop(second);
        assert!(!is_mapped(&meta()));
    }
}
