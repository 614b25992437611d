//! `LogDir`: the partitions on one disk, and the health flag they share.
//!
//! ```text
//! <log dir>/<topic>-<partition>/   one PartitionLog each
//! ```
//!
//! # Invariants
//! - Every partition opened through a `LogDir` shares its
//!   [`LogDirHealth`]: one fsync or write failure in any of them poisons
//!   all, and every later call on any of them returns `Error::Poisoned`
//!   (Kafka's `LogDirFailureChannel`). Nothing un-poisons a directory but
//!   a restart.
//! - Each partition keeps its own clean-shutdown marker and checkpoint in
//!   its directory, so a partition can be opened, closed and recovered on
//!   its own; `LogDir` only enumerates and opens them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::file_budget::FileBudget;
use crate::log::PartitionLog;
use crate::reclaim::Reclaimer;
use crate::segment::DELETED_SUFFIX;

/// Shared "this log directory has failed" flag.
#[derive(Debug, Clone)]
pub struct LogDirHealth {
    dir: Arc<PathBuf>,
    poisoned: Arc<AtomicBool>,
}

impl LogDirHealth {
    /// A healthy flag for the directory at `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: Arc::new(dir.to_path_buf()),
            poisoned: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Marks the directory failed, for good.
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    pub(crate) fn poisoned_error(&self) -> Error {
        Error::Poisoned {
            dir: self.dir.as_ref().clone(),
        }
    }

    /// `Err(Poisoned)` once poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_poisoned() {
            Err(self.poisoned_error())
        } else {
            Ok(())
        }
    }
}

/// A topic-partition found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    /// The directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses `<topic>-<partition>` (the topic may itself contain `-`).
    pub fn parse(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            topic: topic.to_string(),
            partition: partition.parse().ok()?,
        })
    }
}

/// One log directory (one disk) holding partition directories.
#[derive(Debug, Clone)]
pub struct LogDir {
    path: PathBuf,
    health: LogDirHealth,
    /// Shared by every partition opened here: inactive segments' files.
    files: FileBudget,
    /// Frees removed segments and deleted partitions in steps, off the
    /// partitions' locks (`reclaim.rs`).
    reclaimer: Reclaimer,
}

