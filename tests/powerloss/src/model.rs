//! The file system as a program sees it, and as a disk would hold it after
//! a power cut: every file has its current bytes and its *synced* bytes,
//! every directory its current entries and its *synced* entries.
//!
//! The model follows what POSIX promises and nothing more (as ALICE and
//! CrashMonkey model a file system):
//! - `fsync`/`fdatasync` of a file make its current bytes, size included,
//!   the ones that survive a crash. They do not make the file's name
//!   durable.
//! - `fsync` of a directory makes its current entries (create, mkdir,
//!   rename in or out, unlink, rmdir) the ones that survive.
//! - [`Model::crash`] reverts to what was synced: the tree reachable from
//!   the root through synced entries, each file holding its synced bytes
//!   (empty if it never was synced). A rename whose two directories were
//!   synced at different times may leave the file under both names, or
//!   neither, exactly as an unsynced rename may on a real disk.
//!
//! # Invariants
//! - Node 1 is the root; it always exists and is always durable.
//! - Nodes are never removed before a crash: an unlinked file may still be
//!   open, and may come back if its unlink was not synced.
//!
//! # Limits
//! - Everything is held in memory: current and synced copies of every
//!   file. Fit for test data directories of a few hundred MiB.
//!
//! # Caveats
//! - Timestamps are not modelled beyond a modification time, and nothing
//!   is persisted outside this process: losing the process loses the disk.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// A node number (FUSE's inode number).
pub type Ino = u64;

/// The root directory's node number.
pub const ROOT: Ino = 1;

/// A failed operation, as the errno the kernel passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    NotSupported,
    TooLarge,
}

/// `fallocate` mode bits this model understands (Linux values).
pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
/// Deallocates a range (always with `FALLOC_FL_KEEP_SIZE`).
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// Zeroes a range.
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// Largest file the model accepts (it holds files in memory twice).
pub const FILE_BYTES_MAX: u64 = 1 << 30;

/// What a node is.
#[derive(Debug, Clone)]
pub enum Content {
    File {
        data: Vec<u8>,
        synced: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        synced: BTreeMap<OsString, Ino>,
    },
}

/// One file or directory.
#[derive(Debug, Clone)]
pub struct Node {
    pub content: Content,
    pub perm: u16,
    pub mtime: SystemTime,
}

/// What [`Model::attr`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub is_dir: bool,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub mtime: SystemTime,
}

/// What a crash took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Files whose current bytes differed from their synced bytes.
    pub files_reverted: u64,
    /// Bytes written (or extended) since the last sync of their file, summed
    /// as `|current size - synced size|` plus differing bytes in common.
    pub bytes_dropped: u64,
    /// Directory entries added, removed or repointed since the last sync of
    /// their directory.
    pub entries_undone: u64,
    /// Nodes no longer reachable after the crash.
    pub nodes_dropped: u64,
}

/// The whole file system. See the module docs.
#[derive(Debug)]
pub struct Model {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    /// An empty file system: a root directory, durable.
    pub fn new() -> Self {
        let root = Node {
            content: Content::Dir {
                entries: BTreeMap::new(),
                synced: BTreeMap::new(),
            },
            perm: 0o755,
            mtime: SystemTime::now(),
        };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node, FsError> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, FsError> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn entries(&self, dir: Ino) -> Result<&BTreeMap<OsString, Ino>, FsError> {
        match &self.node(dir)?.content {
            Content::Dir { entries, .. } => Ok(entries),
            Content::File { .. } => Err(FsError::NotDir),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<OsString, Ino>, FsError> {
        let node = self.node_mut(dir)?;
        node.mtime = SystemTime::now();
        match &mut node.content {
            Content::Dir { entries, .. } => Ok(entries),
            Content::File { .. } => Err(FsError::NotDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut Vec<u8>, FsError> {
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        match &mut node.content {
            Content::File { data, .. } => Ok(data),
            Content::Dir { .. } => Err(FsError::IsDir),
        }
    }

    /// The node `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, FsError> {
        self.entries(parent)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// The attributes of `ino`; `nlink` counts current entries naming it.
    pub fn attr(&self, ino: Ino) -> Result<Attr, FsError> {
        let node = self.node(ino)?;
        let (is_dir, size) = match &node.content {
            Content::File { data, .. } => (false, data.len() as u64),
            Content::Dir { entries, .. } => (true, entries.len() as u64),
        };
        let nlink = if is_dir {
            2
        } else {
            let named = self
                .nodes
                .values()
                .filter_map(|n| match &n.content {
                    Content::Dir { entries, .. } => Some(entries.values()),
                    Content::File { .. } => None,
                })
                .flatten()
                .filter(|&&i| i == ino)
                .count();
            u32::try_from(named).unwrap_or(u32::MAX)
        };
        Ok(Attr {
            ino,
            is_dir,
            size,
            perm: node.perm,
            nlink,
            mtime: node.mtime,
        })
    }

    fn add(
        &mut self,
        parent: Ino,
        name: &OsStr,
        content: Content,
        perm: u16,
    ) -> Result<Ino, FsError> {
        if self.entries(parent)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                content,
                perm,
                mtime: SystemTime::now(),
            },
        );
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    /// Creates an empty file (not durable until synced, nor its name until
    /// `parent` is synced).
    pub fn create(&mut self, parent: Ino, name: &OsStr, perm: u16) -> Result<Ino, FsError> {
        let content = Content::File {
            data: Vec::new(),
            synced: Vec::new(),
        };
        self.add(parent, name, content, perm)
    }

    /// Creates an empty directory.
    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, perm: u16) -> Result<Ino, FsError> {
        let content = Content::Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
        };
        self.add(parent, name, content, perm)
    }

    /// Removes the name of a file.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        if self.attr(ino)?.is_dir {
            return Err(FsError::IsDir);
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.entries_mut(parent)?.remove(name);
        Ok(())
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, replacing a
    /// file or an empty directory there unless `no_replace`.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        let moving_dir = self.attr(ino)?.is_dir;
        if let Ok(existing) = self.lookup(new_parent, new_name) {
            if no_replace {
                return Err(FsError::Exists);
            }
            if existing == ino {
                return Ok(());
            }
            match (moving_dir, self.attr(existing)?.is_dir) {
                (false, true) => return Err(FsError::IsDir),
                (true, false) => return Err(FsError::NotDir),
                (true, true) if !self.entries(existing)?.is_empty() => {
                    return Err(FsError::NotEmpty);
                }
                _ => {}
            }
        }
        self.entries(new_parent)?;
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_os_string(), ino);
        Ok(())
    }

    /// Up to `size` bytes of `ino` from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<&[u8], FsError> {
        match &self.node(ino)?.content {
            Content::File { data, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(data.get(start..end).unwrap_or_default())
            }
            Content::Dir { .. } => Err(FsError::IsDir),
        }
    }

