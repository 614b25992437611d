//! Frees the blocks of removed files in steps, on a thread of its own.
//!
//! Unlinking a large file frees all its blocks at once, and on a file
//! system mounted with `discard` ext4 sends the device the discards for
//! all of them inside that `unlink` (this machine's ext4 has no journal:
//! a 1 GiB unlink took 250–350 ms). Every fdatasync meanwhile waits behind
//! them at the device: with 1 GiB segments and retention, the group
//! commit's fdatasyncs took 27–81 ms each during such an unlink and the
//! messaging scenario's send→ack p99 was 128–171 ms, against 4.3 ms with no
//! retention (`docs/benchmarks.md`, "Retention without stalls"). Shrinking
//! the file [`STEP_BYTES`] at a time bounds each discard, and the
//! fdatasync after each step (which writes the shrunk inode) paces them:
//! an fdatasync loop beside such a deletion then stayed under 2 ms.
//! RocksDB's `DeleteScheduler` deletes files in chunks for the same reason.
//!
//! ```text
//! submit(path)  ─► bounded queue ─► thread: open; mapped? ─yes─► wait (retry every RETRY)
//!   (queue full: unlinked in place)                │no              │ MAX_WAIT passed
//!                                                  ▼                ▼
//!                          shrink STEP_BYTES + fdatasync, …   unlink whole
//!                                                  ▼
//!                                               unlink
//! ```
//!
//! # Invariants
//! - A file is shrunk only while no mapping of it exists in this process
//!   (`mapped_inodes.rs`): no reader faults on a cut page. A file still mapped after [`MAX_WAIT`] is
//!   unlinked whole, which is safe with live mappings (the inode lives
//!   until they go).
//! - Only files already out of every log are submitted: `*.deleted`
//!   segment files and `*.deleted` partition directories. A crash at any
//!   point leaves such names, which the next open removes.
//! - Bounded: at most [`QUEUE_JOBS`] queued and as many waiting; a
//!   submission that finds the queue full unlinks in place (the cost it
//!   had before this thread existed), so nothing blocks and nothing grows.
//! - A failure is logged and leaves the name for the next open: a removed
//!   file is never read again, so nothing is poisoned or taken offline.
//! - When the last [`Reclaimer`] handle is dropped the thread unlinks what
//!   it still holds, whole, and exits.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::mapped_inodes;

/// What one step frees (one ftruncate, whose discard this bounds, and one
/// fdatasync). Beside a 1 GiB
/// deletion an fdatasync loop saw p99 0.9 ms and at most 2 ms with 1 MiB
/// steps (4 MiB: p99 1.5, max 3; 16 MiB: p99 5.6, max 10), which still
/// free 1.3 GiB/s here (0.75 s per GiB), above what this disk takes in.
pub const STEP_BYTES: u64 = 1024 * 1024;

/// Jobs queued for the thread (and at most as many waiting for readers).
pub const QUEUE_JOBS: usize = 4096;

/// How often a file still mapped is looked at again.
const RETRY: Duration = Duration::from_millis(100);

/// How long a mapped file waits before it is unlinked whole: Kafka keeps a
/// deleted segment for `file.delete.delay.ms` (60 s) for the same readers.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// What the reclaimer has done, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReclaimStats {
    /// Files and directories submitted and not yet removed.
    pub pending: u64,
    /// Files removed.
    pub files_total: u64,
    /// Bytes freed in steps (files unlinked whole are not counted).
    pub stepped_bytes_total: u64,
    /// Steps taken (ftruncate + fdatasync).
    pub steps_total: u64,
    /// Files unlinked in place because the queue was full, or whole
    /// because a mapping outlived [`MAX_WAIT`].
    pub unlinked_whole_total: u64,
    /// Bytes of removed segments' files (`.log` and indexes) kept to
    /// become a partition's next segment (`spare_segment.rs`), at most
    /// [`SPARE_BYTES_MAX`].
    pub spare_bytes: u64,
    /// Removed segments whose files became a new segment's.
    pub reused_total: u64,
}

/// Most bytes of removed segments' files kept as spares across the logs that
/// share one reclaimer (`spare_segment.rs`): disk beyond what retention
/// keeps, bounded. 1 GiB holds one spare of the default 1 GiB segment, or
/// sixteen of 64 MiB.
pub const SPARE_BYTES_MAX: u64 = 1 << 30;

