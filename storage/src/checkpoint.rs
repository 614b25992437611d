//! The per-partition checkpoint file and the clean-shutdown marker.
//!
//! `<partition dir>/partition.checkpoint`, 32 bytes, big-endian:
//!
//! ```text
//! 0   4  magic "SLCP"
//! 4   2  version (1)
//! 6   2  reserved (0)
//! 8   8  recovery point: every offset below it is fsynced, i64
//! 16  8  log start offset (DeleteRecords / retention), i64
//! 24  4  reserved (0)
//! 28  4  CRC-32 (crc32fast) of bytes 0..28
//! ```
//!
//! `<partition dir>/clean.shutdown`, 24 bytes, big-endian:
//!
//! ```text
//! 0   4  magic "SLCS"
//! 4   2  version (1)
//! 6   2  reserved (0)
//! 8   8  log end offset at close, i64
//! 16  4  reserved (0)
//! 20  4  CRC-32 (crc32fast) of bytes 0..20
//! ```
//!
//! # Invariants
//! - Both files are replaced atomically: written to `<name>.tmp`, fsynced,
//!   renamed over the old one, and the directory fsynced. A crash leaves
//!   either the old or the new file, never a mix.
//! - A file with a wrong magic, version, length or CRC is ignored (with a
//!   warning), never trusted: an ignored checkpoint means recovery scans
//!   every segment and the log start offset falls back to the first
//!   segment's base offset; an ignored marker means an unclean start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::offset::Offset;

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean.shutdown";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

const CHECKPOINT_MAGIC: &[u8; 4] = b"SLCP";
const MARKER_MAGIC: &[u8; 4] = b"SLCS";
const VERSION: u16 = 1;

/// The content of `partition.checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) recovery_point: Offset,
    pub(crate) log_start_offset: Offset,
}

fn encode(magic: &[u8; 4], fields: &[i64], len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(magic);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    for f in fields {
        b.extend_from_slice(&f.to_be_bytes());
    }
    b.resize(len - 4, 0);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// The i64 fields of a file written by [`encode`], or why it is rejected.
fn decode(b: &[u8], magic: &[u8; 4], count: usize, len: usize) -> Result<Vec<i64>, &'static str> {
    if b.len() != len {
        return Err("wrong length");
    }
    let (body, crc) = b.split_at(len - 4);
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "wrong length")?);
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch");
    }
    if body.get(0..4) != Some(magic.as_slice())
        || body.get(4..6) != Some(&VERSION.to_be_bytes()[..])
    {
        return Err("unknown magic or version");
    }
    (0..count)
        .map(|i| {
            body.get(8 + i * 8..16 + i * 8)
                .and_then(|s| s.try_into().ok())
                .map(i64::from_be_bytes)
                .ok_or("wrong length")
        })
        .collect()
}

const CHECKPOINT_LEN: usize = 32;
const MARKER_LEN: usize = 24;

impl Checkpoint {
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let b = encode(
            CHECKPOINT_MAGIC,
            &[self.recovery_point.0, self.log_start_offset.0],
            CHECKPOINT_LEN,
        );
        write_atomically(dir, CHECKPOINT_FILE, &b)
    }

    /// The checkpoint, or `None` when it is missing or fails its checks.
    pub(crate) fn read(dir: &Path) -> Result<Option<Self>> {
        let Some(b) = read_if_exists(&dir.join(CHECKPOINT_FILE))? else {
            return Ok(None);
        };
        match decode(&b, CHECKPOINT_MAGIC, 2, CHECKPOINT_LEN) {
            Ok(f) => Ok(Some(Self {
                recovery_point: Offset(f.first().copied().unwrap_or(0)),
                log_start_offset: Offset(f.get(1).copied().unwrap_or(0)),
            })),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), reason, "ignoring checkpoint file; recovering every segment");
                Ok(None)
            }
        }
    }
}

/// Writes the clean-shutdown marker naming the log end offset at close.
pub(crate) fn write_clean_shutdown(dir: &Path, log_end: Offset) -> Result<()> {
    write_atomically(
        dir,
        CLEAN_SHUTDOWN_FILE,
        &encode(MARKER_MAGIC, &[log_end.0], MARKER_LEN),
    )
}

/// The log end offset a valid marker names; `None` if missing or invalid.
pub(crate) fn read_clean_shutdown(dir: &Path) -> Result<Option<Offset>> {
    let Some(b) = read_if_exists(&dir.join(CLEAN_SHUTDOWN_FILE))? else {
        return Ok(None);
    };
    match decode(&b, MARKER_MAGIC, 1, MARKER_LEN) {
        Ok(f) => Ok(f.first().copied().map(Offset)),
        Err(reason) => {
            tracing::warn!(dir = %dir.display(), reason, "ignoring clean-shutdown marker");
            Ok(None)
        }
    }
}

/// Removes the marker and makes the removal durable, so a crash from here
/// on is seen as unclean.
pub(crate) fn remove_clean_shutdown(dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("unlink", path, e)),
    }
}

pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_renamed(dir, name, bytes, true)?;
    sync_dir(dir)
}

/// Writes `<name>.tmp` (fsynced when `durable`) and renames it to `name`:
/// a reader sees the old file or the whole new one, never a mix.
pub(crate) fn write_renamed(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    if durable {
        sync_file(&f, &tmp)?;
    }
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}

fn sync_file(f: &File, path: &Path) -> Result<()> {
    crate::flush::fail_point(path)?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))
}

/// fsync of a directory: makes creates, renames and unlinks in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::flush::fail_point(dir)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_a_bad_crc_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        let c = Checkpoint {
            recovery_point: Offset(42),
            log_start_offset: Offset(7),
        };
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(c));
        assert!(!dir.path().join("partition.checkpoint.tmp").exists());
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut b = std::fs::read(&path).unwrap();
        b[10] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        std::fs::write(&path, &b[..20]).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
    }

    #[test]
    fn marker_round_trips_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        write_clean_shutdown(dir.path(), Offset(99)).unwrap();
        assert_eq!(read_clean_shutdown(dir.path()).unwrap(), Some(Offset(99)));
        remove_clean_shutdown(dir.path()).unwrap();
        assert_eq!(read_clean_shutdown(dir.path()).unwrap(), None);
        remove_clean_shutdown(dir.path()).unwrap();
        std::fs::write(dir.path().join(CLEAN_SHUTDOWN_FILE), b"garbage").unwrap();
        assert_eq!(read_clean_shutdown(dir.path()).unwrap(), None);
    }
}
