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
//!   succeeds would lie).
//! - `complete_flush` only advances the recovery point for a `PendingFlush`
//!   whose `sync` succeeded, and ignores one taken before a truncation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::log_dir::LogDirHealth;
use crate::mmap::MappedFile;
use crate::offset::Offset;

/// The fsync work of one partition, taken under its lock, run without it.
#[derive(Debug)]
pub struct PendingFlush {
    pub(crate) files: Vec<Arc<MappedFile>>,
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
            .try_for_each(|f| fail_point(f.path()).and_then(|()| f.sync_data()))
            .and_then(|()| match &self.dir {
                Some(dir) => crate::checkpoint::sync_dir(dir),
                None => Ok(()),
            });
        match result {
            Ok(()) => {
                self.synced.store(true, Ordering::Release);
                Ok(())
            }
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
}
