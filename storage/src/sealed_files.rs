//! The files of segments a roll sealed, closed after the caller's lock.
//!
//! A roll seals the active segment and hands its files to the
//! [`crate::FileBudget`] (reopened on demand). Closing them unmaps the
//! `.log`, whose mapping a tailing consumer has populated page by page:
//! `munmap` then tears down one page-table entry per 4 KiB read: 0.4 ms
//! (median) for a 64 MiB segment and up to 8.4 ms for a 1 GiB one, the
//! default, here (`docs/benchmarks.md`, "Rolls off the partition lock").
//! The roll runs inside an append, under the partition's lock, so every
//! produce and follower fetch to the partition waited for it. The log
//! keeps those files in a [`SealedFiles`] instead, which its caller takes
//! after the append and drops once it has let the lock go, as it does
//! with [`crate::RemovedSegments`].
//!
//! # Invariants
//! - A sealed segment's files are only read through the budget from the
//!   roll on (the segment is lazy): the kept files serve no reader; a
//!   reader holding a region of them keeps its own reference.
//! - Kept until the caller takes them, or else until the log's next
//!   append, which closes them first (a standalone log whose caller never
//!   takes them pays the old cost one append later). So at most one
//!   append's rolls are kept, and never more than [`SEALED_FILES_MAX`]
//!   (past that the oldest close in place).
//! - Kept files hold their mappings, so their inodes count as mapped
//!   (`mapped_inodes.rs`): a segment that retention or DeleteRecords
//!   removes takes its kept files along into the
//!   [`crate::RemovedSegments`], which closes them before its files are
//!   reused or shrunk.

use crate::offset::Offset;
use crate::segment::SegmentFiles;

/// Segments' files a log keeps for its caller to close, at most.
pub(crate) const SEALED_FILES_MAX: usize = 8;

/// Files of sealed segments; dropping the value closes them (unmaps and
/// closes the descriptors). See the module docs.
#[derive(Debug, Default)]
#[must_use = "dropping it unmaps the sealed segments' files: hold it only to drop it outside the partition's lock"]
pub struct SealedFiles {
    /// Each segment's base offset and files, oldest first.
    files: Vec<(Offset, SegmentFiles)>,
}

impl SealedFiles {
    /// Keeps the files of the segment at `base` to be closed later; closes
    /// the oldest kept ones in place when [`SEALED_FILES_MAX`] are already
    /// kept.
    pub(crate) fn keep(&mut self, base: Offset, files: SegmentFiles) {
        if self.files.len() >= SEALED_FILES_MAX {
            drop(self.files.remove(0));
        }
        self.files.push((base, files));
    }

    /// Takes out the files of segments whose base offset is below `end`
    /// (segments being removed from the log's start).
    pub(crate) fn take_below(&mut self, end: Offset) -> SealedFiles {
        let (below, kept) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|(base, _)| *base < end);
        self.files = kept;
        SealedFiles { files: below }
    }

    /// How many segments' files are kept.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use super::SEALED_FILES_MAX;
    use crate::mapped_inodes;
    use crate::offset::Offset;
    use crate::test_util::{TS, batch, small_config};
    use crate::{LeaderEpoch, LogConfig, PartitionLog};

    /// Batches of 512 bytes, four to a segment.
    const BATCH_BYTES: usize = 512;

    fn open(dir: &Path) -> PartitionLog {
        let config = LogConfig {
            segment_bytes: 4 * BATCH_BYTES as u64,
            segment_index_bytes: 4096,
            ..small_config()
        };
        PartitionLog::open(dir, config).unwrap()
    }

    fn log_file(dir: &Path, base: Offset) -> PathBuf {
        dir.join(format!("{:020}.log", base.0))
    }

    fn mapped(path: &Path) -> bool {
        mapped_inodes::is_mapped(&std::fs::metadata(path).unwrap())
    }

    /// Appends until an append rolls; the base of the segment it sealed.
    fn append_until_roll(log: &mut PartitionLog) -> Offset {
        let before = log.segment_base_offsets();
        while log.segment_base_offsets().len() == before.len() {
            log.append_as_leader(&batch(0, 2, TS, BATCH_BYTES - 61), LeaderEpoch(1), 0)
                .unwrap();
        }
        *before.last().unwrap()
    }

    #[test]
    fn a_roll_keeps_the_sealed_files_mapped_until_taken_or_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut log = open(d);
        let sealed = append_until_roll(&mut log);
        assert!(mapped(&log_file(d, sealed)), "kept for the caller");
        let taken = log.take_sealed_files();
        assert_eq!(taken.len(), 1);
        assert!(log.take_sealed_files().is_empty());
        assert!(mapped(&log_file(d, sealed)));
        drop(taken);
        assert!(!mapped(&log_file(d, sealed)), "closed when dropped");

        // Not taken: the next append closes them.
        let sealed = append_until_roll(&mut log);
        assert!(mapped(&log_file(d, sealed)));
        log.append_as_leader(&batch(0, 2, TS, BATCH_BYTES - 61), LeaderEpoch(1), 0)
            .unwrap();
        assert!(!mapped(&log_file(d, sealed)));
        assert!(log.take_sealed_files().is_empty());
    }

    /// One follower append crossing more segments than the bound keeps
    /// the newest [`SEALED_FILES_MAX`] segments' files, the older closed.
    #[test]
    fn one_append_keeps_at_most_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut log = open(d);
        // Four batches a segment: each group of four rolls once.
        let rolls = SEALED_FILES_MAX + 3;
        let batches: Vec<u8> = (0..4 * (rolls + 1))
            .flat_map(|i| batch(i64::try_from(i).unwrap(), 1, TS, BATCH_BYTES - 61))
            .collect();
        log.append_as_follower(&batches).unwrap();
        let bases = log.segment_base_offsets();
        assert_eq!(bases.len(), rolls + 1);
        let sealed = log.take_sealed_files();
        assert_eq!(sealed.len(), SEALED_FILES_MAX);
        assert!(
            !mapped(&log_file(d, bases[0])),
            "the oldest closed in place"
        );
        assert!(mapped(&log_file(d, bases[rolls - 1])), "the newest kept");
        drop(sealed);
        assert!(!mapped(&log_file(d, bases[rolls - 1])));
    }

    /// DeleteRecords right after a roll removes the segment whose files
    /// the log still keeps: they go with the removed segments, so its
    /// `.log`, the newest spare, is the one the next roll reuses.
    #[test]
    fn a_removed_segment_takes_its_kept_files_along_and_its_file_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut log = open(d);
        for _ in 0..3 {
            append_until_roll(&mut log);
        }
        let newest_sealed = append_until_roll(&mut log);
        let inode = std::fs::metadata(log_file(d, newest_sealed)).unwrap().ino();
        let active = *log.segment_base_offsets().last().unwrap();
        let removed = log.advance_log_start_offset(active).unwrap();
        assert_eq!(removed.count(), 4);
        assert!(log.take_sealed_files().is_empty(), "taken by the removal");
        drop(removed);

        append_until_roll(&mut log);
        let reused = *log.segment_base_offsets().last().unwrap();
        assert_eq!(log.reclaimer.stats().reused_total, 1);
        assert_eq!(std::fs::metadata(log_file(d, reused)).unwrap().ino(), inode);
    }
}
