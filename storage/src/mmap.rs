//! Preallocated, memory-mapped files with a single writer and many readers.
//!
//! A [`MappedFile`] is one open file and a shared mapping of it. It is held
//! in an `Arc`: the segment's [`MapWriter`] holds one, and every
//! [`crate::FileRegion`] or `Bytes` handed to a reader holds another, so a
//! file that is renamed or unlinked stays mapped and readable while any
//! reader still views it.
//!
//! ```text
//! 0                      published                 writable_end   map_len
//! |  written, readable   |  reserved, being written  |  unused     |
//! |  (&[u8] views only)  |  (&mut [u8] by the writer) |            |
//! ```
//!
//! # Invariants
//! - `published` only grows while the `Arc` is shared. Readers only get
//!   slices of `[0, published)`; the one [`MapWriter`] only gets `&mut [u8]`
//!   of `[published, writable_end)`. The two never overlap, so no `&mut [u8]`
//!   aliases a `&[u8]`.
//! - The file is at least `writable_end` bytes long, and at least
//!   `published` bytes long, whenever those bytes are touched through the
//!   mapping: trimming never cuts below `published`, so no access faults
//!   past end-of-file (SIGBUS).
//! - Lowering `published` (recovery truncating a torn tail) or remapping
//!   requires `Arc::get_mut` to succeed: no reader exists at that moment.
//! - Blocks are reserved with `fallocate`, so writes into
//!   `[published, writable_end)` never need the file system to allocate and
//!   cannot fail with a full disk on a page fault.
//! - The reservation grows in steps (64 KiB, doubling, at most 64 MiB a
//!   step) up to the file's capacity, so an idle partition holds 64 KiB per
//!   file, not `segment.bytes`. Growing maps the longer file into a new
//!   [`MappedFile`]; readers keep the old one, whose bytes stay valid
//!   because files only grow while shared. A refused growth (`ENOSPC`) is
//!   [`Error::NoSpace`] before any byte is written.
//!
//! # Descriptors
//! A `.log` keeps its descriptor ([`Hold::Descriptor`]): appends `pwrite`
//! through it and flushes `fdatasync` it. An index needs none once it
//! is mapped ([`Hold::MappingOnly`]: Kafka's indexes are mmap-only too):
//! its descriptor is closed right after `mmap`, and the rare calls that
//! need one (growing, trimming) open the path for the call. So an idle
//! partition holds one descriptor, not three.
//!
//! # Caveats
//! - When the file system does not support `fallocate` (`EOPNOTSUPP`), the
//!   file is only extended with `set_len` (a sparse file) and a warning is
//!   logged once: on such a file system a full disk surfaces as SIGBUS on
//!   the page fault of a write, which kills the process.
//! - Another process writing our files while they are mapped would change
//!   bytes under a `&[u8]`; the log directory is assumed to be ours alone.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::FallocateFlags;
use rustix::io::Errno;
use sluice_protocol::RECORD_BATCH_HEADER_BYTES;

use crate::error::{Error, Result};
use crate::fault::{self, Call};
use crate::mapped_inodes::MappingRegistration;

/// Whether a [`MappedFile`] keeps its descriptor open (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Kept open: `pwrite` and `fdatasync` need it (`.log` files).
    Descriptor,
    /// Closed after `mmap`; opened by path when a call needs it (indexes).
    MappingOnly,
}

/// An open file and its shared mapping. See the module docs.
#[derive(Debug)]
pub(crate) struct MappedFile {
    path: PathBuf,
    /// `None` for [`Hold::MappingOnly`]. Shared by the mappings of one
    /// file as it grows, so growth costs no extra descriptor.
    file: Option<Arc<File>>,
    /// `None` when the mapped length is zero (`mmap` refuses empty maps).
    map: Option<MmapRaw>,
    map_len: u64,
    published: AtomicU64,
    /// This mapping's entry in the table of mapped inodes: the reclaimer
    /// never shrinks a file while it exists (`mapped_inodes.rs`).
    registration: MappingRegistration,
}

