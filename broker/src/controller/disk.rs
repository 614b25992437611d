//! The seam between the Raft log and the disk: one append-only file that
//! can be synced and atomically replaced.
//!
//! [`FileDisk`] is the real thing; the simulation (`broker/tests/sim_controller`)
//! supplies a disk that keeps synced and unsynced bytes apart, so a crash
//! loses exactly what was never synced.
//!
//! # Invariants
//! - After [`Disk::sync`] returns, every byte appended before it survives a
//!   crash.
//! - [`Disk::replace`] is atomic and durable: after a crash the file holds
//!   either the old bytes or the new ones, never a mix.
//!
//! # Caveats
//! A failed fsync is not retried: the caller treats it as fatal for the
//! controller (the page cache may already have dropped the dirty pages, as
//! PostgreSQL learned in 2018).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Append-only storage for one file's bytes.
pub trait Disk: Send {
    /// Every byte of the file, synced or not.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Appends `bytes` (not yet durable).
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Atomically and durably replaces the whole file with `bytes`.
    fn replace(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes and syncs (a torn tail found on open).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A [`Disk`] on a real file.
#[derive(Debug)]
pub struct FileDisk {
    dir: PathBuf,
    path: PathBuf,
    file: File,
}

impl FileDisk {
    /// Opens (creating if absent) `dir/name`, and makes the directory entry
    /// durable.
    pub fn open(dir: &Path, name: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let file = open_append(&path)?;
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            file,
        })
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Disk for FileDisk {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(&self.path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn replace(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.dir)?;
        self.file = open_append(&self.path)?;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_the_whole_file_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = FileDisk::open(dir.path(), "raft.log").unwrap();
        disk.append(b"abc").unwrap();
        disk.sync().unwrap();
        disk.replace(b"xy").unwrap();
        disk.append(b"z").unwrap();
        disk.sync().unwrap();
        assert_eq!(disk.read_all().unwrap(), b"xyz");
        disk.truncate(1).unwrap();
        let mut again = FileDisk::open(dir.path(), "raft.log").unwrap();
        assert_eq!(again.read_all().unwrap(), b"x");
    }
}
