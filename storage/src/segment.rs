//! A segment: one `.log` and its `.index` and `.timeindex`, for one base
//! offset.
//!
//! ```text
//! <partition dir>/<base offset, 20 digits>.log        RecordBatch v2 frames back to back
//! <partition dir>/<base offset, 20 digits>.index      see offset_index.rs
//! <partition dir>/<base offset, 20 digits>.timeindex  see time_index.rs
//! ```
//!
//! The `.log` holds the batches exactly as producers sent them, except for
//! `baseOffset` and `partitionLeaderEpoch`, which the leader rewrites
//! (both lie outside the CRC). The active segment's files are reserved in
//! growing steps up to `segment.bytes` / `segment.index.bytes` and trimmed
//! to their real length when the segment rolls or the log closes. Reads go
//! through the mapping; `.log` appends are `pwrite`s into the reserved range.
//!
//! The active segment owns its open files. A sealed (inactive) segment's
//! files are held by the broker-wide [`FileBudget`]: opened on demand,
//! closed when least recently used (`file_budget.rs`).
//!
//! # Invariants
//! - Batches are dense: the first starts at the base offset, each next one
//!   at the previous `lastOffset + 1`; `next_offset` is one past the last.
//! - `size()` (the published length of the `.log`) is the end of the last
//!   whole batch; nothing past it is ever read.
//! - Every offset in the segment is at most `u32::MAX` above the base, and
//!   every position fits a `u32`, so index entries can name them.
//!
//! # References
//! Kafka's `LogSegment`.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::record_batch::{set_base_offset, set_partition_leader_epoch};
use sluice_protocol::{RECORD_BATCH_HEADER_BYTES, RecordBatchView};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::file_budget::{FileBudget, LazyFiles};
use crate::limits;
use crate::mmap::{self, Hold, MapWriter, MappedFile};
use crate::offset::{FilePosition, LeaderEpoch, Offset, RelativeOffset};
use crate::offset_index::OffsetIndex;
use crate::reclaim::Reclaimer;
use crate::region::FileRegion;
use crate::spare_segment::Spare;
use crate::sparse_index::{IndexEntry, SparseIndex};
use crate::time_index::TimeIndex;

/// The header facts of one stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) base: Offset,
    pub(crate) last: Offset,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    /// The header's record count (what a consumer receives of it; 0 for a
    /// header that claims a negative count).
    pub(crate) records: u64,
}

impl BatchMeta {
    pub(crate) fn of(view: &RecordBatchView<'_>) -> Self {
        Self {
            base: Offset(view.base_offset()),
            last: Offset(view.last_offset()),
            size: view.size() as u64,
            max_timestamp: view.max_timestamp(),
            records: u64::try_from(view.records_count()).unwrap_or(0),
        }
    }
}

/// `<dir>/<20-digit base>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base: Offset, ext: &str) -> PathBuf {
    dir.join(format!("{:020}.{ext}", base.0))
}

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";
/// Suffix of a file being deleted (renamed first, then unlinked).
pub(crate) const DELETED_SUFFIX: &str = ".deleted";
/// Suffix of a file being built to replace another (truncation).
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// The open files of one segment.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    pub(crate) log: MapWriter,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
}

impl SegmentFiles {
    /// Opens a sealed segment's files, trusting the indexes (recovery
    /// checked them when the log was opened; they are trimmed to their
    /// entries). The `.log` must be `size` bytes long.
    pub(crate) fn open_sealed(dir: &Path, base: Offset, size: u64) -> Result<Self> {
        // No descriptor kept: readers get the mapping (see `region.rs`).
        let log = MappedFile::open(&segment_path(dir, base, LOG_EXT), Hold::MappingOnly)?;
        if log.published() != size {
            return Err(Error::Corrupt {
                path: log.path().to_path_buf(),
                position: log.published(),
                reason: format!("sealed segment of {size} bytes changed length"),
            });
        }
        Ok(Self {
            log,
            offset_index: OffsetIndex::open_sealed(&segment_path(dir, base, INDEX_EXT))?,
            time_index: TimeIndex::open_sealed(&segment_path(dir, base, TIME_INDEX_EXT))?,
        })
    }
}