    /// Writes `bytes` at `offset`, zero-filling any gap.
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Result<(), FsError> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= FILE_BYTES_MAX)
            .ok_or(FsError::TooLarge)?;
        let data = self.file_mut(ino)?;
        let (start, end) = (offset as usize, end as usize);
        if data.len() < end {
            data.resize(end, 0);
        }
        if let Some(dst) = data.get_mut(start..end) {
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }

    /// Sets the size of `ino` (truncating or zero-extending).
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        if len > FILE_BYTES_MAX {
            return Err(FsError::TooLarge);
        }
        self.file_mut(ino)?.resize(len as usize, 0);
        Ok(())
    }

    /// `fallocate(2)`: mode 0 extends the size to cover the range,
    /// `KEEP_SIZE` alone changes nothing visible, `PUNCH_HOLE` and
    /// `ZERO_RANGE` zero the range (the latter may extend).
    pub fn fallocate(&mut self, ino: Ino, offset: u64, len: u64, mode: i32) -> Result<(), FsError> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= FILE_BYTES_MAX)
            .ok_or(FsError::TooLarge)?;
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        let zero = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0;
        if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
            return Err(FsError::NotSupported);
        }
        let data = self.file_mut(ino)?;
        if !keep_size && data.len() < end as usize {
            data.resize(end as usize, 0);
        }
        if zero {
            let stop = (end as usize).min(data.len());
            if let Some(range) = data.get_mut((offset as usize).min(stop)..stop) {
                range.fill(0);
            }
        }
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file, or `fsync` of a directory: makes its
    /// current state the one a crash keeps.
    pub fn sync(&mut self, ino: Ino) -> Result<(), FsError> {
        match &mut self.node_mut(ino)?.content {
            Content::File { data, synced } => synced.clone_from(data),
            Content::Dir { entries, synced } => synced.clone_from(entries),
        }
        Ok(())
    }

    /// The current entries of a directory, in name order.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<(OsString, Ino, bool)>, FsError> {
        self.entries(dir)?
            .iter()
            .map(|(name, &ino)| Ok((name.clone(), ino, self.attr(ino)?.is_dir)))
            .collect()
    }

    /// A power cut: keeps only what was synced. See the module docs.
    pub fn crash(&mut self) -> CrashReport {
        let mut report = CrashReport::default();
        let mut kept = HashMap::new();
        let mut pending = vec![ROOT];
        while let Some(ino) = pending.pop() {
            if kept.contains_key(&ino) {
                continue;
            }
            let Some(mut node) = self.nodes.remove(&ino) else {
                continue;
            };
            match &mut node.content {
                Content::File { data, synced } => {
                    if data != synced {
                        report.files_reverted += 1;
                        let common = data.len().min(synced.len());
                        let differing = data
                            .iter()
                            .zip(synced.iter())
                            .take(common)
                            .filter(|(a, b)| a != b)
                            .count();
                        report.bytes_dropped +=
                            (data.len().abs_diff(synced.len()) + differing) as u64;
                        data.clone_from(synced);
                    }
                }
                Content::Dir { entries, synced } => {
                    let added = entries
                        .iter()
                        .filter(|(name, ino)| synced.get(*name) != Some(ino))
                        .count();
                    let removed = synced
                        .iter()
                        .filter(|(name, ino)| entries.get(*name) != Some(ino))
                        .count();
                    report.entries_undone += (added + removed) as u64;
                    entries.clone_from(synced);
                    pending.extend(synced.values().copied());
                }
            }
            kept.insert(ino, node);
        }
        report.nodes_dropped = self.nodes.len() as u64;
        self.nodes = kept;
        report
    }
}