/// Free bytes a file system must have left for the broker's logs to keep
/// spares on it: when the disk fills, removed segments are freed at once
/// as before, and a full disk still finds every removed byte returned.
/// A standalone log's reclaimer ([`Reclaimer::inline`]) keeps spares
/// whatever is free.
pub const SPARE_FREE_BYTES_MIN: u64 = 4 << 30;

/// Removes files and directories out of every log. Cheap to clone; see
/// the module docs.
#[derive(Debug, Clone)]
pub struct Reclaimer {
    /// `None`: unlink in place, on the caller's thread (a standalone log).
    queue: Option<SyncSender<Job>>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<u64>,
    idle: Condvar,
    files_total: AtomicU64,
    stepped_bytes_total: AtomicU64,
    steps_total: AtomicU64,
    unlinked_whole_total: AtomicU64,
    spare_bytes: AtomicU64,
    reused_total: AtomicU64,
    /// [`SPARE_FREE_BYTES_MIN`] for the broker's, 0 for a standalone log's.
    spare_free_bytes_min: u64,
}

#[derive(Debug)]
enum Job {
    File(PathBuf),
    /// A directory: its files one by one, then the directory.
    Dir(PathBuf),
}

impl Job {
    fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Dir(p) => p,
        }
    }
}

impl Default for Reclaimer {
    fn default() -> Self {
        Self::inline()
    }
}

impl Reclaimer {
    /// Removes on the caller's thread, at once (tests, standalone logs).
    pub fn inline() -> Self {
        Self {
            queue: None,
            shared: Arc::default(),
        }
    }

    /// Starts the reclaiming thread (`name` names it). If the thread cannot
    /// be started, removal happens in place (logged).
    pub fn spawn(name: &str) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_JOBS);
        let shared = Arc::new(Shared {
            spare_free_bytes_min: SPARE_FREE_BYTES_MIN,
            ..Shared::default()
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            waiting: Vec::new(),
        };
        match std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || worker.run(&rx))
        {
            Ok(_) => Self {
                queue: Some(tx),
                shared,
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not start the reclaimer thread: removed files are unlinked in place");
                Self::inline()
            }
        }
    }

    /// Removes the file at `path` (a `*.deleted` name) in steps.
    pub(crate) fn remove_file(&self, path: PathBuf) {
        self.submit(Job::File(path));
    }

    /// Removes the directory at `path` (a `*.deleted` name) and what it
    /// holds, its files in steps.
    pub(crate) fn remove_dir(&self, path: PathBuf) {
        self.submit(Job::Dir(path));
    }

    fn submit(&self, job: Job) {
        let Some(queue) = &self.queue else {
            remove_whole(job.path());
            return;
        };
        self.shared.add_pending(1);
        match queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.shared
                    .unlinked_whole_total
                    .fetch_add(1, Ordering::Relaxed);
                remove_whole(job.path());
                self.shared.add_pending(-1);
            }
        }
    }

    /// What was done so far.
    pub fn stats(&self) -> ReclaimStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReclaimStats {
            pending: *self.shared.lock_pending(),
            files_total: load(&self.shared.files_total),
            stepped_bytes_total: load(&self.shared.stepped_bytes_total),
            steps_total: load(&self.shared.steps_total),
            unlinked_whole_total: load(&self.shared.unlinked_whole_total),
            spare_bytes: load(&self.shared.spare_bytes),
            reused_total: load(&self.shared.reused_total),
        }
    }

    /// [`Reclaimer::inline`] that keeps spares only with `min` bytes free.
    #[cfg(test)]
    pub(crate) fn inline_keeping_free(min: u64) -> Self {
        Self {
            queue: None,
            shared: Arc::new(Shared {
                spare_free_bytes_min: min,
                ..Shared::default()
            }),
        }
    }

    /// Whether the file system holding `dir` has room for spares: at
    /// least [`SPARE_FREE_BYTES_MIN`] free (the broker's), or always (a
    /// standalone log's). A file system that cannot tell has none.
    pub(crate) fn has_room_for_spares(&self, dir: &Path) -> bool {
        let min = self.shared.spare_free_bytes_min;
        min == 0
            || rustix::fs::statvfs(dir)
                .is_ok_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) >= min)
    }

    /// Counts `len` bytes against [`SPARE_BYTES_MAX`]; false (nothing
    /// counted) when they do not fit.
    pub(crate) fn hold_spare(&self, len: u64) -> bool {
        self.shared
            .spare_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(len).filter(|&n| n <= SPARE_BYTES_MAX)
            })
            .is_ok()
    }

    /// Returns `len` bytes held by [`Reclaimer::hold_spare`]; `reused`:
    /// the file became a segment's (else it is being freed).
    pub(crate) fn release_spare(&self, len: u64, reused: bool) {
        let _ =
            self.shared
                .spare_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                    Some(held.saturating_sub(len))
                });
        if reused {
            self.shared.reused_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until nothing is pending, at most `timeout`; whether it got
    /// there (tests).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let pending = self.shared.lock_pending();
        let (pending, _) = self
            .shared
            .idle
            .wait_timeout_while(pending, timeout, |p| *p > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending == 0
    }
}