/// The unique writing handle of a [`MappedFile`]. Not `Clone`.
#[derive(Debug)]
pub(crate) struct MapWriter {
    file: Arc<MappedFile>,
    /// End of the reserved, mapped range; grows toward `capacity`.
    writable_end: u64,
    /// The most the file may hold (`segment.bytes`, `segment.index.bytes`).
    capacity: u64,
    /// Below this, the unpublished bytes of a reused file
    /// ([`MappedFile::reuse`]) are an earlier segment's, in written
    /// blocks: a write ending there is followed by zeros
    /// ([`MapWriter::pad_after`]). Zero for any other file.
    old_bytes_end: u64,
}

/// Slices one `pwritev` of the append path takes: the parts (a batch, or
/// its rewritten header and its records) and the padding.
const APPEND_SLICES_MAX: usize = 3;

/// The page a write into a reused file pads to the end of (x86-64's page
/// and ext4's and XFS's default block; on a larger page the padding stops
/// at a 4 KiB boundary and a write may still read the rest of its page).
const PAD_PAGE_BYTES: u64 = 4096;

/// Zeros a write into a reused file is followed by at least: a whole
/// batch header, which recovery reads as the end of the segment
/// (`recovery.rs`). Fewer, and a power cut that keeps a sealed segment's
/// synced bytes but loses its trim (no fsync follows a trim once every
/// byte was synced) would leave recovery reading the old segment's bytes
/// from the middle of one of its batches as a torn batch below the
/// recovery point: damage, the partition refused.
const PAD_ZEROS_MIN: u64 = RECORD_BATCH_HEADER_BYTES as u64;

/// The zeros a write into a reused file pads with: up to the end of the
/// page holding its end plus [`PAD_ZEROS_MIN`] — two pages at most.
static PAD_ZEROS: [u8; 2 * PAD_PAGE_BYTES as usize] = [0; 2 * PAD_PAGE_BYTES as usize];

/// Slices of [`PAD_ZEROS`] one `pwritev` of [`MappedFile::reuse_zeroed`]
/// takes: 512 KiB of zeros a call.
const ZERO_SLICES_MAX: usize = 64;

/// First reservation of a new file, and the smallest growth step: small,
/// so thousands of partitions do not reserve gigabytes they never use.
pub(crate) const RESERVE_BYTES_MIN: u64 = 64 * 1024;

/// Largest growth step: a 1 GiB segment grows in at most ~20 steps, each
/// one `fallocate` and one `mmap` of the new length.
pub(crate) const RESERVE_STEP_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How far a file reserved to `current` grows to hold `needed` bytes.
fn grown_reservation(current: u64, needed: u64, capacity: u64) -> u64 {
    let step = current.clamp(RESERVE_BYTES_MIN, RESERVE_STEP_BYTES_MAX);
    current.saturating_add(step).max(needed).min(capacity)
}

static FALLOCATE_UNSUPPORTED_WARNED: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    static FAIL_NEXT_FALLOCATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test seam: the next preallocation on this thread finds the disk full.
#[cfg(test)]
pub(crate) fn fail_next_fallocate() {
    FAIL_NEXT_FALLOCATE.with(|f| f.set(true));
}

/// Reserves blocks for `[0, len)` of `file`, extending it to `len`.
///
/// `ENOSPC` is [`Error::NoSpace`]. Falls back to a sparse `set_len` only
/// when the file system does not implement `fallocate`.
pub(crate) fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    #[cfg(test)]
    if FAIL_NEXT_FALLOCATE.with(|f| f.replace(false)) {
        return Err(Error::NoSpace {
            path: path.to_path_buf(),
            requested: len,
        });
    }
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::NOSPC => Err(Error::NoSpace {
            path: path.to_path_buf(),
            requested: len,
        }),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
            if !FALLOCATE_UNSUPPORTED_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = %path.display(),
                    "fallocate unsupported: segments are sparse and a full disk may raise SIGBUS"
                );
            }
            extend_sparse(file, path, len)
        }
        Err(e) => Err(Error::io("fallocate", path, e.into())),
    }
}

fn extend_sparse(file: &File, path: &Path, len: u64) -> Result<()> {
    let current = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if current < len {
        file.set_len(len)
            .map_err(|e| Error::io("set_len", path, e))?;
    }
    Ok(())
}

