//! `partition.metadata`: the topic id a partition directory belongs to, so
//! a directory left behind by a deleted topic is never served as the data
//! of a new topic with the same name (Kafka keeps the same file for the
//! same reason, KIP-516).
//!
//! ```text
//! <data_dir>/<topic>-<partition>/partition.metadata   (text)
//! version: 0
//! topic_id: <uuid, hyphenated>
//! ```
//!
//! # Invariants
//! - The file is written (fsynced, then renamed into place) before the
//!   partition's log is opened for the first time, so a directory without
//!   it was never in use and may be deleted.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use uuid::Uuid;

pub const FILE_NAME: &str = "partition.metadata";

/// The topic id recorded in `dir`, `None` if there is no readable record.
pub fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(FILE_NAME)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

/// Records `topic_id` in `dir` (creating `dir`), durably.
pub fn write_topic_id(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = File::create(&tmp)?;
    write!(f, "version: 0\ntopic_id: {}\n", topic_id.hyphenated())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))?;
    File::open(dir)?.sync_all()?;
    // The partition directory's own entry, in the log directory.
    match dir.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t-0");
        assert_eq!(read_topic_id(&p), None);
        let id = Uuid::from_u128(42);
        write_topic_id(&p, id).unwrap();
        assert_eq!(read_topic_id(&p), Some(id));
    }
}