impl LogDir {
    /// Opens (creating if needed) the log directory at `path`, and starts
    /// its reclaimer, handing it the partition directories a deletion left
    /// behind (a crash between the rename and the removal).
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| Error::io("mkdir", path, e))?;
        let reclaimer = Reclaimer::spawn("sluice-reclaim");
        let entries = std::fs::read_dir(path).map_err(|e| Error::io("readdir", path, e))?;
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir
                && entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(DELETED_SUFFIX)
            {
                reclaimer.remove_dir(entry.path());
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            health: LogDirHealth::new(path),
            files: FileBudget::default(),
            reclaimer,
        })
    }

    /// The reclaimer of removed files (metrics, tests).
    pub fn reclaimer(&self) -> &Reclaimer {
        &self.reclaimer
    }

    /// Replaces the budget of open inactive segments that the partitions
    /// opened from now on share (the broker sizes it from its limits).
    pub fn with_file_budget(mut self, files: FileBudget) -> Self {
        self.files = files;
        self
    }

    /// The budget of open inactive segments (metrics).
    pub fn file_budget(&self) -> &FileBudget {
        &self.files
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn health(&self) -> &LogDirHealth {
        &self.health
    }

    /// The `<topic>-<partition>` directories present, sorted.
    pub fn partitions(&self) -> Result<Vec<TopicPartition>> {
        let entries =
            std::fs::read_dir(&self.path).map_err(|e| Error::io("readdir", &self.path, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("readdir", &self.path, e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                out.extend(TopicPartition::parse(name));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens (creating if needed) one partition's log, sharing this
    /// directory's health flag.
    pub fn open_partition(&self, tp: &TopicPartition, config: LogConfig) -> Result<PartitionLog> {
        self.health.check()?;
        PartitionLog::open_with_budget(
            &self.path.join(tp.dir_name()),
            config,
            self.health.clone(),
            self.files.clone(),
        )
        .map(|log| log.with_reclaimer(self.reclaimer.clone()))
    }

    /// Opens (creating if needed) many partitions side by side on a bounded
    /// pool of threads (`parallel.rs`), one result per item, in order.
    ///
    /// The same as calling [`LogDir::open_partition`] for each, but the
    /// fsyncs of different partitions overlap, and the log directory is
    /// fsynced once for every partition directory created (instead of once
    /// each) before any log is handed out. If that fsync fails the
    /// directory is poisoned and every partition this call created fails.
    pub fn open_partitions(
        &self,
        items: Vec<(TopicPartition, LogConfig)>,
    ) -> Vec<Result<PartitionLog>> {
        let opened = crate::parallel::map(items, |(tp, config)| {
            self.health.check()?;
            PartitionLog::open_leaving_parent(
                &self.path.join(tp.dir_name()),
                config,
                self.health.clone(),
                self.files.clone(),
            )
        });
        let any_created = opened.iter().any(|r| matches!(r, Ok((_, true))));
        let parent_synced = if any_created {
            crate::checkpoint::sync_dir(&self.path).inspect_err(|_| self.health.poison())
        } else {
            Ok(())
        };
        opened
            .into_iter()
            .map(|r| match (r, &parent_synced) {
                (Ok((_, true)), Err(_)) => Err(self.health.poisoned_error()),
                (r, _) => r.map(|(log, _)| log.with_reclaimer(self.reclaimer.clone())),
            })
            .collect()
    }

    /// Closes many logs side by side ([`PartitionLog::close`] each, on a
    /// bounded pool of threads); one result per log, in order.
    pub fn close_partitions(logs: Vec<PartitionLog>) -> Vec<Result<()>> {
        crate::parallel::map(logs, PartitionLog::close)
    }

    /// Whether the partition's directory holds any batch bytes (a `.log`
    /// file that is not empty). A missing directory holds none.
    pub fn holds_batches(&self, tp: &TopicPartition) -> Result<bool> {
        let dir = self.path.join(tp.dir_name());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("readdir", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("readdir", &dir, e))?;
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|x| x == crate::segment::LOG_EXT)
            {
                let len = entry
                    .metadata()
                    .map_err(|e| Error::io("stat", &path, e))?
                    .len();
                if len > 0 {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Renames a partition's directory to `<topic>-<partition>.<tag>-stray`
    /// (which [`LogDir::partitions`] does not list) and returns the new
    /// path: Kafka's way of keeping data no topic owns for an operator.
    pub fn mark_stray(&self, tp: &TopicPartition, tag: &str) -> Result<PathBuf> {
        let from = self.path.join(tp.dir_name());
        let to = self.path.join(format!("{}.{tag}-stray", tp.dir_name()));
        std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &from, e))?;
        crate::checkpoint::sync_dir(&self.path)?;
        Ok(to)
    }

    /// Deletes a partition's directory (its log must be dropped first):
    /// renamed to `<name>.<unique>.deleted`, which `partitions()` does not
    /// list, and handed to the reclaimer, which frees its files in steps
    /// (a crash before it is done leaves the name; the next open hands it
    /// over again). The unique part lets a partition re-created under the
    /// same name be deleted while the first one's files are still going.
    pub fn delete_partition(&self, tp: &TopicPartition) -> Result<()> {
        let from = self.path.join(tp.dir_name());
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let to = self
            .path
            .join(format!("{}.{unique:x}{DELETED_SUFFIX}", tp.dir_name()));
        std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &from, e))?;
        crate::checkpoint::sync_dir(&self.path)?;
        self.reclaimer.remove_dir(to);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partition_dir_names() {
        let tp = TopicPartition::parse("my-topic-12").unwrap();
        assert_eq!((tp.topic.as_str(), tp.partition), ("my-topic", 12));
        assert_eq!(tp.dir_name(), "my-topic-12");
        assert_eq!(TopicPartition::parse("nodash"), None);
        assert_eq!(TopicPartition::parse("t-0.deleted"), None);
        assert_eq!(TopicPartition::parse("-3"), None);
        assert_eq!(TopicPartition::parse("t-0.abc-stray"), None);
    }

    #[test]
    fn lists_opens_and_deletes_partitions() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let tp = TopicPartition::parse("a-b-1").unwrap();
        let config = crate::test_util::small_config();
        let log = dir.open_partition(&tp, config).unwrap();
        std::fs::write(root.path().join("stray-file"), b"").unwrap();
        assert_eq!(dir.partitions().unwrap(), vec![tp.clone()]);
        drop(log);
        dir.delete_partition(&tp).unwrap();
        assert!(dir.partitions().unwrap().is_empty());
        dir.health().poison();
        assert!(matches!(
            dir.open_partition(&tp, LogConfig::default()),
            Err(Error::Poisoned { .. })
        ));
    }

    #[test]
    fn deleted_partitions_are_reclaimed_even_when_a_crash_left_one() {
        let root = tempfile::tempdir().unwrap();
        let left = root.path().join("old-0.deleted");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("00000000000000000000.log"), vec![1u8; 4096]).unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let tp = TopicPartition::parse("t-0").unwrap();
        let config = crate::test_util::small_config();
        // The same name deleted twice while the first may still be going.
        for _ in 0..2 {
            let mut log = dir.open_partition(&tp, config.clone()).unwrap();
            let one = crate::test_util::batch(0, 3, 0, 100);
            log.append_as_leader(&one, crate::LeaderEpoch(0), 0)
                .unwrap();
            drop(log);
            dir.delete_partition(&tp).unwrap();
        }
        assert!(
            dir.reclaimer()
                .wait_idle(std::time::Duration::from_secs(30))
        );
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
        assert!(dir.reclaimer().stats().files_total >= 2);
    }

    #[test]
    fn many_partitions_open_and_close_together_and_reopen_clean() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let config = crate::test_util::small_config();
        let items = |n: i32| {
            (0..n)
                .map(|p| {
                    (
                        TopicPartition::parse(&format!("t-{p}")).unwrap(),
                        config.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let logs: Vec<PartitionLog> = dir
            .open_partitions(items(40))
            .into_iter()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(dir.partitions().unwrap().len(), 40);
        let one = crate::test_util::batch(0, 1, crate::test_util::TS, 10);
        let mut logs = logs;
        for (i, log) in logs.iter_mut().enumerate() {
            assert!(
                log.dir().ends_with(format!("t-{i}")),
                "results keep item order"
            );
            if i % 2 == 0 {
                log.append_as_leader(&one, crate::LeaderEpoch(0), 0)
                    .unwrap();
            }
        }
        for r in LogDir::close_partitions(logs) {
            r.unwrap();
        }
        // Only logs holding batches leave a marker; empty ones need none.
        let marked = |p: i32| root.path().join(format!("t-{p}/clean.shutdown")).exists();
        assert!(marked(0) && !marked(1));
        let reopened = dir.open_partitions(items(40));
        for (i, log) in reopened.into_iter().enumerate() {
            let log = log.unwrap();
            let expected = if i % 2 == 0 { 1 } else { 0 };
            assert_eq!(log.log_end_offset(), crate::Offset(expected), "t-{i}");
        }
        dir.health().poison();
        assert!(
            dir.open_partitions(items(3))
                .iter()
                .all(|r| matches!(r, Err(Error::Poisoned { .. })))
        );
    }

    #[test]
    fn strays_keep_their_batches_and_leave_the_listing() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let tp = TopicPartition::parse("t-3").unwrap();
        assert!(!dir.holds_batches(&tp).unwrap());
        let mut log = dir
            .open_partition(&tp, crate::test_util::small_config())
            .unwrap();
        let one = crate::test_util::batch(0, 1, crate::test_util::TS, 10);
        log.append_as_leader(&one, crate::LeaderEpoch(0), 0)
            .unwrap();
        log.close().unwrap();
        assert!(dir.holds_batches(&tp).unwrap());
        let stray = dir.mark_stray(&tp, "id").unwrap();
        assert!(stray.ends_with("t-3.id-stray"));
        assert!(dir.partitions().unwrap().is_empty());
        let reopened = PartitionLog::open(&stray, crate::test_util::small_config()).unwrap();
        assert_eq!(reopened.log_end_offset(), crate::Offset(1));
    }

    #[test]
    fn one_failed_fsync_poisons_every_partition_of_the_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = LogDir::open(root.path()).unwrap();
        let config = crate::test_util::small_config();
        let a = TopicPartition::parse("t-0").unwrap();
        let b = TopicPartition::parse("t-1").unwrap();
        let mut log_a = dir.open_partition(&a, config.clone()).unwrap();
        let mut log_b = dir.open_partition(&b, config).unwrap();
        let one = crate::test_util::batch(0, 1, crate::test_util::TS, 10);
        log_a
            .append_as_leader(&one, crate::LeaderEpoch(0), 0)
            .unwrap();
        log_b
            .append_as_leader(&one, crate::LeaderEpoch(0), 0)
            .unwrap();
        let pending = log_a.pending_flush().unwrap();
        crate::flush::fail_next_sync();
        assert!(matches!(pending.sync(), Err(Error::Io { .. })));
        assert!(dir.health().is_poisoned());
        assert!(matches!(
            log_b.append_as_leader(&one, crate::LeaderEpoch(0), 0),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(log_b.flush(), Err(Error::Poisoned { .. })));
    }
}