impl FsError {
    /// The errno for this error.
    pub fn errno(self) -> i32 {
        match self {
            Self::NotFound => 2,      // ENOENT
            Self::Exists => 17,       // EEXIST
            Self::NotDir => 20,       // ENOTDIR
            Self::IsDir => 21,        // EISDIR
            Self::TooLarge => 27,     // EFBIG
            Self::NotEmpty => 39,     // ENOTEMPTY
            Self::NotSupported => 95, // EOPNOTSUPP
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn unsynced_data_is_reverted_to_the_last_sync_size_included() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("a"), 0o644).unwrap();
        m.sync(ROOT).unwrap();
        m.write(f, 0, b"hello").unwrap();
        m.sync(f).unwrap();
        m.write(f, 5, b" world").unwrap();
        m.write(f, 0, b"J").unwrap();
        let r = m.crash();
        assert_eq!(m.read(f, 0, 100).unwrap(), b"hello");
        assert_eq!(r.files_reverted, 1);
        assert_eq!(r.bytes_dropped, 7);
        m.set_len(f, 2).unwrap();
        m.crash();
        assert_eq!(m.attr(f).unwrap().size, 5, "a truncate is undone too");
    }

    #[test]
    fn a_synced_file_whose_name_was_not_synced_is_gone() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, name("d"), 0o755).unwrap();
        m.sync(ROOT).unwrap();
        let f = m.create(d, name("f"), 0o644).unwrap();
        m.write(f, 0, b"data").unwrap();
        m.sync(f).unwrap();
        let r = m.crash();
        assert_eq!(m.lookup(d, name("f")), Err(FsError::NotFound));
        assert_eq!((r.entries_undone, r.nodes_dropped), (1, 1));
    }

    #[test]
    fn renames_and_unlinks_need_the_directory_synced() {
        let mut m = Model::new();
        let tmp = m.create(ROOT, name("cp.tmp"), 0o644).unwrap();
        m.write(tmp, 0, b"new").unwrap();
        m.sync(tmp).unwrap();
        m.rename(ROOT, name("cp.tmp"), ROOT, name("cp"), false)
            .unwrap();
        m.crash();
        assert_eq!(m.lookup(ROOT, name("cp")), Err(FsError::NotFound));

        let tmp = m.create(ROOT, name("cp.tmp"), 0o644).unwrap();
        m.write(tmp, 0, b"new").unwrap();
        m.sync(tmp).unwrap();
        m.rename(ROOT, name("cp.tmp"), ROOT, name("cp"), false)
            .unwrap();
        m.sync(ROOT).unwrap();
        m.unlink(ROOT, name("cp")).unwrap();
        m.crash();
        let cp = m.lookup(ROOT, name("cp")).unwrap();
        assert_eq!(m.read(cp, 0, 10).unwrap(), b"new");
        assert_eq!(m.lookup(ROOT, name("cp.tmp")), Err(FsError::NotFound));
    }

    #[test]
    fn fallocate_extends_or_keeps_size_and_is_durable_only_when_synced() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("seg"), 0o644).unwrap();
        m.sync(ROOT).unwrap();
        m.fallocate(f, 0, 4096, 0).unwrap();
        assert_eq!(m.attr(f).unwrap().size, 4096);
        m.fallocate(f, 0, 8192, FALLOC_FL_KEEP_SIZE).unwrap();
        assert_eq!(m.attr(f).unwrap().size, 4096);
        m.write(f, 10, b"x").unwrap();
        m.sync(f).unwrap();
        m.fallocate(f, 0, 1 << 20, 0).unwrap();
        m.crash();
        assert_eq!(m.attr(f).unwrap().size, 4096);
        assert_eq!(m.read(f, 10, 1).unwrap(), b"x");
        assert_eq!(m.fallocate(f, 0, 1, 0x08), Err(FsError::NotSupported));
    }

    #[test]
    fn rename_refuses_what_posix_refuses() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, name("d"), 0o755).unwrap();
        m.create(d, name("x"), 0o644).unwrap();
        m.create(ROOT, name("f"), 0o644).unwrap();
        assert_eq!(
            m.rename(ROOT, name("f"), ROOT, name("d"), false),
            Err(FsError::IsDir)
        );
        m.mkdir(ROOT, name("e"), 0o755).unwrap();
        assert_eq!(
            m.rename(ROOT, name("e"), ROOT, name("d"), false),
            Err(FsError::NotEmpty)
        );
        assert_eq!(
            m.rename(ROOT, name("e"), ROOT, name("f"), false),
            Err(FsError::NotDir)
        );
        assert_eq!(
            m.rename(ROOT, name("f"), ROOT, name("e"), true),
            Err(FsError::Exists)
        );
        assert_eq!(m.rmdir(ROOT, name("d")), Err(FsError::NotEmpty));
        assert_eq!(m.unlink(ROOT, name("d")), Err(FsError::IsDir));
    }
}