impl Shared {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, u64> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add_pending(&self, delta: i64) {
        let mut pending = self.lock_pending();
        *pending = pending.saturating_add_signed(delta);
        if *pending == 0 {
            self.idle.notify_all();
        }
    }
}

/// A job whose file was still mapped when last looked at.
struct Waiting {
    job: Job,
    since: Instant,
    next_try: Instant,
}

/// The thread's state.
struct Worker {
    shared: Arc<Shared>,
    waiting: Vec<Waiting>,
}

/// How one attempt at a job ended.
enum Attempt {
    Done,
    /// A file is still mapped: try again later.
    Mapped,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Job>) {
        loop {
            let next = match self.waiting.iter().map(|w| w.next_try).min() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(job) => self.attempt(job, Instant::now()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.retry_due();
        }
        for w in self.waiting.drain(..) {
            remove_whole(w.job.path());
            self.shared.add_pending(-1);
        }
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|w| w.next_try <= now);
        self.waiting = later;
        for w in due {
            self.attempt(w.job, w.since);
        }
    }

    /// One attempt at `job`, waiting since `since`.
    fn attempt(&mut self, job: Job, since: Instant) {
        let may_wait = since.elapsed() < MAX_WAIT && self.waiting.len() < QUEUE_JOBS;
        let attempt = match &job {
            Job::File(path) => self.reclaim_file(path, may_wait),
            Job::Dir(path) => self.reclaim_dir(path, may_wait),
        };
        match attempt {
            Attempt::Done => self.shared.add_pending(-1),
            Attempt::Mapped => self.waiting.push(Waiting {
                job,
                since,
                next_try: Instant::now() + RETRY,
            }),
        }
    }

    fn reclaim_dir(&self, dir: &Path, may_wait: bool) -> Attempt {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Attempt::Done,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not list a deleted directory; the next open removes it");
                return Attempt::Done;
            }
        };
        for entry in entries.flatten() {
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && let Attempt::Mapped = self.reclaim_file(&entry.path(), may_wait) {
                return Attempt::Mapped;
            }
        }
        remove_whole(dir);
        Attempt::Done
    }

    /// Shrinks the file at `path` step by step and unlinks it; `Mapped`
    /// (nothing done) while a mapping of it lives and `may_wait`.
    fn reclaim_file(&self, path: &Path, may_wait: bool) -> Attempt {
        let stepped = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| Ok((file.metadata()?, file)));
        match stepped {
            Ok((meta, file)) if meta.is_file() && meta.len() > STEP_BYTES => {
                if mapped_inodes::is_mapped(&meta) {
                    if may_wait {
                        return Attempt::Mapped;
                    }
                    tracing::warn!(path = %path.display(), "a removed file is still mapped: unlinked whole");
                    self.shared
                        .unlinked_whole_total
                        .fetch_add(1, Ordering::Relaxed);
                } else if let Err(e) = self.shrink(&file, meta.len()) {
                    tracing::warn!(path = %path.display(), error = %e, "could not shrink a removed file: unlinked whole");
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Attempt::Done,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not open a removed file: unlinked whole");
            }
        }
        remove_whole(path);
        self.shared.files_total.fetch_add(1, Ordering::Relaxed);
        Attempt::Done
    }

    /// Cuts `file` from `len` down to empty, [`STEP_BYTES`] a step, each
    /// step made durable (and so committed and discarded) by an fdatasync.
    fn shrink(&self, file: &std::fs::File, len: u64) -> std::io::Result<()> {
        let mut len = len;
        while len > 0 {
            let next = len.saturating_sub(STEP_BYTES);
            file.set_len(next)?;
            rustix::fs::fdatasync(file)?;
            self.shared
                .stepped_bytes_total
                .fetch_add(len - next, Ordering::Relaxed);
            self.shared.steps_total.fetch_add(1, Ordering::Relaxed);
            len = next;
        }
        Ok(())
    }
}

