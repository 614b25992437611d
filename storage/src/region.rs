//! What a read hands out: file regions of whole batches.
//!
//! A [`FileRegion`] names `len` bytes at `position` of one segment's `.log`
//! and holds an `Arc` to the mapped file, so the bytes stay readable (as
//! `Bytes` over the mapping, from [`FileRegion::bytes`]) even after the
//! segment is deleted by retention or replaced by `truncate_to`. A sealed
//! segment reopened on demand is mapped with no descriptor
//! (`file_budget.rs`), so a fetch reading many old segments holds maps,
//! not descriptors. No region hands out a descriptor for `sendfile`: the
//! pages it lent a socket could not be written over again
//! (`spare_segment.rs`).
//!
//! # Invariants
//! - A region covers only published bytes of whole batches, and those bytes
//!   never change while the region exists (see `mmap.rs`).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::mmap::{self, MappedFile};
use crate::offset::Offset;

/// Whole batches at `[position, position + len)` of one `.log` file.
#[derive(Debug, Clone)]
pub struct FileRegion {
    file: Arc<MappedFile>,
    position: u64,
    len: u64,
    /// Records in the region's batches (their headers' counts, summed by
    /// the read that walked them: the `records out` metric).
    records: u64,
}

impl FileRegion {
    pub(crate) fn new(file: Arc<MappedFile>, position: u64, len: u64, records: u64) -> Self {
        Self {
            file,
            position,
            len,
            records,
        }
    }

    /// Byte position of the region in its file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records in the region's batches, as their headers count them.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The path the file was opened at (it may since be renamed or gone).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The region's bytes as a view of the mapping: no copy.
    pub fn bytes(&self) -> Bytes {
        // A region is only built over published bytes, so this cannot miss.
        mmap::bytes(&self.file, self.position, self.len).unwrap_or_default()
    }
}

/// The answer to [`crate::PartitionLog::read`].
#[derive(Debug, Clone, Default)]
pub struct ReadInfo {
    /// Whole batches, in offset order, to send back to back.
    pub regions: Vec<FileRegion>,
    /// Base offset of the first batch returned (may be below the requested
    /// offset: the batch containing it is returned whole). `None` if empty.
    pub first_offset: Option<Offset>,
    /// One past the last offset returned; the requested offset when empty.
    pub next_offset: Offset,
    /// Total bytes in `regions`.
    pub bytes: u64,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
    /// The log end offset at the time of the read.
    pub log_end_offset: Offset,
}
