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
//! Format (Kafka's): a version line `0`, a count line, then one
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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the maintenance pass writes the file (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` default).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

const FILE_NAME: &str = "replication-offset-checkpoint";
const VERSION: &str = "0";

/// Topic and partition → high watermark.
pub type HighWatermarks = HashMap<(String, i32), i64>;

/// The file in `log_dir`.
pub fn path(log_dir: &Path) -> PathBuf {
    log_dir.join(FILE_NAME)
}

/// The checkpoint of `log_dir`; empty when there is none or it does not
/// parse (logged: the partitions then start from their log start).
pub fn load(log_dir: &Path) -> HighWatermarks {
    let file = path(log_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HighWatermarks::new(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "high-watermark checkpoint unreadable; replicated partitions start from their log start");
            return HighWatermarks::new();
        }
    };
    parse(&text).unwrap_or_else(|| {
        tracing::warn!(file = %file.display(), "high-watermark checkpoint malformed; replicated partitions start from their log start");
        HighWatermarks::new()
    })
}

fn parse(text: &str) -> Option<HighWatermarks> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut out = HighWatermarks::with_capacity(count.min(1 << 20));
    for line in lines {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(hw), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        out.insert(
            (topic.to_string(), partition.parse().ok()?),
            hw.parse().ok()?,
        );
    }
    (out.len() == count).then_some(out)
}

/// Writes `entries` as the checkpoint of `log_dir`: a temporary file,
/// renamed over the old one (no fsync: a lost write only leaves an older,
/// lower checkpoint).
pub fn store(log_dir: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = String::with_capacity(16 + entries.len() * 32);
    text.push_str(VERSION);
    text.push('\n');
    text.push_str(&entries.len().to_string());
    text.push('\n');
    for (topic, partition, hw) in entries {
        text.push_str(&format!("{topic} {partition} {hw}\n"));
    }
    let tmp = log_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path(log_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).is_empty());
        let entries = vec![("orders".to_string(), 0, 42), ("a.b-c_d".to_string(), 7, 0)];
        store(dir.path(), &entries).unwrap();
        let loaded = load(dir.path());
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&("orders".to_string(), 0)], 42);
        assert_eq!(loaded[&("a.b-c_d".to_string(), 7)], 0);
    }

    #[test]
    fn a_file_that_does_not_parse_whole_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "1\n0\n",
            "0\n2\nt 0 5\n",
            "0\n1\nt 0\n",
            "0\n1\nt x 5\n",
            "0\n1\nt 0 5 9\n",
        ] {
            std::fs::write(path(dir.path()), bad).unwrap();
            assert!(load(dir.path()).is_empty(), "{bad:?}");
        }
    }
}
