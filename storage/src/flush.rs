//! Flushing without the log's lock: [`PendingFlush`].
//!
//! The broker does group commit across partitions: under each partition's
//! lock it takes a [`PendingFlush`] (`PartitionLog::pending_flush`, cheap:
//! `Arc`s to the files with unflushed bytes and the log end offset they
//! cover), releases the lock, calls [`PendingFlush::sync`] for many
//! partitions together, then re-takes each lock for
//! `PartitionLog::complete_flush`, which advances the recovery point.
//!
//! # Invariants
//! - `sync` runs `fdatasync` on every `.log` with unflushed bytes (and the
//!   partition directory when segments were created since the last sync).
//!   After it returns `Ok`, every offset below `log_end_offset()` is on disk.
//! - A failed fsync is never retried: it poisons the log directory (Linux
//!   may drop the dirty pages after reporting the error, so a retry that
//!   succeeds would lie). A refused resource before any fsync ran (no
//!   descriptor to open the directory) fails this flush only.
//! - `complete_flush` only advances the recovery point for a `PendingFlush`
//!   whose `sync` succeeded, and ignores one taken before a truncation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::log::PartitionLog;
use crate::log_dir::LogDirHealth;
use crate::offset::Offset;
use crate::segment::FlushTarget;

/// The fsync work of one partition, taken under its lock, run without it.
#[derive(Debug)]
pub struct PendingFlush {
    pub(crate) files: Vec<FlushTarget>,
    /// `(segment base, .log bytes)` covered by this flush.
    pub(crate) sizes: Vec<(Offset, u64)>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) dir_changes: u64,
    pub(crate) log_end: Offset,
    pub(crate) generation: u64,
    pub(crate) health: LogDirHealth,
    pub(crate) synced: AtomicBool,
}

impl PendingFlush {
    /// Every offset below this is durable once `sync` returns `Ok`.
    pub fn log_end_offset(&self) -> Offset {
        self.log_end
    }

    /// `fdatasync` each file with unflushed bytes, then the directory if
    /// segments were created. On failure, poisons the log directory.
    pub fn sync(&self) -> Result<()> {
        if self.health.is_poisoned() {
            return Err(self.health.poisoned_error());
        }
        let result = self
            .files
            .iter()
            .try_for_each(|f| fail_point(&f.path()).and_then(|()| f.sync_data()))
            .and_then(|()| match &self.dir {
                Some(dir) => crate::checkpoint::sync_dir(dir),
                None => Ok(()),
            });
        match result {
            Ok(()) => {
                self.synced.store(true, Ordering::Release);
                Ok(())
            }
            // A refused resource (no descriptor to open the directory
            // with) happened before any fsync ran: nothing was reported
            // lost, so the flush is simply retried later.
            Err(e) if e.is_retriable_resource() => Err(e),
            Err(e) => {
                tracing::error!(error = %e, "fsync failed; log directory is now offline");
                self.health.poison();
                Err(e)
            }
        }
    }

    pub(crate) fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

impl PartitionLog {
    /// The fsync work needed to make everything appended so far durable, or
    /// `None` if it already is. Run [`PendingFlush::sync`] without the lock,
    /// then [`PartitionLog::complete_flush`].
    pub fn pending_flush(&self) -> Option<PendingFlush> {
        let mut files = Vec::new();
        let mut sizes = Vec::new();
        for seg in self.segments.iter().filter(|s| s.flushed_bytes < s.size()) {
            files.push(seg.flush_target());
            sizes.push((seg.base, seg.size()));
        }
        let dir_dirty = self.dir_changes != self.dir_synced;
        let log_end = self.log_end_offset();
        if files.is_empty() && !dir_dirty && self.recovery_point >= log_end {
            return None;
        }
        Some(PendingFlush {
            files,
            sizes,
            dir: dir_dirty.then(|| self.dir.clone()),
            dir_changes: self.dir_changes,
            log_end,
            generation: self.generation,
            health: self.health.clone(),
            synced: AtomicBool::new(false),
        })
    }

    /// Records a successful [`PendingFlush::sync`]: the recovery point
    /// advances to the flush's log end offset. Ignores a flush that did
    /// not succeed or was taken before a truncation.
    pub fn complete_flush(&mut self, flush: &PendingFlush) {
        if !flush.is_synced() || flush.generation != self.generation {
            return;
        }
        for (base, size) in &flush.sizes {
            if let Some(seg) = self.segments.iter_mut().find(|s| s.base == *base) {
                seg.flushed_bytes = seg.flushed_bytes.max((*size).min(seg.size()));
            }
        }
        if flush.dir.is_some() {
            self.dir_synced = self.dir_synced.max(flush.dir_changes);
        }
        self.recovery_point = self
            .recovery_point
            .max(flush.log_end.min(self.log_end_offset()));
    }