/// Where a segment's files are.
#[derive(Debug)]
enum Files {
    /// Owned and open: the active segment, or one being recovered or built.
    Open(SegmentFiles),
    /// Sealed: opened on demand under the budget ([`Segment::release`]).
    Lazy(Arc<LazyFiles>),
}

/// A segment's files for reading: borrowed when owned, shared when lazy.
pub(crate) enum FilesRef<'a> {
    Borrowed(&'a SegmentFiles),
    Shared(Arc<SegmentFiles>),
}

impl Deref for FilesRef<'_> {
    type Target = SegmentFiles;

    fn deref(&self) -> &SegmentFiles {
        match self {
            Self::Borrowed(f) => f,
            Self::Shared(f) => f,
        }
    }
}

/// One segment. See the module docs.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: Offset,
    files: Files,
    pub(crate) next_offset: Offset,
    /// Largest batch max timestamp, `-1` when empty.
    pub(crate) max_timestamp: i64,
    /// Base offset of the first batch that carries `max_timestamp`.
    pub(crate) offset_of_max_timestamp: Offset,
    /// The first batch's max timestamp: the segment.ms clock starts there.
    pub(crate) first_batch_timestamp: Option<i64>,
    /// When this process created or opened the segment (wall clock, ms).
    pub(crate) created_ms: i64,
    pub(crate) bytes_since_index_entry: u64,
    /// `.log` bytes known to be on disk (fdatasync done).
    pub(crate) flushed_bytes: u64,
    /// Whether this process made the `.log` (new or reused), rather than
    /// opened it: only such a file is written over once removed
    /// (`spare_segment.rs`).
    pub(crate) made_here: bool,
    /// Its index files are a removed segment's, emptied here (written
    /// over with zeros), and no sync has made that durable yet: until one
    /// does, a power cut could bring back the removed segment's entries.
    /// Synced before a checkpoint lets recovery trust the segment's
    /// indexes (`PartitionLog::write_checkpoint`).
    pub(crate) reused_indexes_unsynced: bool,
}

