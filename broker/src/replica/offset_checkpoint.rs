//! Kafka's offset checkpoint file format (`OffsetCheckpointFile`), shared
//! by the per-log-directory checkpoints that map a partition to one offset:
//! `replication-offset-checkpoint` (`replica::hw_checkpoint`) and
//! `cleaner-offset-checkpoint` (`replica::log_cleaner`).
//!
//! ```text
//! 0                      version
//! 2                      count
//! orders 0 42            topic partition offset, one line each
//! a.b-c_d 7 0
//! ```
//!
//! # Invariants
//! - A file is replaced whole: written to `<name>.tmp` and renamed over the
//!   old one, without fsync. Every user of these files treats a lost write
//!   (an older file) as safe.
//! - A file that does not parse whole (version, count, every line) is
//!   ignored, never read in part.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const VERSION: &str = "0";

/// Topic and partition → offset.
pub type Offsets = HashMap<(String, i32), i64>;

/// What a read of a checkpoint file found.
#[derive(Debug)]
pub enum Loaded {
    Offsets(Offsets),
    Missing,
    Unreadable(std::io::Error),
    Malformed,
}

/// Reads the checkpoint at `file`.
pub fn load(file: &Path) -> Loaded {
    match std::fs::read_to_string(file) {
        Ok(text) => parse(&text).map_or(Loaded::Malformed, Loaded::Offsets),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
        Err(e) => Loaded::Unreadable(e),
    }
}

/// Reads the checkpoint at `file`, or nothing: a missing file is empty,
/// one that cannot be read or parsed is empty and logged once, naming
/// `what` the file is and what `empty_means` for the partitions.
pub fn load_or_empty(file: &Path, what: &str, empty_means: &str) -> Offsets {
    match load(file) {
        Loaded::Offsets(offsets) => offsets,
        Loaded::Missing => Offsets::new(),
        Loaded::Unreadable(e) => {
            tracing::warn!(file = %file.display(), error = %e, what, empty_means, "checkpoint unreadable; ignored");
            Offsets::new()
        }
        Loaded::Malformed => {
            tracing::warn!(file = %file.display(), what, empty_means, "checkpoint malformed; ignored");
            Offsets::new()
        }
    }
}

fn parse(text: &str) -> Option<Offsets> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut out = Offsets::with_capacity(count.min(1 << 20));
    for line in lines {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        out.insert(
            (topic.to_string(), partition.parse().ok()?),
            offset.parse().ok()?,
        );
    }
    (out.len() == count).then_some(out)
}

/// Writes `entries` as the checkpoint at `file`: a temporary file renamed
/// over the old one (no fsync, see the module docs). One buffer for the
/// whole file.
pub fn store<'a>(
    file: &Path,
    entries: impl ExactSizeIterator<Item = (&'a str, i32, i64)>,
) -> std::io::Result<()> {
    let mut text = Vec::with_capacity(16 + entries.len() * 32);
    writeln!(text, "{VERSION}")?;
    writeln!(text, "{}", entries.len())?;
    for (topic, partition, offset) in entries {
        writeln!(text, "{topic} {partition} {offset}")?;
    }
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(&text)?;
    drop(out);
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp");
        assert!(matches!(load(&file), Loaded::Missing));
        let entries = [("orders", 0, 42), ("a.b-c_d", 7, 0)];
        store(&file, entries.iter().copied()).unwrap();
        let Loaded::Offsets(loaded) = load(&file) else {
            panic!("not loaded");
        };
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&("orders".to_string(), 0)], 42);
        assert_eq!(loaded[&("a.b-c_d".to_string(), 7)], 0);
    }

    #[test]
    fn a_file_that_does_not_parse_whole_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp");
        for bad in [
            "",
            "1\n0\n",
            "0\n2\nt 0 5\n",
            "0\n1\nt 0\n",
            "0\n1\nt x 5\n",
            "0\n1\nt 0 5 9\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(matches!(load(&file), Loaded::Malformed), "{bad:?}");
        }
    }
}