    /// `pending_flush` + `sync` + `complete_flush` under the caller's lock.
    pub fn flush(&mut self) -> Result<()> {
        self.check()?;
        if let Some(pending) = self.pending_flush() {
            pending.sync()?;
            self.complete_flush(&pending);
        }
        Ok(())
    }

    /// Flushes when `flush.messages` unflushed offsets have piled up or the
    /// last flush is `flush.ms` old; returns whether it flushed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool> {
        self.check()?;
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        let unflushed = self.unflushed_messages();
        let by_count = self.config.flush_messages.is_some_and(|n| unflushed >= n);
        let by_time = self
            .config
            .flush_ms
            .is_some_and(|ms| now_ms.saturating_sub(last) >= i64::try_from(ms).unwrap_or(i64::MAX));
        if unflushed == 0 || !(by_count || by_time) {
            return Ok(false);
        }
        self.flush()?;
        self.last_flush_ms = Some(now_ms);
        Ok(true)
    }
}

#[cfg(test)]
thread_local! {
    static FAIL_NEXT_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test seam: the next fsync on this thread fails with `EIO`.
#[cfg(test)]
pub(crate) fn fail_next_sync() {
    FAIL_NEXT_SYNC.with(|f| f.set(true));
}

/// Where a test can make an fsync fail; nothing outside tests.
pub(crate) fn fail_point(path: &Path) -> Result<()> {
    #[cfg(test)]
    if FAIL_NEXT_SYNC.with(|f| f.replace(false)) {
        return Err(crate::error::Error::io(
            "fsync",
            path,
            std::io::Error::from_raw_os_error(5),
        ));
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TS, batch, filled_log as filled, small_config};
    use crate::{Error, LeaderEpoch, LogConfig};

    #[test]
    fn pending_flush_can_cross_threads_and_fails_closed_when_poisoned() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<PendingFlush>();
        let health = LogDirHealth::new(Path::new("/nonexistent"));
        let pf = PendingFlush {
            files: Vec::new(),
            sizes: Vec::new(),
            dir: None,
            dir_changes: 0,
            log_end: Offset(3),
            generation: 0,
            health: health.clone(),
            synced: AtomicBool::new(false),
        };
        pf.sync().unwrap();
        assert!(pf.is_synced());
        health.poison();
        assert!(matches!(pf.sync(), Err(crate::Error::Poisoned { .. })));
    }

    #[test]
    fn flush_advances_the_recovery_point_without_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 3);
        assert_eq!(log.recovery_point(), Offset(0));
        let pending = log.pending_flush().unwrap();
        log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(1), 0)
            .unwrap();
        std::thread::scope(|s| s.spawn(|| pending.sync().unwrap()).join().unwrap());
        log.complete_flush(&pending);
        assert_eq!(log.recovery_point(), Offset(6));
        assert_eq!(log.unflushed_messages(), 1);
        log.flush().unwrap();
        assert_eq!(log.recovery_point(), Offset(7));
        assert!(log.pending_flush().is_none());
        // An unsynced PendingFlush never advances anything.
        log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(1), 0)
            .unwrap();
        let unsynced = log.pending_flush().unwrap();
        log.complete_flush(&unsynced);
        assert_eq!(log.recovery_point(), Offset(7));
    }

    #[test]
    fn maybe_flush_applies_flush_messages_and_flush_ms() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush_messages: Some(3),
            flush_ms: Some(100),
            ..small_config()
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap();
        log.append_as_leader(&batch(0, 2, TS, 1), LeaderEpoch(0), 0)
            .unwrap();
        assert!(!log.maybe_flush(0).unwrap());
        log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(0), 0)
            .unwrap();
        assert!(log.maybe_flush(10).unwrap(), "3 messages");
        log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(0), 0)
            .unwrap();
        assert!(!log.maybe_flush(50).unwrap());
        assert!(log.maybe_flush(110).unwrap(), "100 ms since the last flush");
        assert_eq!(log.recovery_point(), Offset(4));
    }

    #[test]
    fn failed_fsync_poisons_the_log_and_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 2);
        crate::flush::fail_next_sync();
        let err = log.flush().unwrap_err();
        assert!(matches!(err, Error::Io { op: "fsync", .. }), "{err}");
        assert!(err.is_storage_error());
        assert_eq!(log.recovery_point(), Offset(0));
        assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
        assert!(matches!(
            log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(0), 0),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(
            log.read(Offset(0), 10, Offset(4), true),
            Err(Error::Poisoned { .. })
        ));
        assert!(log.health().is_poisoned());
    }
}