impl Segment {
    /// Creates the three files of a new, empty, preallocated segment.
    pub(crate) fn create(
        dir: &Path,
        base: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self> {
        let log_path = segment_path(dir, base, LOG_EXT);
        let log = MappedFile::create(&log_path, config.segment_bytes, Hold::Descriptor)?;
        Self::with_indexes(dir, base, log, config, now_ms, [None, None])
    }

    /// A new, empty segment made of `spare`'s files, renamed to this
    /// segment's names and written over (`spare_segment.rs`): its `.log`,
    /// and its indexes emptied (new ones where the spare's are
    /// missing or cannot be renamed). On failure the spare is given up (to
    /// the reclaimer, under whichever names its files have).
    pub(crate) fn reuse(
        dir: &Path,
        base: Offset,
        config: &LogConfig,
        now_ms: i64,
        spare: Spare,
    ) -> Result<Self> {
        let log_path = segment_path(dir, base, LOG_EXT);
        std::fs::rename(spare.path(), &log_path).map_err(|e| Error::io("rename", &log_path, e))?;
        match MappedFile::reuse(&log_path, config.segment_bytes).and_then(|log| {
            Self::with_indexes(
                dir,
                base,
                log,
                config,
                now_ms,
                spare.index_paths().map(Some),
            )
        }) {
            Ok(seg) => {
                spare.reused();
                Ok(seg)
            }
            Err(e) => {
                // Back under its removed name for the reclaimer, unless
                // the failed index creation already unlinked it.
                if std::fs::rename(&log_path, spare.path()).is_err() {
                    remove_quietly(&log_path);
                }
                Err(e)
            }
        }
    }

    /// `log` (new or reused) with its two index files: the removed ones
    /// in `reused` (`.index`, `.timeindex`), renamed and emptied,
    /// where given and present, new ones otherwise. Removes the `.log`'s
    /// path if they cannot be made.
    fn with_indexes(
        dir: &Path,
        base: Offset,
        log: MapWriter,
        config: &LogConfig,
        now_ms: i64,
        reused: [Option<&Path>; 2],
    ) -> Result<Self> {
        let log_path = log.path().to_path_buf();
        let index_path = segment_path(dir, base, INDEX_EXT);
        let capacity = config.segment_index_bytes;
        let (offset_index, index_reused) = index_file(&index_path, reused[0], capacity)
            .inspect_err(|_| remove_quietly(&log_path))?;
        let time_index_path = segment_path(dir, base, TIME_INDEX_EXT);
        let (time_index, time_index_reused) = index_file(&time_index_path, reused[1], capacity)
            .inspect_err(|_| {
                remove_quietly(&log_path);
                remove_quietly(&index_path);
            })?;
        let mut seg = Self::assemble(base, log, offset_index, time_index, now_ms);
        seg.made_here = true;
        seg.reused_indexes_unsynced = index_reused || time_index_reused;
        Ok(seg)
    }

    pub(crate) fn assemble(
        base: Offset,
        log: MapWriter,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        now_ms: i64,
    ) -> Self {
        Self {
            base,
            files: Files::Open(SegmentFiles {
                log,
                offset_index,
                time_index,
            }),
            next_offset: base,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            first_batch_timestamp: None,
            created_ms: now_ms,
            bytes_since_index_entry: 0,
            flushed_bytes: 0,
            made_here: false,
            reused_indexes_unsynced: false,
        }
    }

    /// Bytes of whole batches in the `.log`.
    pub(crate) fn size(&self) -> u64 {
        match &self.files {
            Files::Open(f) => f.log.published(),
            Files::Lazy(l) => l.size(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next_offset == self.base
    }

    /// The `.log`'s path.
    pub(crate) fn path(&self) -> PathBuf {
        match &self.files {
            Files::Open(f) => f.log.path().to_path_buf(),
            Files::Lazy(l) => l.log_path(),
        }
    }

    /// The files, for reading: opened (under the budget) if they were
    /// closed. A refused descriptor is a retriable `Error::Resource`.
    pub(crate) fn files(&self) -> Result<FilesRef<'_>> {
        match &self.files {
            Files::Open(f) => Ok(FilesRef::Borrowed(f)),
            Files::Lazy(l) => l.get().map(FilesRef::Shared),
        }
    }

    /// The files, owned, for writing: a lazy segment takes its files back
    /// out of the budget (truncation, recovery and rewrites write sealed
    /// segments; appends only the active one).
    pub(crate) fn files_mut(&mut self) -> Result<&mut SegmentFiles> {
        if let Files::Lazy(l) = &self.files {
            let files = l.take()?;
            self.files = Files::Open(files);
        }
        match &mut self.files {
            Files::Open(f) => Ok(f),
            Files::Lazy(l) => Err(Error::Corrupt {
                path: l.log_path(),
                position: 0,
                reason: "segment files not taken back".to_string(),
            }),
        }
    }

    /// Hands a sealed segment's files to `budget`: closed now (descriptor
    /// and maps released once no reader holds them), reopened mapped, with
    /// no descriptor, on the next read. No-op when already lazy.
    pub(crate) fn release(&mut self, dir: &Path, budget: &FileBudget) {
        drop(self.release_files(dir, budget));
    }

    /// [`Self::release`], handing back the files it closes instead of
    /// closing them, for the caller to drop later (`sealed_files.rs`).
    /// `None` when already lazy.
    pub(crate) fn release_files(
        &mut self,
        dir: &Path,
        budget: &FileBudget,
    ) -> Option<SegmentFiles> {
        let Files::Open(files) = &self.files else {
            return None;
        };
        let size = files.log.published();
        let dirty = files.offset_index.is_dirty() || files.time_index.is_dirty();
        let lazy = Files::Lazy(LazyFiles::new(dir, self.base, size, budget, dirty));
        match std::mem::replace(&mut self.files, lazy) {
            Files::Open(files) => Some(files),
            Files::Lazy(_) => None,
        }
    }

    /// Whether a batch of `size` bytes ending at `last` can go here.
    ///
    /// An empty segment takes any batch (as Kafka's does): a batch larger
    /// than `segment.bytes` (up to `max.message.bytes`), or one written
    /// after `segment.bytes` was raised, grows the file past the capacity
    /// it was created with ([`MapWriter::raise_capacity`]).
    ///
    /// A sealed (lazy) segment takes nothing.
    pub(crate) fn fits(&self, size: u64, last: Offset, config: &LogConfig) -> bool {
        let Files::Open(files) = &self.files else {
            return false;
        };
        let end = self.size().saturating_add(size);
        (self.is_empty() || end <= config.segment_bytes)
            && end <= limits::MAX_SEGMENT_BYTES
            && RelativeOffset::between(self.base, last).is_some()
            && !files.offset_index.is_full()
            && !files.time_index.is_full()
    }

    /// Copies one validated batch in and indexes it; returns its position.
    ///
    /// This is the one copy of the record bytes on the append path: the
    /// batch goes from the request buffer into the file's page cache with
    /// `pwrite` (see `MapWriter::append_parts` for why not through the
    /// mapping), the leader's `baseOffset`/`partitionLeaderEpoch` rewritten
    /// in a stack copy of the 61-byte header on the way (both fields lie
    /// outside the CRC, so no re-checksum). The caller checked `fits`.
    pub(crate) fn append_batch(
        &mut self,
        src: &[u8],
        meta: BatchMeta,
        stamp: Option<LeaderEpoch>,
        config: &LogConfig,
    ) -> Result<FilePosition> {
        let pos = self.size();
        let log = &mut self.files_mut()?.log;
        log.raise_capacity(pos.saturating_add(src.len() as u64));
        match stamp {
            Some(epoch) => {
                // The rewritten header goes from a stack copy; the records
                // after it straight from `src`: still one copy per byte.
                let split = src.len().min(RECORD_BATCH_HEADER_BYTES);
                let (head, records) = src.split_at(split);
                let mut header = [0u8; RECORD_BATCH_HEADER_BYTES];
                let header = header.get_mut(..split).unwrap_or_default();
                header.copy_from_slice(head);
                set_base_offset(header, meta.base.0);
                set_partition_leader_epoch(header, epoch.0);
                log.append_parts([header, records])?;
            }
            None => log.append_parts([src])?,
        }
        self.note_batch(pos, meta, config)?;
        Ok(FilePosition(u32::try_from(pos).unwrap_or(u32::MAX)))
    }

    /// Updates the in-memory state and the sparse indexes for a batch now
    /// at `pos`. Shared by append and by recovery's index rebuild, so a
    /// rebuilt index equals the one written on append.
    pub(crate) fn note_batch(
        &mut self,
        pos: u64,
        meta: BatchMeta,
        config: &LogConfig,
    ) -> Result<()> {
        let mut indexed = false;
        if self.bytes_since_index_entry >= u64::from(config.index_interval_bytes) {
            if let (Some(rel), Ok(p)) = (
                RelativeOffset::between(self.base, meta.base),
                u32::try_from(pos),
            ) {
                indexed = self
                    .files_mut()?
                    .offset_index
                    .append(rel, FilePosition(p))?;
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry = self.bytes_since_index_entry.saturating_add(meta.size);
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(meta.max_timestamp);
        }
        if meta.max_timestamp > self.max_timestamp {
            self.max_timestamp = meta.max_timestamp;
            self.offset_of_max_timestamp = meta.base;
        }
        self.next_offset = meta.last.next();
        if indexed {
            self.append_time_entry()?;
        }
        Ok(())
    }

    fn append_time_entry(&mut self) -> Result<()> {
        if self.max_timestamp < 0 {
            return Ok(());
        }
        if let Some(rel) = RelativeOffset::between(self.base, self.offset_of_max_timestamp) {
            let max_timestamp = self.max_timestamp;
            self.files_mut()?.time_index.append(max_timestamp, rel)?;
        }
        Ok(())
    }

    /// [`SegmentView::bytes`].
    pub(crate) fn bytes(&self, pos: u64, len: u64) -> Result<Bytes> {
        self.view()?.bytes(pos, len)
    }

    /// A reading view: the files opened once for several lookups.
    pub(crate) fn view(&self) -> Result<SegmentView<'_>> {
        Ok(SegmentView {
            seg: self,
            files: self.files()?,
        })
    }

    /// [`SegmentView::batch_at`].
    pub(crate) fn batch_at(&self, pos: u64) -> Result<BatchMeta> {
        self.view()?.batch_at(pos)
    }

    /// [`SegmentView::find`].
    pub(crate) fn find(&self, target: Offset) -> Result<Option<(u64, BatchMeta)>> {
        if target >= self.next_offset {
            return Ok(None);
        }
        self.view()?.find(target)
    }

    /// Makes this segment inactive: records the final time-index entry and
    /// trims all three files to their real lengths.
    pub(crate) fn seal(&mut self) -> Result<()> {
        let (max_timestamp, of_max) = (self.max_timestamp, self.offset_of_max_timestamp);
        let base = self.base;
        let files = self.files_mut()?;
        if max_timestamp >= 0
            && let Some(rel) = RelativeOffset::between(base, of_max)
        {
            files.time_index.append(max_timestamp, rel)?;
        }
        // The indexes first: trimming one opens its path (it holds no
        // descriptor), which a descriptor limit can refuse. Refused there,
        // the `.log` is untouched and stays appendable; a trimmed index is
        // full, so the next append rolls and seals again.
        files.offset_index.trim()?;
        files.time_index.trim()?;
        files.log.trim()
    }

    /// fsyncs the indexes whose entries changed since they were last
    /// synced (the `.log` is the flush path's: `PendingFlush`).
    pub(crate) fn sync_indexes(&mut self) -> Result<()> {
        match &mut self.files {
            Files::Open(f) => {
                f.offset_index.sync_if_dirty()?;
                f.time_index.sync_if_dirty()
            }
            Files::Lazy(l) => l.sync_indexes(),
        }
    }

    /// What a flush must fdatasync for this segment's `.log`.
    pub(crate) fn flush_target(&self) -> FlushTarget {
        match &self.files {
            Files::Open(f) => FlushTarget::Open(Arc::clone(f.log.shared())),
            Files::Lazy(l) => FlushTarget::Lazy(Arc::clone(l)),
        }
    }

    /// The time the segment.ms clock runs from.
    pub(crate) fn rolling_base_ms(&self) -> i64 {
        match self.first_batch_timestamp {
            Some(ts) if ts > 0 => ts,
            _ => self.created_ms,
        }
    }

    /// The timestamp retention.ms compares against.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }

    /// Deletes the files: renamed to `*.deleted`, then unlinked, as Kafka
    /// does. Readers holding regions keep the open files.
    pub(crate) fn delete(self, dir: &Path) -> Result<()> {
        delete_files(dir, self.base)
    }
}

/// A `.log` with bytes a flush must make durable.
#[derive(Debug)]
pub(crate) enum FlushTarget {
    Open(Arc<MappedFile>),
    /// Sealed: synced through its open descriptor, or one opened for it.
    Lazy(Arc<LazyFiles>),
}

impl FlushTarget {
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            Self::Open(f) => f.path().to_path_buf(),
            Self::Lazy(l) => l.log_path(),
        }
    }

