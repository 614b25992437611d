//! The broker-wide budget of open inactive segments: their files are
//! opened on demand and the least recently used are closed past a limit.
//!
//! ```text
//! active segment    files always open: 1 descriptor (.log), 3 maps; not counted here
//! inactive segment  closed when sealed; on first read its three files are
//!                   mapped (the descriptors closed right after `mmap`: reads
//!                   and fetches use the mapping) and counted; past `limit`
//!                   open ones, the least recently used is unmapped (CLOCK:
//!                   each use sets the segment's bit, the sweep clears set
//!                   bits and closes the first segment whose bit is clear)
//! ```
//!
//! Kafka keeps every segment's files open (its indexes are lazy, its
//! `.log` is not); Redpanda bounds open segment handles. Here a node with
//! 10 000 partitions of many segments each holds one descriptor and three
//! maps per partition, plus three maps for each of at most `limit` open
//! inactive segments, whatever its data size; a descriptor only for the
//! moment a segment is opened, or a sealed `.log` fsynced.
//!
//! # Invariants
//! - At most `limit` inactive segments are mapped through this budget,
//!   plus those a caller is using right now: a reader holding a
//!   [`crate::FileRegion`] or `Bytes` of a closed segment keeps that one
//!   mapping until it drops them (bounded by the requests in flight). No
//!   inactive segment holds a descriptor between calls.
//! - The ring holds one entry per open slot plus entries of slots since
//!   dropped, pruned whenever it passes twice the limit: bounded.
//! - No thread holds two slot locks at once, and the ring's lock is never
//!   held while a slot lock is taken: opening and closing cannot deadlock.
//! - Closing a segment loses nothing: a dirty index page stays in the page
//!   cache after `munmap`, and the index's next sync (`sync_indexes`,
//!   opening the path if the segment is closed) writes it.
//! - A refused descriptor or mapping on open is [`crate::Error::Resource`]:
//!   that read fails alone (retriable), nothing goes offline.
//!
//! # References
//! Kafka's `LazyIndex`; Redpanda's open segment handle limit.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, Result};
use crate::offset::Offset;
use crate::segment::{INDEX_EXT, LOG_EXT, SegmentFiles, TIME_INDEX_EXT, segment_path};

/// Inactive segments kept open when the budget is not sized from the
/// process's limits (a standalone `PartitionLog::open`).
pub const DEFAULT_OPEN_SEGMENTS: usize = 1024;

/// What the budget has done, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileBudgetStats {
    /// The most inactive segments kept open.
    pub limit: usize,
    /// Inactive segments open now.
    pub open: usize,
    /// Inactive segments opened on demand since start.
    pub opened_total: u64,
    /// Inactive segments closed to stay within the limit since start.
    pub closed_total: u64,
}

/// The shared budget; cheap to clone (one `Arc`). See the module docs.
#[derive(Debug, Clone)]
pub struct FileBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    open: AtomicUsize,
    /// Open lazy segments, oldest registration first (the CLOCK ring).
    ring: Mutex<VecDeque<Weak<LazyFiles>>>,
    opened_total: AtomicU64,
    closed_total: AtomicU64,
}

impl FileBudget {
    /// A budget keeping at most `limit` inactive segments open (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                open: AtomicUsize::new(0),
                ring: Mutex::new(VecDeque::new()),
                opened_total: AtomicU64::new(0),
                closed_total: AtomicU64::new(0),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    pub fn stats(&self) -> FileBudgetStats {
        FileBudgetStats {
            limit: self.inner.limit,
            open: self.inner.open.load(Ordering::Relaxed),
            opened_total: self.inner.opened_total.load(Ordering::Relaxed),
            closed_total: self.inner.closed_total.load(Ordering::Relaxed),
        }
    }

