//! The high-watermark checkpoint of a log directory (Kafka's
//! `replication-offset-checkpoint`): where each replicated partition's high
//! watermark stood, so a restarted broker does not take its whole log as
//! committed.
//!
//! Without it a reopened replica would start with its high watermark at its
//! log end, records no quorum may have acknowledged included; became
//! leader, it would show them to consumers before its followers have them
//! (and a second failure could take them back).
//!
//! ```text
//! maintenance pass, every CHECKPOINT_INTERVAL ─┐
//! clean shutdown (after every log closed)   ───┴─► store: write tmp, rename
//! start ─► load ─► a replicated partition opens with
//!                  HW = min(checkpointed HW, its log end), or its log start
//!                  when the checkpoint does not name it
//! ```
//!
//! Format: Kafka's offset checkpoint (`replica::offset_checkpoint`), one
//! `topic partition high_watermark` line per partition.
//!
//! # Invariants
//! - A checkpointed value is a high watermark this broker published, so it
//!   never exceeds what a quorum of the ISR held at that moment; reopening
//!   at it (clamped to the log end) never shows more than was committed.
//! - A stale, missing or unreadable file only makes the start value lower
//!   (down to the log start): it is written without fsync, and a file that
//!   does not parse whole is ignored.
//! - Partitions with one replica are not affected: their log end, durable
//!   after recovery, is their high watermark.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::offset_checkpoint;

/// How often the maintenance pass writes the file (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` default).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

const FILE_NAME: &str = "replication-offset-checkpoint";

/// Topic and partition → high watermark.
pub type HighWatermarks = offset_checkpoint::Offsets;

/// The file in `log_dir`.
pub fn path(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE_NAME)
}

/// The checkpoint of `log_dir`; empty when there is none or it does not
/// parse (logged: the partitions then start from their log start).
pub fn load(log_dir: &Path) -> HighWatermarks {
    offset_checkpoint::load_or_empty(
        &path(log_dir),
        "high-watermark checkpoint",
        "replicated partitions start from their log start",
    )
}

/// Writes `entries` as the checkpoint of `log_dir` (no fsync: a lost
/// write only leaves an older, lower checkpoint).
pub fn store<'a>(
    log_dir: &Path,
    entries: impl ExactSizeIterator<Item = (&'a str, i32, i64)>,
) -> std::io::Result<()> {
    offset_checkpoint::store(&path(log_dir), entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        let entries = [("orders", 0, 42), ("a.b-c_d", 7, 0)];
        store(dir.path(), entries.into_iter()).unwrap();
        let loaded = load(dir.path());
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&("orders".to_string(), 0)], 42);
        assert_eq!(loaded[&("a.b-c_d".to_string(), 7)], 0);
    }

    #[test]
    fn a_malformed_file_is_an_empty_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "0\n2\nt 0 5\n").unwrap();
        assert!(load(dir.path()).is_empty());
    }
}