    pub(crate) fn sync_data(&self) -> Result<()> {
        match self {
            Self::Open(f) => f.sync_data(),
            Self::Lazy(l) => l.sync_log(),
        }
    }
}

/// A segment with its files open for reading (see [`Segment::view`]).
pub(crate) struct SegmentView<'a> {
    seg: &'a Segment,
    files: FilesRef<'a>,
}

impl SegmentView<'_> {
    /// The header of the batch at `pos` (no CRC check: stored batches were
    /// checked on append or by recovery).
    pub(crate) fn batch_at(&self, pos: u64) -> Result<BatchMeta> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.files.log.path().to_path_buf(),
            position: pos,
            reason,
        };
        let tail = self
            .files
            .log
            .shared()
            .tail(pos)
            .ok_or_else(|| corrupt("position past the end".to_string()))?;
        RecordBatchView::parse(tail, limits::MAX_STORED_BATCH_BYTES)
            .map(|v| BatchMeta::of(&v))
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Where a scan for `target` may start: an index entry at or below it.
    fn scan_start(&self, target: Offset) -> u64 {
        RelativeOffset::between(self.seg.base, target)
            .and_then(|rel| self.files.offset_index.lookup(rel))
            .map_or(0, |e| e.position.get())
    }

    /// The batch holding `target` (its last offset `>= target`), if any.
    pub(crate) fn find(&self, target: Offset) -> Result<Option<(u64, BatchMeta)>> {
        if target >= self.seg.next_offset {
            return Ok(None);
        }
        let mut pos = self.scan_start(target);
        while pos < self.seg.size() {
            let meta = self.batch_at(pos)?;
            if meta.last >= target {
                return Ok(Some((pos, meta)));
            }
            pos += meta.size;
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is `>= ts` and whose last
    /// offset is `>= not_before` (the log start offset), if any.
    pub(crate) fn find_by_timestamp(
        &self,
        ts: i64,
        not_before: Offset,
    ) -> Result<Option<(u64, BatchMeta)>> {
        if self.seg.max_timestamp < ts {
            return Ok(None);
        }
        let mut pos = self
            .files
            .time_index
            .lookup(ts)
            .map_or(0, |e| self.scan_start(e.relative.absolute(self.seg.base)));
        while pos < self.seg.size() {
            let meta = self.batch_at(pos)?;
            if meta.max_timestamp >= ts && meta.last >= not_before {
                return Ok(Some((pos, meta)));
            }
            pos += meta.size;
        }
        Ok(None)
    }

    /// `len` bytes at `pos` of the `.log` holding `records` records, to be
    /// written to a socket from the mapping.
    pub(crate) fn region(&self, pos: u64, len: u64, records: u64) -> FileRegion {
        FileRegion::new(Arc::clone(self.files.log.shared()), pos, len, records)
    }

    pub(crate) fn bytes(&self, pos: u64, len: u64) -> Result<Bytes> {
        mmap::bytes(self.files.log.shared(), pos, len).ok_or_else(|| Error::Corrupt {
            path: self.files.log.path().to_path_buf(),
            position: pos,
            reason: format!("{len} bytes past the end"),
        })
    }
}

/// Renames a segment's three files to `*.deleted` and unlinks them.
pub(crate) fn delete_files(dir: &Path, base: Offset) -> Result<()> {
    rename_to_deleted(dir, base)?;
    unlink_deleted(dir, base)
}

/// The first half of a deletion: a segment's files renamed to
/// `*.deleted` (metadata only, no data is freed). A file already gone is
/// skipped. Recovery unlinks every `*.deleted` it finds.
pub(crate) fn rename_to_deleted(dir: &Path, base: Offset) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        let path = segment_path(dir, base, ext);
        match std::fs::rename(&path, deleted_path(&path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("rename", &path, e)),
        }
    }
    Ok(())
}