fn map(file: &File, path: &Path, len: u64) -> Result<Option<MmapRaw>> {
    if len == 0 {
        return Ok(None);
    }
    let len_usize = usize::try_from(len).map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        position: len,
        reason: "file too large to map".to_string(),
    })?;
    fault::check(Call::Mmap)
        .and_then(|()| MmapOptions::new().len(len_usize).map_raw(file))
        .map(Some)
        .map_err(|e| Error::io("mmap", path, e))
}

/// Opens the existing file at `path` for reading and writing; the file
/// and its length.
fn open_existing(path: &Path) -> Result<(File, u64)> {
    let file = fault::check(Call::Open)
        .and_then(|()| OpenOptions::new().read(true).write(true).open(path))
        .map_err(|e| Error::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    Ok((file, len))
}

/// Opens the existing file at `path` for reading and writing and maps its
/// whole length; the file, the map and the length.
fn open_mapped(path: &Path) -> Result<(File, Option<MmapRaw>, u64)> {
    let (file, len) = open_existing(path)?;
    let map = map(&file, path, len)?;
    Ok((file, map, len))
}

/// Writes zeros over `[0, len)` of `file`: [`PAD_ZEROS`] repeated, up to
/// [`ZERO_SLICES_MAX`] times per `pwritev`.
fn write_zeros(file: &File, path: &Path, len: u64) -> Result<()> {
    let chunk = PAD_ZEROS.len() as u64;
    let mut at = 0;
    while at < len {
        let want = (len - at).min(chunk * ZERO_SLICES_MAX as u64);
        let mut slices = [IoSlice::new(&[]); ZERO_SLICES_MAX];
        let mut left = want;
        for slice in &mut slices {
            let n = usize::try_from(left.min(chunk)).unwrap_or(0);
            *slice = IoSlice::new(PAD_ZEROS.get(..n).unwrap_or_default());
            left -= n as u64;
        }
        pwritev_all(file, path, &mut slices, at)?;
        at += want;
    }
    Ok(())
}

/// Writes all of `slices`, in order, at `at` of `file`: `pwritev` again
/// after a short write.
fn pwritev_all(file: &File, path: &Path, mut slices: &mut [IoSlice<'_>], at: u64) -> Result<()> {
    let mut at = at;
    while !slices.is_empty() {
        let written = fault::check(Call::Write)
            .and_then(|()| rustix::io::pwritev(file, slices, at).map_err(std::io::Error::from))
            .and_then(|n| match n {
                0 => Err(std::io::ErrorKind::WriteZero.into()),
                n => Ok(n),
            })
            .map_err(|e| Error::io("pwritev", path, e))?;
        at += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Opens `path` for a call that needs a descriptor of a
/// [`Hold::MappingOnly`] file; closed when dropped.
fn reopen(path: &Path) -> Result<Arc<File>> {
    fault::check(Call::Open)
        .and_then(|()| OpenOptions::new().read(true).write(true).open(path))
        .map(Arc::new)
        .map_err(|e| Error::io("open", path, e))
}

impl MappedFile {
    /// Creates a new file (failing if it exists) that may grow to
    /// `capacity` bytes, reserves its first step and maps it. Nothing is
    /// published. On failure the file is removed.
    pub(crate) fn create(path: &Path, capacity: u64, hold: Hold) -> Result<MapWriter> {
        let file = fault::check(Call::Open)
            .and_then(|()| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
            })
            .map_err(|e| Error::io("create", path, e))?;
        let reserved = capacity.min(RESERVE_BYTES_MIN);
        let made = preallocate(&file, path, reserved)
            .and_then(|()| map(&file, path, reserved))
            .and_then(|map| Self::writer(path, file, hold, map, reserved, 0, capacity));
        if made.is_err() {
            // Best effort: leave no half-made segment behind for recovery.
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// Takes over an existing file, written before by another segment
    /// (`spare_segment.rs`), as a new one that may grow to `capacity`
    /// bytes: its whole length is mapped and writable, nothing is
    /// published, and its old bytes stay until overwritten. Its blocks are
    /// written, so syncing appends into them writes no metadata.
    pub(crate) fn reuse(path: &Path, capacity: u64) -> Result<MapWriter> {
        let (file, map, len) = open_mapped(path)?;
        let mut writer = Self::writer(path, file, Hold::Descriptor, map, len, 0, capacity)?;
        writer.old_bytes_end = len;
        Ok(writer)
    }

    /// Takes over an existing file (a removed segment's index, renamed:
    /// `spare_segment.rs`) as a new, empty one that may grow to `capacity`
    /// bytes, as [`Self::create`] leaves a new file: its old bytes are
    /// written over with zeros (on to the end of their last page, so no
    /// page is read back first), its first step is reserved and mapped,
    /// nothing is published. No block is freed: on a file system mounted
    /// with `discard` a freed block is a synchronous discard, here inside a
    /// roll. The zeros are durable only once synced.
    pub(crate) fn reuse_zeroed(path: &Path, capacity: u64, hold: Hold) -> Result<MapWriter> {
        let (file, len) = open_existing(path)?;
        let old = len.next_multiple_of(PAD_PAGE_BYTES);
        write_zeros(&file, path, old)?;
        let reserved = grown_reservation(0, 0, capacity).max(old);
        preallocate(&file, path, reserved)?;
        let map = map(&file, path, reserved)?;
        Self::writer(path, file, hold, map, reserved, 0, capacity)
    }

    /// Opens an existing file and maps its current length. Everything in it
    /// is published: the caller (recovery) then finds the real end and calls
    /// [`MapWriter::truncate_exclusive`].
    pub(crate) fn open(path: &Path, hold: Hold) -> Result<MapWriter> {
        let (file, map, len) = open_mapped(path)?;
        Self::writer(path, file, hold, map, len, len, len)
    }

    fn writer(
        path: &Path,
        file: File,
        hold: Hold,
        map: Option<MmapRaw>,
        len: u64,
        published: u64,
        capacity: u64,
    ) -> Result<MapWriter> {
        let registration = MappingRegistration::of(&file, path)?;
        Ok(MapWriter {
            file: Arc::new(MappedFile {
                path: path.to_path_buf(),
                file: (hold == Hold::Descriptor).then(|| Arc::new(file)),
                map,
                map_len: len,
                published: AtomicU64::new(published),
                registration,
            }),
            writable_end: len,
            capacity: capacity.max(len),
            old_bytes_end: 0,
        })
    }

    /// The path the file had when it was opened (it may since have been
    /// renamed or unlinked; used for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The held descriptor, or one opened for this call.
    fn descriptor(&self) -> Result<Arc<File>> {
        match &self.file {
            Some(f) => Ok(Arc::clone(f)),
            None => reopen(&self.path),
        }
    }

    /// Bytes written and visible to readers.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// A view of published bytes `[pos, pos + len)`, or `None` if any of
    /// them is not published.
    pub(crate) fn slice(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.published() {
            return None;
        }
        if len == 0 {
            return Some(&[]);
        }
        let map = self.map.as_ref()?;
        let start = usize::try_from(pos).ok()?;
        let len = usize::try_from(len).ok()?;
        // SAFETY: `[pos, end)` lies within `[0, published)`, which lies
        // within the mapping (`published <= map_len`) and within the file
        // (trims never cut below `published`), so the memory is valid for
        // the lifetime of `&self`, which keeps the mapping alive. Published
        // bytes are never written again while the `Arc` is shared (module
        // invariant), so no `&mut` aliases this slice.
        Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(start), len) })
    }

    /// All published bytes from `pos` on.
    pub(crate) fn tail(&self, pos: u64) -> Option<&[u8]> {
        self.slice(pos, self.published().checked_sub(pos)?)
    }

    /// `fdatasync` of the file: makes every byte written through the
    /// mapping, and the file length, durable (on Linux, fsync writes back
    /// pages dirtied through a shared mapping).
    ///
    /// A [`Hold::MappingOnly`] file is synced through its mapping
    /// (`msync(MS_SYNC)`, which Linux implements as an fdatasync of the
    /// mapped range), so no descriptor is needed.
    pub(crate) fn sync_data(&self) -> Result<()> {
        match (&self.file, &self.map) {
            (None, Some(map)) => map.flush().map_err(|e| Error::io("msync", &self.path, e)),
            _ => rustix::fs::fdatasync(&*self.descriptor()?)
                .map_err(|e| Error::io("fdatasync", &self.path, e.into())),
        }
    }
}

/// Owner that lets a mapped range travel as `Bytes` without a copy.
struct MappedSlice {
    file: Arc<MappedFile>,
    pos: u64,
    len: u64,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // Checked when built; published bytes stay published while this
        // `Arc` is held, so this never falls back in practice.
        self.file.slice(self.pos, self.len).unwrap_or_default()
    }
}

/// `Bytes` viewing published bytes `[pos, pos + len)` of `file`, no copy.
pub(crate) fn bytes(file: &Arc<MappedFile>, pos: u64, len: u64) -> Option<bytes::Bytes> {
    file.slice(pos, len)?;
    Some(bytes::Bytes::from_owner(MappedSlice {
        file: Arc::clone(file),
        pos,
        len,
    }))
}

impl MapWriter {
    pub(crate) fn shared(&self) -> &Arc<MappedFile> {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file.path
    }

    pub(crate) fn published(&self) -> u64 {
        self.file.published()
    }

    /// Bytes that can still be written before the file is at capacity.
    pub(crate) fn remaining(&self) -> u64 {
        self.capacity.saturating_sub(self.published())
    }

    /// Lets the file grow to at least `capacity` bytes (a batch larger
    /// than the segment was created for). Growth still reserves in steps.
    pub(crate) fn raise_capacity(&mut self, capacity: u64) {
        self.capacity = self.capacity.max(capacity);
    }

    /// Reserves and maps more of the file so it holds at least `needed`
    /// bytes; readers keep the previous mapping.
    fn grow(&mut self, needed: u64) -> Result<()> {
        let path = self.file.path.clone();
        let new_end = grown_reservation(self.writable_end, needed, self.capacity);
        let fd = self.file.descriptor()?;
        preallocate(&fd, &path, new_end)?;
        let map = map(&fd, &path, new_end)?;
        self.file = Arc::new(MappedFile {
            path,
            file: self.file.file.clone(),
            map,
            map_len: new_end,
            published: AtomicU64::new(self.published()),
            registration: self.file.registration.clone(),
        });
        self.writable_end = new_end;
        Ok(())
    }

    /// `&mut` view of the next `len` unpublished bytes, to be filled and
    /// then made visible with [`MapWriter::publish`]. Grows the reservation
    /// when needed ([`Error::NoSpace`] on a full disk, nothing changed).
    pub(crate) fn reserve(&mut self, len: usize) -> Result<&mut [u8]> {
        let pos = self.published();
        let len64 = len as u64;
        if len64 > self.remaining() {
            return Err(Error::Corrupt {
                path: self.file.path.clone(),
                position: pos,
                reason: format!("write of {len} bytes past the file's capacity"),
            });
        }
        let end = pos.saturating_add(len64);
        if end > self.writable_end {
            self.grow(end)?;
        }
        let Some(map) = self.file.map.as_ref() else {
            return Ok(&mut []);
        };
        let start = usize::try_from(pos).map_err(|_| Error::Corrupt {
            path: self.file.path.clone(),
            position: pos,
            reason: "position beyond the address space".to_string(),
        })?;
        // SAFETY: `[published, published + len)` lies within
        // `[0, writable_end)`, which is mapped and backed by the file.
        // Readers only ever see `[0, published)` and `&mut self` makes this
        // the only writer, so the returned slice aliases nothing. The bytes
        // are initialised (file contents, zeros after fallocate).
        Ok(unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().add(start), len) })
    }

    /// Makes the next `len` reserved bytes visible to readers.
    pub(crate) fn publish(&mut self, len: usize) {
        let new = self
            .published()
            .saturating_add(len as u64)
            .min(self.writable_end);
        self.file.published.store(new, Ordering::Release);
    }

    /// Writes `parts`, in order, at the end of the file with one `pwritev`
    /// and publishes them: the append path. One copy, socket buffer → page
    /// cache; readers see the bytes through the mapping (same page cache).
    ///
    /// Why not copy through the mapping: the first store to each page of a
    /// shared file mapping faults, and the kernel zero-fills the page before
    /// the copy overwrites it (a third of the broker's produce CPU in
    /// `perf`, and slower still when the system is busy); `pwrite` of whole
    /// pages fills the page cache directly. Why one `pwritev` and not a
    /// `pwrite` per part: each write call that starts a new block zero-fills
    /// the rest of it, and a small batch sent as a rewritten header and its
    /// records paid two calls (a loop of 511-byte batches: 28 % less CPU as
    /// one call). The bytes land in the reserved range
    /// `[published, writable_end)`, which no reader views; in a reused
    /// file, zeros follow them ([`MapWriter::pad_after`]).
    pub(crate) fn append_parts<const N: usize>(&mut self, parts: [&[u8]; N]) -> Result<()> {
        const { assert!(N < APPEND_SLICES_MAX, "one slice is kept for the padding") };
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let pos = self.published();
        if len > self.remaining() {
            return Err(Error::Corrupt {
                path: self.file.path.clone(),
                position: pos,
                reason: format!("write of {len} bytes past the file's capacity"),
            });
        }
        let end = pos.saturating_add(len);
        if end > self.writable_end {
            self.grow(end)?;
        }
        let fd = self.file.descriptor()?;
        let mut slices = [IoSlice::new(&[]); APPEND_SLICES_MAX];
        for (slice, part) in slices.iter_mut().zip(parts) {
            *slice = IoSlice::new(part);
        }
        let pad = self.pad_after(end);
        if let Some(slice) = slices.get_mut(N) {
            *slice = IoSlice::new(pad);
        }
        pwritev_all(
            &fd,
            &self.file.path,
            slices.get_mut(..=N).unwrap_or_default(),
            pos,
        )?;
        self.file.published.store(end, Ordering::Release);
        Ok(())
    }

    /// The zeros a write ending at `end` is followed by: at least
    /// [`PAD_ZEROS_MIN`] and on to the end of that page, while the file
    /// there holds an earlier segment's bytes (a reused file); nothing
    /// otherwise. The end of the file cuts them short (recovery reads a
    /// short zero tail as the end too). Why to a page's end: a write
    /// covering only part of a page of written blocks that is not cached
    /// has the kernel read the page from disk first
    /// (`ext4_block_write_begin`), inside the append; a fallocated
    /// (unwritten) block is zero-filled without a read. The zeros lie in
    /// the reserved, unpublished range, so no reader sees them, and the
    /// next append overwrites them in the cached page.
    fn pad_after(&self, end: u64) -> &'static [u8] {
        if end >= self.old_bytes_end {
            return &[];
        }
        let page_end = end
            .saturating_add(PAD_ZEROS_MIN)
            .next_multiple_of(PAD_PAGE_BYTES)
            .min(self.writable_end);
        let pad = usize::try_from(page_end.saturating_sub(end)).unwrap_or(0);
        PAD_ZEROS.get(..pad).unwrap_or_default()
    }

    /// Copies `src` to the end and publishes it.
    pub(crate) fn append(&mut self, src: &[u8]) -> Result<()> {
        self.reserve(src.len())?.copy_from_slice(src);
        self.publish(src.len());
        Ok(())
    }

    /// Appends an index entry: like [`MapWriter::append`], but a full disk
    /// skips the entry (`Ok(false)`) instead of failing. Index entries are
    /// hints — a sparse index missing one only makes a lookup scan further
    /// — so the append whose log bytes are already written must not fail.
    pub(crate) fn append_hint(&mut self, src: &[u8]) -> Result<bool> {
        match self.append(src) {
            Ok(()) => Ok(true),
            Err(Error::NoSpace { path, requested }) => {
                tracing::warn!(path = %path.display(), requested, "disk full: index entry skipped");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Shrinks the file to its published length: no further writes.
    pub(crate) fn trim(&mut self) -> Result<()> {
        let published = self.published();
        self.file
            .descriptor()?
            .set_len(published)
            .map_err(|e| Error::io("set_len", &self.file.path, e))?;
        self.writable_end = published;
        self.capacity = published;
        Ok(())
    }

    /// Sets the published length to `len` (which may be lower), zero beyond
    /// it, and lets the file grow to `capacity.max(len)` bytes (reserving
    /// one growth step past `len` now). Only possible while no reader holds
    /// the file.
    pub(crate) fn truncate_exclusive(&mut self, len: u64, capacity: u64) -> Result<()> {
        let path = self.file.path.clone();
        let inner = Arc::get_mut(&mut self.file).ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            position: len,
            reason: "truncate while readers hold the file".to_string(),
        })?;
        let capacity = capacity.max(len);
        let reserved = grown_reservation(len, len, capacity);
        let fd = inner.descriptor()?;
        // Cutting first and then re-reserving zeroes whatever followed `len`
        // (a torn tail must not resurface as if it were a batch later).
        fd.set_len(len)
            .map_err(|e| Error::io("set_len", &path, e))?;
        preallocate(&fd, &path, reserved)?;
        if reserved != inner.map_len {
            inner.map = map(&fd, &path, reserved)?;
            inner.map_len = reserved;
        }
        inner.published.store(len, Ordering::Release);
        self.writable_end = reserved;
        self.capacity = capacity;
        // Whatever a reused file held past `len` was cut.
        self.old_bytes_end = 0;
        Ok(())
    }

    /// Records that the file now lives at `path` (after a rename). Only
    /// while no reader holds the file.
    pub(crate) fn renamed_exclusive(&mut self, path: &Path) -> Result<()> {
        let inner = Arc::get_mut(&mut self.file).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            position: 0,
            reason: "rename while readers hold the file".to_string(),
        })?;
        inner.path = path.to_path_buf();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_into_a_reused_file_is_followed_by_a_batch_header_of_zeros_and_on_to_its_page_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let old_len = 3 * PAD_PAGE_BYTES as usize;
        let min = PAD_ZEROS_MIN as usize;
        // (bytes written, where the zeros after them end)
        let cases = [
            (100, 4096),             // the rest of the page
            (4096 - min, 4096),      // exactly a header's worth left
            (4096 - min + 1, 8192),  // less than a header left: the next page too
            (4096, 8192),            // on the page boundary: a whole page
            (old_len - 10, old_len), // cut short at the end of the file
        ];
        for (written, zeros_end) in cases {
            std::fs::write(&path, vec![0xAAu8; old_len]).unwrap();
            let mut w = MappedFile::reuse(&path, old_len as u64).unwrap();
            w.append_parts([&vec![7u8; written]]).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), old_len, "{written}");
            assert!(bytes[..written].iter().all(|&b| b == 7), "{written}");
            assert!(
                bytes[written..zeros_end].iter().all(|&b| b == 0),
                "{written}"
            );
            assert!(bytes[zeros_end..].iter().all(|&b| b == 0xAA), "{written}");
        }
        // Past the old bytes nothing is padded: the reservation is zeros.
        std::fs::write(&path, vec![0xAAu8; 4096]).unwrap();
        let mut w = MappedFile::reuse(&path, 16 * 1024).unwrap();
        w.append_parts([&[7u8; 4096][..]]).unwrap();
        assert!(w.pad_after(4096).is_empty());
        assert!(w.pad_after(5000).is_empty());
    }

    #[test]
    fn readers_see_only_published_bytes_and_keep_them_after_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = MappedFile::create(&path, 64, Hold::Descriptor).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 64);
        w.reserve(5).unwrap().copy_from_slice(b"hello");
        assert_eq!(w.shared().slice(0, 5), None);
        w.publish(5);
        let b = bytes(w.shared(), 0, 5).unwrap();
        assert_eq!(&b[..], b"hello");
        assert!(bytes(w.shared(), 3, 3).is_none());
        w.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 5);
        assert!(w.reserve(1).is_err());
        std::fs::remove_file(&path).unwrap();
        drop(w);
        assert_eq!(&b[..], b"hello");
    }

    #[test]
    fn truncate_exclusive_refuses_while_shared_and_zeroes_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = MappedFile::create(&path, 16, Hold::MappingOnly).unwrap();
        w.append(b"abcdefgh").unwrap();
        let reader = Arc::clone(w.shared());
        assert!(w.truncate_exclusive(2, 16).is_err());
        drop(reader);
        w.truncate_exclusive(2, 32).unwrap();
        assert_eq!(w.published(), 2);
        assert_eq!(w.remaining(), 30);
        w.publish(6);
        assert_eq!(w.shared().slice(0, 8).unwrap(), b"ab\0\0\0\0\0\0");
    }

    #[test]
    fn reservation_grows_in_steps_and_readers_keep_the_old_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let capacity = 4 * RESERVE_BYTES_MIN;
        let mut w = MappedFile::create(&path, capacity, Hold::MappingOnly).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RESERVE_BYTES_MIN);
        assert_eq!(w.remaining(), capacity);
        let first = vec![7u8; usize::try_from(RESERVE_BYTES_MIN).unwrap()];
        w.append(&first).unwrap();
        let early = bytes(w.shared(), 0, 16).unwrap();
        let old = Arc::clone(w.shared());
        w.append(b"more").unwrap();
        assert!(
            !Arc::ptr_eq(&old, w.shared()),
            "growth maps a new MappedFile"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * RESERVE_BYTES_MIN
        );
        assert_eq!(&early[..], &[7u8; 16][..]);
        assert_eq!(w.shared().slice(RESERVE_BYTES_MIN, 4).unwrap(), b"more");
        let big = vec![1u8; usize::try_from(2 * RESERVE_BYTES_MIN).unwrap()];
        w.append(&big).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), capacity);
        assert!(
            w.reserve(usize::try_from(RESERVE_BYTES_MIN).unwrap())
                .is_err()
        );
    }

    #[test]
    fn refused_growth_is_no_space_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = MappedFile::create(&path, 4 * RESERVE_BYTES_MIN, Hold::Descriptor).unwrap();
        let fill = vec![3u8; usize::try_from(RESERVE_BYTES_MIN).unwrap()];
        w.append(&fill).unwrap();
        fail_next_fallocate();
        assert!(matches!(w.append(b"x"), Err(Error::NoSpace { .. })));
        assert_eq!(w.published(), RESERVE_BYTES_MIN);
        w.append(b"x").unwrap();
        assert_eq!(w.published(), RESERVE_BYTES_MIN + 1);
    }

    #[test]
    fn a_mapping_only_file_holds_no_descriptor_and_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let count_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = count_fds();
        let mut w = MappedFile::create(&path, 4 * RESERVE_BYTES_MIN, Hold::MappingOnly).unwrap();
        assert!(w.shared().file.is_none());
        // Other tests run in parallel threads and open files too: the count
        // is a bound, and this file must not be one of the open ones.
        let open_now: Vec<_> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .collect();
        assert!(!open_now.contains(&path), "{path:?} is still open");
        let _ = (before, count_fds);
        let fill = vec![5u8; usize::try_from(RESERVE_BYTES_MIN).unwrap() + 8];
        w.append(&fill).unwrap();
        w.shared().sync_data().unwrap();
        w.trim().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            RESERVE_BYTES_MIN + 8
        );
        let r = MappedFile::open(&path, Hold::MappingOnly).unwrap();
        assert_eq!(r.shared().slice(RESERVE_BYTES_MIN, 8).unwrap(), &[5u8; 8]);
    }

    #[test]
    fn reuse_zeroed_writes_over_every_old_byte_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Empty, under a page, across a slice and a page, across a call.
        for old_len in [0, 100, 8192 + 4096 + 1, 64 * 8192 + 3 * 4096 + 7] {
            let path = dir.path().join(format!("{old_len}.index"));
            std::fs::write(&path, vec![0xAB; old_len]).unwrap();
            let mut w = MappedFile::reuse_zeroed(&path, 1 << 20, Hold::MappingOnly).unwrap();
            assert_eq!((w.published(), w.remaining()), (0, 1 << 20));
            let bytes = std::fs::read(&path).unwrap();
            let zeroed = (old_len as u64).next_multiple_of(PAD_PAGE_BYTES);
            assert_eq!(bytes.len() as u64, zeroed.max(RESERVE_BYTES_MIN));
            assert!(bytes.iter().all(|&b| b == 0), "old bytes left in {old_len}");
            // Written from the start, seen through the mapping.
            w.append(b"entry").unwrap();
            assert_eq!(w.shared().slice(0, 5), Some(&b"entry"[..]));
        }
    }

    #[test]
    fn open_publishes_the_whole_file_and_empty_files_map_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"xyz").unwrap();
        let w = MappedFile::open(&path, Hold::Descriptor).unwrap();
        assert_eq!(w.shared().slice(0, 3).unwrap(), b"xyz");
        std::fs::write(&path, b"").unwrap();
        let w = MappedFile::open(&path, Hold::Descriptor).unwrap();
        assert_eq!(w.shared().slice(0, 0).unwrap(), b"");
        assert_eq!(w.remaining(), 0);
    }
}