    /// Counts `slot` as open and closes the least recently used others
    /// while more than `limit` are. Called with no slot lock held.
    fn register(&self, slot: &Arc<LazyFiles>) {
        let inner = &self.inner;
        let mut victims = Vec::new();
        if let Ok(mut ring) = inner.ring.lock() {
            ring.push_back(Arc::downgrade(slot));
            // Entries of segments since deleted or rewritten are skipped by
            // sweeps, which only run past the limit: prune them here so the
            // ring stays within twice the limit (plus the slot just added).
            if ring.len() > inner.limit.saturating_mul(2) {
                ring.retain(|w| w.strong_count() > 0);
            }
            let mut excess = inner
                .open
                .load(Ordering::Acquire)
                .saturating_sub(inner.limit);
            // Two sweeps at most: the first clears every use bit it meets.
            let mut budget = ring.len().saturating_mul(2);
            while excess > 0 && budget > 0 {
                budget -= 1;
                let Some(weak) = ring.pop_front() else { break };
                let Some(candidate) = weak.upgrade() else {
                    continue;
                };
                if Arc::ptr_eq(&candidate, slot) || candidate.used.swap(false, Ordering::AcqRel) {
                    ring.push_back(weak);
                    continue;
                }
                victims.push(candidate);
                excess -= 1;
            }
        }
        for victim in victims {
            if victim.close() {
                inner.closed_total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Default for FileBudget {
    fn default() -> Self {
        Self::new(DEFAULT_OPEN_SEGMENTS)
    }
}

/// The files of one sealed (inactive) segment, open or closed.
#[derive(Debug)]
pub(crate) struct LazyFiles {
    dir: PathBuf,
    base: Offset,
    /// The `.log`'s length: sealed segments never change.
    size: u64,
    budget: FileBudget,
    slot: Mutex<Option<Arc<SegmentFiles>>>,
    /// Used since the sweep last passed (the CLOCK bit).
    used: AtomicBool,
    /// The indexes hold entries not yet synced (see the module docs).
    indexes_dirty: AtomicBool,
}

impl LazyFiles {
    /// A sealed segment's slot, closed until first read.
    pub(crate) fn new(
        dir: &Path,
        base: Offset,
        size: u64,
        budget: &FileBudget,
        indexes_dirty: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_path_buf(),
            base,
            size,
            budget: budget.clone(),
            slot: Mutex::new(None),
            used: AtomicBool::new(false),
            indexes_dirty: AtomicBool::new(indexes_dirty),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base, LOG_EXT)
    }

    /// The open files, opening them (and counting them in the budget) if
    /// they were closed.
    pub(crate) fn get(self: &Arc<Self>) -> Result<Arc<SegmentFiles>> {
        let mut slot = self.slot.lock().map_err(|_| self.poisoned_lock())?;
        if let Some(files) = slot.as_ref() {
            self.used.store(true, Ordering::Release);
            return Ok(Arc::clone(files));
        }
        let files = Arc::new(SegmentFiles::open_sealed(&self.dir, self.base, self.size)?);
        *slot = Some(Arc::clone(&files));
        drop(slot);
        self.budget.inner.open.fetch_add(1, Ordering::AcqRel);
        self.budget
            .inner
            .opened_total
            .fetch_add(1, Ordering::Relaxed);
        self.budget.register(self);
        Ok(files)
    }

    /// Closes the files (readers holding them keep them until they are
    /// done); whether they were open.
    fn close(&self) -> bool {
        let taken = self.slot.lock().ok().and_then(|mut s| s.take());
        let was_open = taken.is_some();
        if was_open {
            self.budget.inner.open.fetch_sub(1, Ordering::AcqRel);
        }
        was_open
    }

    /// Takes the files out for a writer (the segment becomes active or is
    /// rewritten): the open ones if nobody else holds them, else opened
    /// afresh. The slot is left closed.
    pub(crate) fn take(self: &Arc<Self>) -> Result<SegmentFiles> {
        let taken = self.slot.lock().ok().and_then(|mut s| s.take());
        if taken.is_some() {
            self.budget.inner.open.fetch_sub(1, Ordering::AcqRel);
        }
        let mut files = match taken.map(Arc::try_unwrap) {
            Some(Ok(files)) => files,
            _ => SegmentFiles::open_sealed(&self.dir, self.base, self.size)?,
        };
        if self.indexes_dirty.load(Ordering::Acquire) {
            files.offset_index.mark_dirty();
            files.time_index.mark_dirty();
        }
        Ok(files)
    }

    /// fdatasync of the `.log` (a flush covering a segment sealed since
    /// the last one): through the open descriptor, or one opened for the
    /// call when the segment is closed.
    pub(crate) fn sync_log(&self) -> Result<()> {
        let open = self.slot.lock().ok().and_then(|s| s.clone());
        match open {
            Some(files) => files.log.shared().sync_data(),
            None => sync_path(&self.log_path()),
        }
    }

    /// Syncs the indexes if they changed since they were last synced.
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        if !self.indexes_dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let open = self.slot.lock().ok().and_then(|s| s.clone());
        match open {
            Some(files) => {
                files.offset_index.sync_shared()?;
                files.time_index.sync_shared()?;
            }
            None => {
                for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                    let path = segment_path(&self.dir, self.base, ext);
                    crate::flush::fail_point(&path)?;
                    sync_path(&path)?;
                }
            }
        }
        self.indexes_dirty.store(false, Ordering::Release);
        Ok(())
    }

    fn poisoned_lock(&self) -> Error {
        Error::Corrupt {
            path: self.log_path(),
            position: 0,
            reason: "segment file slot lock poisoned".to_string(),
        }
    }
}

impl Drop for LazyFiles {
    fn drop(&mut self) {
        // A deleted or rewritten segment leaves the count (its ring entry
        // is a dead `Weak`, skipped by the next sweep).
        let open = self.slot.get_mut().map(|s| s.is_some()).unwrap_or(false);
        if open {
            self.budget.inner.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// fdatasync of the file at `path` through a descriptor opened for it.
fn sync_path(path: &Path) -> Result<()> {
    let file = crate::fault::check(crate::fault::Call::Open)
        .and_then(|()| std::fs::OpenOptions::new().read(true).open(path))
        .map_err(|e| Error::io("open", path, e))?;
    rustix::fs::fdatasync(&file).map_err(|e| Error::io("fdatasync", path, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TS, batch, small_config};
    use crate::{LeaderEpoch, PartitionLog};

    fn open_with(dir: &Path, budget: &FileBudget) -> PartitionLog {
        PartitionLog::open_with_budget(
            dir,
            small_config(),
            crate::LogDirHealth::new(dir),
            budget.clone(),
        )
        .unwrap()
    }

    fn open_fds_naming(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|p| p.starts_with(dir))
            .count()
    }

    /// Many segments, a budget of two: at most two inactive segments (plus
    /// the active one) hold a descriptor, and every batch still reads back,
    /// also after a reopen.
    #[test]
    fn inactive_segments_open_on_demand_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(2);
        let mut log = open_with(dir.path(), &budget);
        // Two batches per 4 KiB segment: ten segments.
        for i in 0..20 {
            log.append_as_leader(&batch(0, 1, TS + i, 1900), LeaderEpoch(0), 0)
                .unwrap();
        }
        assert_eq!(log.segment_count(), 10);
        assert!(budget.stats().open <= 2, "{:?}", budget.stats());
        for round in 0..2 {
            for o in 0..20 {
                let r = log.read(Offset(o), 1, Offset(20), true).unwrap();
                assert_eq!(r.first_offset, Some(Offset(o)), "round {round}");
                drop(r);
                let stats = budget.stats();
                assert!(stats.open <= 2, "{stats:?}");
                // Only the active `.log` holds a descriptor: inactive
                // segments are mapped without one.
                assert!(open_fds_naming(dir.path()) <= 1, "{stats:?}");
            }
        }
        assert!(budget.stats().closed_total > 0, "{:?}", budget.stats());
        log.close().unwrap();
        assert_eq!(budget.stats().open, 0);
        let log = open_with(dir.path(), &budget);
        assert_eq!(
            budget.stats().open,
            0,
            "recovery leaves inactive segments closed"
        );
        let r = log.read(Offset(0), u32::MAX, Offset(20), true).unwrap();
        assert_eq!(r.regions.len(), log.segment_count());
        assert_eq!(crate::test_util::batch_ranges(&r).len(), 20);
        assert!(budget.stats().open <= 2);
    }

    /// Segments opened and then dropped (retention, a closed log) leave no
    /// unbounded trail in the ring, also while the budget is never full.
    #[test]
    fn the_ring_stays_bounded_while_segments_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(4);
        let mut log = open_with(dir.path(), &budget);
        for i in 0..6 {
            log.append_as_leader(&batch(0, 1, TS + i, 1900), LeaderEpoch(0), 0)
                .unwrap();
        }
        log.close().unwrap();
        for _ in 0..20 {
            let log = open_with(dir.path(), &budget);
            let r = log.read(Offset(0), 1, Offset(6), true).unwrap();
            assert_eq!(r.first_offset, Some(Offset(0)));
            drop((r, log));
            let ring = budget.inner.ring.lock().unwrap().len();
            assert!(ring <= 2 * 4 + 1, "{ring}");
        }
        assert_eq!(budget.stats().open, 0);
    }

    /// A refused descriptor while opening an inactive segment fails that
    /// read alone; the log stays healthy and the next read succeeds.
    #[test]
    fn a_refused_descriptor_on_a_lazy_open_fails_the_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(1);
        let mut log = open_with(dir.path(), &budget);
        for i in 0..6 {
            log.append_as_leader(&batch(0, 1, TS + i, 1900), LeaderEpoch(0), 0)
                .unwrap();
        }
        // Segment 0 was closed by later rolls (budget 1).
        crate::fault::inject(crate::fault::Call::Open, 0, rustix::io::Errno::MFILE);
        let err = log.read(Offset(0), 1, Offset(6), true).unwrap_err();
        assert!(err.is_retriable_resource(), "{err}");
        assert_eq!(crate::fault::pending(), 0);
        assert!(!log.health().is_poisoned());
        let r = log.read(Offset(0), 1, Offset(6), true).unwrap();
        assert_eq!(r.first_offset, Some(Offset(0)));
    }
}