/// Unlinks `path` (a file, or a directory and what it holds) at once; a
/// failure is logged and left for the next open.
fn remove_whole(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a deleted file; the next open removes it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::{Hold, MappedFile};

    fn write_file(path: &Path, len: u64) {
        let file = std::fs::File::create(path).unwrap();
        file.set_len(len).unwrap();
    }

    const WAIT: Duration = Duration::from_secs(30);

    /// A file of `len` bytes of `fill` that a reader still maps, renamed
    /// to `*.deleted` as a removed segment's is.
    fn mapped_then_deleted(dir: &Path, len: u64, fill: u8) -> (Arc<MappedFile>, PathBuf) {
        let path = dir.join("00000000000000000000.log");
        let mut writer = MappedFile::create(&path, len, Hold::Descriptor).unwrap();
        writer
            .append(&vec![fill; usize::try_from(len).unwrap()])
            .unwrap();
        let reader = Arc::clone(writer.shared());
        drop(writer);
        let deleted = dir.join("00000000000000000000.log.deleted");
        std::fs::rename(&path, &deleted).unwrap();
        (reader, deleted)
    }

    #[test]
    fn shrinks_a_file_in_steps_then_unlinks_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log.deleted");
        let len = 5 * STEP_BYTES + 1;
        write_file(&path, len);
        let small = dir.path().join("00000000000000000000.index.deleted");
        write_file(&small, 4096);
        let r = Reclaimer::spawn("test-reclaimer");
        r.remove_file(path.clone());
        r.remove_file(small.clone());
        assert!(r.wait_idle(WAIT));
        assert!(!path.exists() && !small.exists());
        let stats = r.stats();
        assert_eq!(stats.steps_total, 6);
        assert_eq!(stats.stepped_bytes_total, len);
        assert_eq!(stats.files_total, 2);
        assert_eq!(stats.pending, 0);
    }

    #[test]
    fn never_shrinks_a_file_a_reader_still_maps() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * STEP_BYTES;
        let (reader, deleted) = mapped_then_deleted(dir.path(), len, 7);

        let r = Reclaimer::spawn("test-reclaimer");
        r.remove_file(deleted.clone());
        assert!(!r.wait_idle(RETRY * 3), "a mapped file must wait");
        assert_eq!(std::fs::metadata(&deleted).unwrap().len(), len);
        // Every byte is still readable: a cut page would raise SIGBUS here.
        let all = reader.slice(0, len).unwrap();
        assert!(all.iter().all(|b| *b == 7));
        assert_eq!(r.stats().steps_total, 0);

        drop(reader);
        assert!(r.wait_idle(WAIT));
        assert!(!deleted.exists());
        assert_eq!(r.stats().steps_total, 3);
    }

    #[test]
    fn removes_a_directory_and_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("t-0.1.deleted");
        std::fs::create_dir(&gone).unwrap();
        write_file(&gone.join("00000000000000000000.log"), 2 * STEP_BYTES);
        write_file(&gone.join("leader-epoch-checkpoint"), 10);
        std::fs::create_dir(gone.join("7.swap")).unwrap();
        let r = Reclaimer::spawn("test-reclaimer");
        r.remove_dir(gone.clone());
        assert!(r.wait_idle(WAIT));
        assert!(!gone.exists());
        assert_eq!(r.stats().steps_total, 2);
    }

    #[test]
    fn inline_removes_at_once_and_a_dropped_reclaimer_removes_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.deleted");
        write_file(&a, 2 * STEP_BYTES);
        Reclaimer::inline().remove_file(a.clone());
        assert!(!a.exists());

        // A file still mapped when the last handle goes is unlinked whole.
        let (reader, b) = mapped_then_deleted(dir.path(), 2 * STEP_BYTES, 1);
        let r = Reclaimer::spawn("test-reclaimer");
        r.remove_file(b.clone());
        assert!(!r.wait_idle(RETRY * 2), "a mapped file must wait");
        assert!(b.exists());
        drop(r);
        let deadline = Instant::now() + WAIT;
        while b.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!b.exists());
        assert!(
            reader
                .slice(0, 2 * STEP_BYTES)
                .unwrap()
                .iter()
                .all(|x| *x == 1)
        );
    }
}