/// The second half: unlinks the `*.deleted` files of `base` (freeing
/// their blocks and page cache, which for a large segment takes the file
/// system tens of milliseconds). A file already gone is skipped.
pub(crate) fn unlink_deleted(dir: &Path, base: Offset) -> Result<()> {
    for deleted in deleted_paths(dir, base) {
        match std::fs::remove_file(&deleted) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("unlink", deleted, e)),
        }
    }
    Ok(())
}

/// The `*.deleted` names of `base`'s files: `.log`, `.index`, `.timeindex`.
pub(crate) fn deleted_paths(dir: &Path, base: Offset) -> [PathBuf; 3] {
    [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT].map(|ext| deleted_path(&segment_path(dir, base, ext)))
}

/// The second half of a deletion off the lock: hands the `*.deleted`
/// files of `base` to `reclaimer` (which frees them once unmapped).
pub(crate) fn reclaim_deleted(dir: &Path, base: Offset, reclaimer: &Reclaimer) {
    for path in deleted_paths(dir, base) {
        reclaimer.remove_file(path);
    }
}

fn deleted_path(path: &Path) -> PathBuf {
    let mut deleted = path.as_os_str().to_os_string();
    deleted.push(DELETED_SUFFIX);
    PathBuf::from(deleted)
}

/// The index file at `path`: `reused` (a removed segment's index) renamed
/// there and emptied, if it is given and can be renamed; else a new
/// one. Whether it was reused.
fn index_file<E: IndexEntry>(
    path: &Path,
    reused: Option<&Path>,
    capacity_bytes: u64,
) -> Result<(SparseIndex<E>, bool)> {
    if let Some(old) = reused
        && std::fs::rename(old, path).is_ok()
    {
        return SparseIndex::reuse(path, capacity_bytes)
            .map(|index| (index, true))
            .inspect_err(|_| remove_quietly(path));
    }
    SparseIndex::create(path, capacity_bytes).map(|index| (index, false))
}

fn remove_quietly(path: &Path) {
    // Cleanup after a failed create; a leftover is removed at next open.
    let _ = std::fs::remove_file(path);
}
