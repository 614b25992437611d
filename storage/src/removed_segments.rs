//! Segments taken out of a log whose files still wait to be unlinked.
//!
//! Retention and DeleteRecords remove segments under the partition's lock:
//! the log's list loses them, the log start moves past them, and their
//! files are renamed to `*.deleted` (metadata only). Unlinking the files
//! frees their blocks and page cache and dropping the segments unmaps
//! them: for a 64 MiB segment the file system takes 5–20 ms per file, and
//! a retention pass removing several segments held the lock (and every
//! append to the partition) for 60–100 ms (`docs/benchmarks.md`, "Latency
//! at half of max"). [`RemovedSegments`] carries that work out of the
//! lock: it is done when the value is dropped, which the broker does once
//! it has released the lock.
//!
//! # Invariants
//! - Nothing reaches a removed segment through its log: it is out of the
//!   list and below the log start. A reader holding one of its regions
//!   keeps the inode (an unlinked open file lives until closed).
//! - A crash before the drop leaves `*.deleted` files, which recovery
//!   unlinks at the next open.
//! - An unlink that fails is logged and left to that recovery: the log is
//!   consistent without the segment whatever happens to its files.

use std::path::{Path, PathBuf};

use crate::segment::{self, Segment};

/// Removed segments; dropping the value unmaps them and unlinks their
/// `*.deleted` files.
#[derive(Debug)]
#[must_use = "dropping it unlinks the files: hold it only to drop it outside the partition's lock"]
pub struct RemovedSegments {
    dir: PathBuf,
    segments: Vec<Segment>,
}

impl RemovedSegments {
    /// `segments`, whose files the caller renamed to `*.deleted`.
    pub(crate) fn new(dir: &Path, segments: Vec<Segment>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segments,
        }
    }

    pub(crate) fn none(dir: &Path) -> Self {
        Self::new(dir, Vec::new())
    }

    /// How many segments were removed.
    pub fn count(&self) -> usize {
        self.segments.len()
    }
}

impl Drop for RemovedSegments {
    fn drop(&mut self) {
        for seg in self.segments.drain(..) {
            let base = seg.base;
            drop(seg);
            if let Err(e) = segment::unlink_deleted(&self.dir, base) {
                tracing::warn!(dir = %self.dir.display(), base = base.0, error = %e, "could not unlink a removed segment; the next open removes it");
            }
        }
    }
}
