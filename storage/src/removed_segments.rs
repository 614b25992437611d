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
//! it has released the lock. Dropping it unmaps the segments and hands
//! their files to the log's [`Reclaimer`], which frees a large file in
//! steps (the broker's, on its own thread) or unlinks it in place (a
//! standalone log's) — except the files of segments this process made,
//! offered to the partition's [`SpareSlot`] to become its next segments
//! (`spare_segment.rs`).
//!
//! # Invariants
//! - Nothing reaches a removed segment through its log: it is out of the
//!   list and below the log start. A reader holding one of its regions
//!   keeps the inode (an unlinked open file lives until closed).
//! - A crash before the drop leaves `*.deleted` files, which recovery
//!   unlinks at the next open.
//! - A removal that fails is logged and left to that recovery: the log is
//!   consistent without the segment whatever happens to its files.
//! - The directory is fsynced before any removed file is touched, so the
//!   `*.deleted` names are durable before a file is written over (a
//!   spare) or shrunk (the reclaimer's steps). Otherwise a power cut could
//!   bring a file back under its segment's name holding a later
//!   segment's batches, or fewer of its own, below the recovery point:
//!   damage, the partition refused. Retention's rename is otherwise made
//!   durable only by the next checkpoint. When that fsync fails, the
//!   files are left for the next open.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::reclaim::Reclaimer;
use crate::sealed_files::SealedFiles;
use crate::segment::{self, Segment};
use crate::spare_segment::SpareSlot;

/// Removed segments; dropping the value unmaps them and hands their
/// `*.deleted` files to the reclaimer.
#[derive(Debug)]
#[must_use = "dropping it unlinks the files: hold it only to drop it outside the partition's lock"]
pub struct RemovedSegments {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Their files a roll sealed and the log still kept for its caller to
    /// close (`sealed_files.rs`): closed with the segments.
    sealed: SealedFiles,
    reclaimer: Reclaimer,
    spare: SpareSlot,
}

impl RemovedSegments {
    /// `segments`, removed from below the log start, whose files the
    /// caller renamed to `*.deleted`, and the `sealed` files the log kept
    /// of them: freed by `reclaimer`, the files of those made here
    /// offered to `spare`.
    pub(crate) fn new(
        dir: &Path,
        segments: Vec<Segment>,
        sealed: SealedFiles,
        reclaimer: &Reclaimer,
        spare: &SpareSlot,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segments,
            sealed,
            reclaimer: reclaimer.clone(),
            spare: spare.clone(),
        }
    }

    pub(crate) fn none(dir: &Path, reclaimer: &Reclaimer) -> Self {
        Self::new(
            dir,
            Vec::new(),
            SealedFiles::default(),
            reclaimer,
            &SpareSlot::default(),
        )
    }

    /// How many segments were removed.
    pub fn count(&self) -> usize {
        self.segments.len()
    }
}

impl Drop for RemovedSegments {
    fn drop(&mut self) {
        // Unmapped first: a spare is reused, and a file shrunk, only once
        // no mapping of it is left.
        drop(std::mem::take(&mut self.sealed));
        if self.segments.is_empty() {
            return;
        }
        // The `*.deleted` names durable before any file is written over
        // or shrunk (module docs).
        if let Err(e) = checkpoint::sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not make removed segments' names durable; their files wait for the next open to remove them");
            self.segments.clear();
            return;
        }
        let mut spares = Vec::with_capacity(self.segments.len());
        for seg in self.segments.drain(..) {
            let (base, next_offset, made_here) = (seg.base, seg.next_offset, seg.made_here);
            // Unmaps the log's own view first: the reclaimer shrinks a file
            // (and a spare is reused) only once no mapping of it is left.
            drop(seg);
            let files = segment::deleted_paths(&self.dir, base);
            if made_here {
                spares.push((files, next_offset));
            } else {
                for path in files {
                    self.reclaimer.remove_file(path);
                }
            }
        }
        self.spare.offer(spares, &self.reclaimer);
    }
}
