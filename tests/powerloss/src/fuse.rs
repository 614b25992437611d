//! The FUSE side: each kernel request becomes one call on the shared
//! [`Model`]; nothing is passed through to another file system.
//!
//! # Invariants
//! - Every request takes the model's lock once, so requests are atomic
//!   with respect to each other and to a crash.
//! - Files are opened without `direct_io` and without `keep_cache`: the
//!   kernel page cache (and with it shared `mmap`, which the broker reads
//!   segments through) works, and each open drops cached pages, so pages
//!   from before a crash are never served after it (the remount drops
//!   them anyway).
//! - `fsync` and `fsyncdir` are implemented: a FUSE file system that
//!   answers ENOSYS there makes the kernel treat every later fsync as a
//!   success, which would hide missing syncs instead of modelling them.
//!
//! # Caveats
//! - Owner and group of every node are those of the mounting process.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Attr, FsError, Model};

/// How long the kernel may cache names and attributes. Every change goes
/// through the kernel, so its cache stays right; a crash remounts.
const TTL: Duration = Duration::from_secs(1);

/// The model behind a mount, shared with the control loop.
pub struct PowerLossFs {
    model: Arc<Mutex<Model>>,
    uid: u32,
    gid: u32,
}

impl PowerLossFs {
    pub fn new(model: Arc<Mutex<Model>>, uid: u32, gid: u32) -> Self {
        Self { model, uid, gid }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic inside a request handler leaves the model as it was
        // between two requests: keep serving it.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_attr(&self, a: &Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind: if a.is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: a.perm,
            nlink: a.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Answers getattr or setattr with `attr`, or the model's errno.
    fn reply_attr(&self, attr: Result<Attr, FsError>, reply: ReplyAttr) {
        match attr {
            Ok(a) => reply.attr(&TTL, &self.file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Answers a lookup or mkdir with the attributes of the node `ino`
    /// names (or the error that produced no node).
    fn reply_entry(&self, model: &Model, ino: Result<u64, FsError>, reply: ReplyEntry) {
        match ino.and_then(|ino| model.attr(ino)) {
            Ok(a) => reply.entry(&TTL, &self.file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

/// Answers a request that returns nothing: ok, or the model's errno.
fn reply_empty(reply: ReplyEmpty, result: Result<(), FsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    ((mode & !umask) & 0o7777) as u16
}

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let model = self.model();
        self.reply_entry(&model, model.lookup(parent.0, name), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.reply_attr(self.model().attr(ino.0), reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let resized = size.map_or(Ok(()), |len| model.set_len(ino.0, len));
        self.reply_attr(resized.and_then(|()| model.attr(ino.0)), reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut model = self.model();
        let ino = model.mkdir(parent.0, name, perm(mode, umask));
        self.reply_entry(&model, ino, reply);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        match model
            .create(parent.0, name, perm(mode, umask))
            .and_then(|ino| model.attr(ino))
        {
            Ok(a) => reply.created(
                &TTL,
                &self.file_attr(&a),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.model().unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.model().rmdir(parent.0, name));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(!RenameFlags::RENAME_NOREPLACE) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        reply_empty(
            reply,
            self.model()
                .rename(parent.0, name, newparent.0, newname, no_replace),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().attr(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // fdatasync keeps the size too: it is needed to read the data back.
        reply_empty(reply, self.model().sync(ino.0));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.model().readdir(ino.0) {
            Ok(entries) => entries,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let dots = [
            (OsStr::new(".").to_os_string(), ino.0, true),
            (OsStr::new("..").to_os_string(), ino.0, true),
        ];
        let all = dots.into_iter().chain(entries);
        for (i, (name, child, is_dir)) in all.enumerate().skip(offset as usize) {
            let kind = if is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.model().sync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: the model is bounded by memory, not blocks.
        let blocks = 1 << 28;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.model().fallocate(ino.0, offset, length, mode));
    }
}
