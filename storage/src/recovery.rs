//! Opening a partition directory: find the real end of the log.
//!
//! 1. Leftovers of interrupted operations are removed: `*.deleted`,
//!    `*.swap`, `*.tmp`, and index files without a `.log`.
//! 2. Segments are listed by the 20-digit base offset in their names.
//! 3. Each segment is either *trusted* or *scanned*:
//!    - trusted (the clean-shutdown marker is valid, or the whole segment
//!      lies below the checkpoint's recovery point): its indexes are loaded
//!      and sanity-checked, and only the batches after the last `.index`
//!      entry are scanned to find the end;
//!    - scanned (everything from the segment holding the recovery point
//!      on, after an unclean stop): every batch is checked (length bounds,
//!      magic, CRC-32C, dense offsets) and both indexes are rebuilt.
//! 4. The first batch that fails at or above the recovery point ends the
//!    log: the segment is truncated there (one `warn` with path and
//!    position) and every later segment is deleted. A zero-filled header
//!    (the preallocated tail of the active segment) is the end, not
//!    corruption; so is an intact batch of offsets below the segment's
//!    base (what a reused file held before: `spare_segment.rs`). A segment whose base offset does not continue the
//!    previous one also ends the log, unless it lies wholly inside the
//!    previous one: the leftover of a compaction's merge that committed
//!    (`compaction/swap.rs`), deleted.
//! 5. A failure *below* the recovery point (bytes fsynced before) is
//!    damage, not a torn write: nothing is cut or deleted, it is logged
//!    once at `error`, and the log opens damaged (every call returns
//!    `Error::Damaged`) until an operator repairs the files.
//! 6. A new directory (no segment, no checkpoint) skips all of this: one
//!    empty segment, no fsync, no checkpoint.
//! 7. A trusted segment whose index fails its checks, or whose tail scan
//!    meets a bad batch, is scanned in full instead: indexes are never
//!    trusted over the `.log`.
//! 8. After an unclean start, the scanned segments are fsynced, so the
//!    recovery point is the log end offset when `open` returns: a batch
//!    served after recovery cannot be taken back by a later power cut.
//!
//! # Invariants
//! - Recovery never cuts or deletes a byte below the recovery point.
//! - After recovery (of a log that is not damaged) every byte of every
//!   segment up to its size is a well-formed batch (CRC-checked unless it was fsynced before the
//!   recovery point or closed cleanly), offsets are dense, and nothing
//!   past the end is ever read: the tail is cut and re-reserved as zeros.
//! - The clean-shutdown marker must also name the log end offset that the
//!   trusted open finds; if not, the open is redone as unclean.
//!
//! # References
//! Kafka's `LogLoader` and `LogSegment.recover`.

use std::path::{Path, PathBuf};

use sluice_protocol::{RECORD_BATCH_HEADER_BYTES, RecordBatchView};

use crate::checkpoint::{self, Checkpoint};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::limits;
use crate::mmap::{Hold, MappedFile};
use crate::offset::{Offset, RelativeOffset};
use crate::offset_index::OffsetIndex;
use crate::segment::{
    self, BatchMeta, DELETED_SUFFIX, INDEX_EXT, LOG_EXT, SWAP_SUFFIX, Segment, TIME_INDEX_EXT,
};
use crate::time_index::TimeIndex;

/// What recovery found.
pub(crate) struct Recovered {
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start: Offset,
    pub(crate) recovery_point: Offset,
    /// What the checkpoint file says now. A missing one is read as
    /// `{recovery point, log start} = {first base, first base}`, which
    /// recovery treats exactly alike (scan every segment, start at the
    /// first), so an unchanged log never rewrites it.
    pub(crate) on_disk: Checkpoint,
    /// Files were created whose directory entries are not fsynced yet: the
    /// first flush must sync the directory.
    pub(crate) dir_unsynced: bool,
    /// Damage below the recovery point stopped recovery (module docs).
    pub(crate) damage: Option<Damage>,
}

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// End of file or a zero-filled header at `position`: the clean end.
    End { position: u64 },
    /// A batch that is not valid: torn write or corruption.
    Bad { position: u64, reason: String },
}

pub(crate) fn recover(dir: &Path, config: &LogConfig, now_ms: i64) -> Result<Recovered> {
    let mut changed = remove_leftovers(dir)?;
    let bases = list_bases(dir)?;
    let ckpt = Checkpoint::read(dir)?;
    if bases.is_empty() && ckpt.is_none() {
        return create_fresh(dir, config, now_ms);
    }
    let marker = checkpoint::read_clean_shutdown(dir)?;
    let rp = ckpt.map(|c| c.recovery_point);
    let (mut segments, mut deleted, mut damage) =
        recover_segments(dir, &bases, config, rp, marker.is_some(), now_ms)?;
    let end = segments.last().map(|s| s.next_offset);
    if marker.is_some() && end != marker {
        tracing::warn!(dir = %dir.display(), ?marker, ?end, "clean-shutdown marker disagrees with the log; recovering as unclean");
        drop(segments);
        let bases = list_bases(dir)?;
        (segments, deleted, damage) = recover_segments(dir, &bases, config, rp, false, now_ms)?;
    }
    if let Some(damage) = damage {
        return Ok(damaged(segments, damage, ckpt));
    }
    changed |= deleted;
    let ckpt_start = ckpt.map_or(Offset::ZERO, |c| c.log_start_offset);
    if segments.is_empty() {
        segments.push(Segment::create(
            dir,
            ckpt_start.max(Offset::ZERO),
            config,
            now_ms,
        )?);
        changed = true;
    }
    let first_base = segments.first().map_or(Offset::ZERO, |s| s.base);
    let log_end = segments.last().map_or(Offset::ZERO, |s| s.next_offset);
    if marker.is_none() || end != marker {
        // What recovery kept is what will be served: make it durable now,
        // so a reader never sees a batch that a later power cut takes
        // back, and the next crash need not scan these segments again.
        // Segments wholly below the old recovery point were fsynced, their
        // directory entries with them; when nothing lies above it and no
        // file came or went, there is nothing to sync (an idle partition
        // after a kill -9 costs no fsync).
        let old_rp = rp.unwrap_or(first_base);
        for seg in segments.iter().filter(|s| s.next_offset > old_rp) {
            seg.files()?.log.shared().sync_data()?;
            changed = true;
        }
        if changed {
            checkpoint::sync_dir(dir)?;
        }
    }
    for seg in &mut segments {
        seg.flushed_bytes = seg.size();
    }
    if let Some(active) = segments.last_mut() {
        let size = active.size();
        let files = active.files_mut()?;
        files
            .log
            .truncate_exclusive(size, config.segment_bytes.max(size))?;
        files
            .offset_index
            .reserve_capacity(config.segment_index_bytes)?;
        files
            .time_index
            .reserve_capacity(config.segment_index_bytes)?;
    }
    Ok(Recovered {
        segments,
        log_start: ckpt_start.max(first_base),
        recovery_point: log_end,
        on_disk: ckpt.unwrap_or(Checkpoint {
            recovery_point: first_base,
            log_start_offset: first_base,
        }),
        dir_unsynced: false,
        damage: None,
    })
}

/// What recovery hands back for damage below the recovery point: the
/// segments as found, none cut or re-reserved (`PartitionLog` refuses
/// every call on such a log, so none of them is written).
fn damaged(segments: Vec<Segment>, damage: Damage, ckpt: Option<Checkpoint>) -> Recovered {
    tracing::error!(path = %damage.path.display(), position = damage.position, reason = %damage.reason, "damage below the recovery point: the partition is not served until an operator repairs it; no segment was cut or deleted");
    let first_base = segments.first().map_or(Offset::ZERO, |s| s.base);
    let end = segments.last().map_or(first_base, |s| s.next_offset);
    let on_disk = ckpt.unwrap_or(Checkpoint {
        recovery_point: first_base,
        log_start_offset: first_base,
    });
    Recovered {
        segments,
        log_start: on_disk.log_start_offset.max(first_base).min(end),
        recovery_point: end,
        on_disk,
        dir_unsynced: false,
        damage: Some(damage),
    }
}

/// A directory with no segment and no checkpoint: a new partition (the
/// broker may have put its own metadata file there first). Nothing to
/// recover: one empty segment, no checkpoint written (a missing one says
/// the same for an empty log) and no fsync here. The segment's directory
/// entries are synced by the first flush, before any batch counts as
/// durable; losing them to a power cut before that loses no batch, and the
/// next open makes the segment again.
fn create_fresh(dir: &Path, config: &LogConfig, now_ms: i64) -> Result<Recovered> {
    let segment = Segment::create(dir, Offset::ZERO, config, now_ms)?;
    Ok(Recovered {
        segments: vec![segment],
        log_start: Offset::ZERO,
        recovery_point: Offset::ZERO,
        on_disk: Checkpoint {
            recovery_point: Offset::ZERO,
            log_start_offset: Offset::ZERO,
        },
        dir_unsynced: true,
        damage: None,
    })
}

/// Damage found below the recovery point: bytes that were fsynced and no
/// longer read back as the batches they were. Never a torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) path: PathBuf,
    pub(crate) position: u64,
    pub(crate) reason: String,
}

/// The segments recovered, whether any file was deleted, and the damage
/// that stopped recovery (then nothing was cut or deleted, and the last
/// segment is the damaged one, left as found).
type Segments = (Vec<Segment>, bool, Option<Damage>);

fn recover_segments(
    dir: &Path,
    bases: &[Offset],
    config: &LogConfig,
    rp: Option<Offset>,
    clean: bool,
    now_ms: i64,
) -> Result<Segments> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut deleted = false;
    // Whether offset `o` lies below the recovery point: fsynced, so a
    // failure there is damage, not a torn tail.
    let fsynced = |o: Offset| rp.is_some_and(|rp| o < rp);
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = segments.last()
            && base < prev.next_offset
            && covered_by_merge(dir, base, prev.next_offset, config, now_ms)?
        {
            tracing::info!(path = %segment::segment_path(dir, base, LOG_EXT).display(), merged_into = %prev.base, "deleting a segment an interrupted compaction merged into the one before it");
            segment::delete_files(dir, base)?;
            deleted = true;
            continue;
        }
        if let Some(prev) = segments.last()
            && prev.next_offset != base
        {
            if fsynced(prev.next_offset) {
                let damage = Damage {
                    path: segment::segment_path(dir, base, LOG_EXT),
                    position: 0,
                    reason: format!(
                        "segment starts at offset {base} where {} was expected",
                        prev.next_offset
                    ),
                };
                return Ok((segments, deleted, Some(damage)));
            }
            tracing::warn!(dir = %dir.display(), expected = %prev.next_offset, found = %base, "segment does not continue the log; deleting it and later segments");
            delete_from(dir, bases.get(i..).unwrap_or_default())?;
            deleted = true;
            break;
        }
        let below_rp = bases
            .get(i + 1)
            .is_some_and(|next| rp.is_some_and(|rp| *next <= rp));
        let (seg, stop) = recover_segment(dir, base, config, clean || below_rp, now_ms)?;
        if let Stop::Bad { position, reason } = &stop
            && fsynced(seg.next_offset)
        {
            let damage = Damage {
                path: segment::segment_path(dir, base, LOG_EXT),
                position: *position,
                reason: reason.clone(),
            };
            segments.push(seg);
            return Ok((segments, deleted, Some(damage)));
        }
        let (seg, stop) = finish(seg, stop)?;
        segments.push(seg);
        if let Stop::Bad { position, reason } = stop {
            tracing::warn!(path = %segment::segment_path(dir, base, LOG_EXT).display(), position, reason, "truncating torn or corrupt log tail");
            delete_from(dir, bases.get(i + 1..).unwrap_or_default())?;
            deleted = true;
            break;
        }
    }
    Ok((segments, deleted, None))
}

/// Whether the segment at `base`, which starts inside the segment before
/// it (ending at `prev_end`), lies wholly inside it: the leftover of a
/// compaction that merged it into that one and stopped before deleting it
/// (`compaction/swap.rs`, step 4). Its batches are scanned up to the
/// first bad one (a leftover written with `page_cache` durability may be
/// torn by a power cut; the merged segment was fdatasynced before the
/// commit): one reaching past `prev_end` is not a leftover.
fn covered_by_merge(
    dir: &Path,
    base: Offset,
    prev_end: Offset,
    config: &LogConfig,
    now_ms: i64,
) -> Result<bool> {
    let (seg, _stop) = recover_segment(dir, base, config, false, now_ms)?;
    Ok(seg.next_offset <= prev_end)
}

fn delete_from(dir: &Path, bases: &[Offset]) -> Result<()> {
    for &base in bases {
        segment::delete_files(dir, base)?;
    }
    Ok(())
}

/// Opens one segment and finds its end; see the module docs. The files
/// are not cut yet: the caller decides ([`finish`]).
fn recover_segment(
    dir: &Path,
    base: Offset,
    config: &LogConfig,
    trusted: bool,
    now_ms: i64,
) -> Result<(Segment, Stop)> {
    let log = MappedFile::open(&segment::segment_path(dir, base, LOG_EXT), Hold::Descriptor)?;
    let (oi, oi_sane) = open_or_create(
        dir,
        base,
        INDEX_EXT,
        config,
        OffsetIndex::open,
        OffsetIndex::create,
    )?;
    let (ti, ti_sane) = open_or_create(
        dir,
        base,
        TIME_INDEX_EXT,
        config,
        TimeIndex::open,
        TimeIndex::create,
    )?;
    let mut seg = Segment::assemble(base, log, oi, ti, now_ms);
    if trusted
        && oi_sane
        && ti_sane
        && let Some(stop) = resume_from_index(&mut seg, config)?
    {
        return Ok((seg, stop));
    }
    rebuild(&mut seg, config)?;
    let stop = scan(&mut seg, 0, config)?;
    Ok((seg, stop))
}

type Opener<I> = fn(&Path) -> Result<(I, bool)>;
type Creator<I> = fn(&Path, u64) -> Result<I>;

fn open_or_create<I>(
    dir: &Path,
    base: Offset,
    ext: &str,
    config: &LogConfig,
    open: Opener<I>,
    create: Creator<I>,
) -> Result<(I, bool)> {
    let path = segment::segment_path(dir, base, ext);
    if path.exists() {
        open(&path)
    } else {
        tracing::info!(path = %path.display(), "index missing; rebuilding it");
        Ok((create(&path, config.segment_index_bytes)?, false))
    }
}

/// Trusted path: continue from the last `.index` entry. `None` when the
/// indexes do not agree with the `.log` and a full rebuild is needed.
fn resume_from_index(seg: &mut Segment, config: &LogConfig) -> Result<Option<Stop>> {
    let (start, next) = match seg.files()?.offset_index.last() {
        Some(e) => (e.position.get(), e.relative.absolute(seg.base)),
        None => (0, seg.base),
    };
    if start > 0 {
        match seg.batch_at(start) {
            Ok(meta) if meta.base == next => {}
            _ => return Ok(None),
        }
    }
    if seg.size() > 0
        && let Ok(first) = seg.batch_at(0)
    {
        seg.first_batch_timestamp = Some(first.max_timestamp);
    }
    let last_time = seg.files()?.time_index.last();
    if let Some(t) = last_time {
        seg.max_timestamp = t.timestamp;
        seg.offset_of_max_timestamp = t.relative.absolute(seg.base);
    }
    seg.next_offset = next;
    let stop = scan(seg, start, config)?;
    let time_ok = seg.files()?.time_index.last().is_none_or(|t| {
        t.relative.absolute(seg.base) < seg.next_offset && t.timestamp <= seg.max_timestamp
    });
    if !matches!(stop, Stop::End { .. }) || !time_ok {
        return Ok(None);
    }
    Ok(Some(stop))
}

/// Drops the index entries and in-memory state before a full scan.
fn rebuild(seg: &mut Segment, config: &LogConfig) -> Result<()> {
    let files = seg.files_mut()?;
    files.offset_index.reset(config.segment_index_bytes)?;
    files.time_index.reset(config.segment_index_bytes)?;
    seg.next_offset = seg.base;
    seg.max_timestamp = -1;
    seg.offset_of_max_timestamp = seg.base;
    seg.first_batch_timestamp = None;
    seg.bytes_since_index_entry = 0;
    Ok(())
}

/// Cuts the segment at its real end and seals it (the caller re-opens the
/// last segment for appends).
fn finish(mut seg: Segment, stop: Stop) -> Result<(Segment, Stop)> {
    let (Stop::Bad { position: end, .. } | Stop::End { position: end }) = stop;
    seg.files_mut()?.log.truncate_exclusive(end, end)?;
    seg.seal()?;
    Ok((seg, stop))
}

/// Checks batches from `pos` on, indexing each; stops at the first that
/// is not a valid, dense continuation of the segment.
fn scan(seg: &mut Segment, mut pos: u64, config: &LogConfig) -> Result<Stop> {
    let file = std::sync::Arc::clone(seg.files()?.log.shared());
    loop {
        let Some(rest) = file.tail(pos) else {
            return Ok(Stop::End { position: pos });
        };
        if is_zero_header(rest) {
            return Ok(Stop::End { position: pos });
        }
        let meta = match check_batch(rest, seg.base, seg.next_offset) {
            Ok(Found::Batch(meta)) => meta,
            Ok(Found::Earlier) => return Ok(Stop::End { position: pos }),
            Err(reason) => {
                return Ok(Stop::Bad {
                    position: pos,
                    reason,
                });
            }
        };
        seg.note_batch(pos, meta, config)?;
        pos += meta.size;
    }
}

/// The end of the written part: nothing left, or a header of zeros.
fn is_zero_header(rest: &[u8]) -> bool {
    rest.iter().take(RECORD_BATCH_HEADER_BYTES).all(|&b| b == 0)
}

/// What [`check_batch`] found at a position.
enum Found {
    /// The dense continuation of the segment.
    Batch(BatchMeta),
    /// A whole, intact batch of offsets below the segment's base: the
    /// bytes a reused file held before (`spare_segment.rs`), which end
    /// the segment as a zeroed header does.
    Earlier,
}

fn check_batch(rest: &[u8], base: Offset, expected: Offset) -> Result<Found, String> {
    let view =
        RecordBatchView::parse(rest, limits::MAX_STORED_BATCH_BYTES).map_err(|e| e.to_string())?;
    view.verify_crc().map_err(|e| e.to_string())?;
    let meta = BatchMeta::of(&view);
    if meta.last < base && meta.base <= meta.last {
        return Ok(Found::Earlier);
    }
    if meta.base != expected {
        return Err(format!(
            "batch base offset {} where {} was expected",
            meta.base, expected
        ));
    }
    if meta.last < meta.base || RelativeOffset::between(base, meta.last).is_none() {
        return Err(format!("batch last offset {} out of range", meta.last));
    }
    Ok(Found::Batch(meta))
}

fn list_bases(dir: &Path) -> Result<Vec<Offset>> {
    offsets_named(dir, LOG_EXT)
}

/// The offsets `<20 digits>.<ext>` files in `dir` are named by, sorted.
pub(crate) fn offsets_named(dir: &Path, ext: &str) -> Result<Vec<Offset>> {
    let mut offsets = Vec::new();
    for name in file_names(dir)? {
        if let Some(stem) = name.strip_suffix(ext).and_then(|n| n.strip_suffix('.'))
            && stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(Offset(offset));
        }
    }
    offsets.sort();
    Ok(offsets)
}

fn file_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("readdir", dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("readdir", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Removes what interrupted deletes, truncations and checkpoint writes
/// left behind, and index files whose `.log` is gone; whether it removed
/// anything.
fn remove_leftovers(dir: &Path) -> Result<bool> {
    let names = file_names(dir)?;
    let mut removed_any = false;
    for name in &names {
        let leftover = name.ends_with(DELETED_SUFFIX)
            || name.ends_with(SWAP_SUFFIX)
            || name.ends_with(checkpoint::TMP_SUFFIX);
        let orphan = [INDEX_EXT, TIME_INDEX_EXT].iter().any(|ext| {
            name.strip_suffix(&format!(".{ext}"))
                .is_some_and(|stem| !names.contains(&format!("{stem}.{LOG_EXT}")))
        });
        if leftover || orphan {
            let path = dir.join(name);
            // `truncate_to` builds its copy in a `<base>.swap/` directory.
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| Error::io("unlink", path, e))?;
            removed_any = true;
        }
    }
    Ok(removed_any)
}

#[cfg(test)]
mod tests {
    use crate::test_util::{batch, small_config};
    use crate::{Error, LeaderEpoch, LogConfig, Offset, PartitionLog};
    use std::path::{Path, PathBuf};

    const TS: i64 = 1_700_000_000_000;

    fn open(dir: &Path) -> PartitionLog {
        PartitionLog::open(dir, small_config()).unwrap()
    }

    /// 400-byte batches of two offsets: ten per 4 KiB segment.
    fn append(log: &mut PartitionLog, n: i64) {
        for i in 0..n {
            log.append_as_leader(&batch(0, 2, TS + i, 339), LeaderEpoch(1), 0)
                .unwrap();
        }
    }

    fn seg(dir: &Path, base: i64, ext: &str) -> PathBuf {
        dir.join(format!("{base:020}.{ext}"))
    }

    fn all_offsets(log: &PartitionLog) -> Vec<i64> {
        let r = log
            .read(log.log_start_offset(), u32::MAX, log.log_end_offset(), true)
            .unwrap();
        let mut out = Vec::new();
        for region in &r.regions {
            let b = region.bytes();
            for item in sluice_protocol::BatchIter::new(&b, 1 << 20) {
                let (_, v) = item.unwrap();
                v.verify_crc().unwrap();
                out.extend(v.base_offset()..=v.last_offset());
            }
        }
        out
    }

    #[test]
    fn clean_close_reopens_without_loss_and_removes_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 15);
        log.close().unwrap();
        assert!(dir.path().join("clean.shutdown").exists());
        assert_eq!(
            std::fs::metadata(seg(dir.path(), 20, "log")).unwrap().len(),
            2000
        );
        let mut log = open(dir.path());
        assert!(!dir.path().join("clean.shutdown").exists());
        assert_eq!(log.log_end_offset(), Offset(30));
        assert_eq!(log.recovery_point(), Offset(30));
        assert_eq!(all_offsets(&log), (0..30).collect::<Vec<_>>());
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), Offset(32));
    }

    #[test]
    fn crash_with_a_zeroed_preallocated_tail_finds_the_real_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 13);
        drop(log.simulate_crash());
        assert_eq!(
            std::fs::metadata(seg(dir.path(), 20, "log")).unwrap().len(),
            4096
        );
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(26));
        assert_eq!(all_offsets(&log), (0..26).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_is_truncated_to_the_last_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 13);
        log.flush().unwrap();
        drop(log.simulate_crash());
        let path = seg(dir.path(), 20, "log");
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(1000).unwrap(); // batches 20..=23 whole, 24 torn mid-way
        let mut log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(24));
        assert_eq!(all_offsets(&log).len(), 24);
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), Offset(26));
    }

    #[test]
    fn corrupt_byte_truncates_there_and_deletes_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 25);
        drop(log.simulate_crash());
        let path = seg(dir.path(), 0, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1250] ^= 0xff; // inside the 4th batch (offsets 6, 7)
        std::fs::write(&path, &bytes).unwrap();
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(6));
        assert_eq!(log.segment_count(), 1);
        assert!(!seg(dir.path(), 20, "log").exists());
        assert!(!seg(dir.path(), 40, "log").exists());
        assert_eq!(all_offsets(&log), (0..6).collect::<Vec<_>>());
    }

    /// Every `.log` file's bytes, by name.
    fn log_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// Issue 13: damage below the recovery point (fsynced bytes that no
    /// longer check) is reported and refuses the partition; it never cuts
    /// the segment or deletes the later ones, and a repaired file serves
    /// everything again.
    #[test]
    fn damage_below_the_recovery_point_deletes_nothing_and_refuses_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 5); // offsets 0..10, in the first segment
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        append(&mut log, 20); // offsets 10..50: two more segments, unflushed
        assert_eq!(log.segment_count(), 3);
        drop(log.simulate_crash());
        // The recovery point (10) lies in the first segment, so recovery
        // scans it whole and meets the flipped byte of batch 6..=7.
        let path = seg(dir.path(), 0, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1250] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let before = log_files(dir.path());

        let mut log = open(dir.path());
        assert!(log.is_damaged());
        let refused = |e: Error| matches!(e, Error::Damaged { position: 1200, .. });
        assert!(refused(
            log.read(Offset(0), 100, Offset(50), true).unwrap_err()
        ));
        assert!(refused(
            log.append_as_leader(&batch(0, 1, TS, 1), LeaderEpoch(1), 0)
                .unwrap_err()
        ));
        assert!(
            log.read(Offset(0), 100, Offset(50), true)
                .unwrap_err()
                .is_storage_error()
        );
        assert!(
            !log.health().is_poisoned(),
            "one partition, not the log directory"
        );
        assert!(refused(log.close().unwrap_err()));
        assert_eq!(log_files(dir.path()), before, "no segment cut or deleted");

        // An operator restores the byte (from a replica, a backup): all of
        // it is served again, the unflushed segments included.
        bytes[1250] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = open(dir.path());
        assert!(!log.is_damaged());
        assert_eq!(all_offsets(&log), (0..50).collect::<Vec<_>>());
    }

    /// The other places: a torn last segment above the recovery point is
    /// cut at its first bad batch and nothing before it is touched.
    #[test]
    fn a_torn_last_segment_above_the_recovery_point_is_cut_there_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 20); // offsets 0..40: segments 0 and 20
        log.flush().unwrap();
        log.checkpoint_recovery_point().unwrap();
        append(&mut log, 5); // offsets 40..50 in segment 40, unflushed
        drop(log.simulate_crash());
        let before = log_files(dir.path());
        let path = seg(dir.path(), 40, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[850] ^= 0xff; // batch 44..=45
        std::fs::write(&path, &bytes).unwrap();
        let log = open(dir.path());
        assert!(!log.is_damaged());
        assert_eq!(all_offsets(&log), (0..44).collect::<Vec<_>>());
        let after = log_files(dir.path());
        assert_eq!(after[..2], before[..2], "segments below untouched");
        assert_eq!(after[2].1[..800], before[2].1[..800]);
        assert!(
            after[2].1[800..].iter().all(|&b| b == 0),
            "cut, then re-reserved as zeros"
        );
    }

    #[test]
    fn missing_and_garbage_indexes_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 25);
        log.close().unwrap();
        let index = seg(dir.path(), 0, "index");
        let good = std::fs::read(&index).unwrap();
        std::fs::remove_file(&index).unwrap();
        std::fs::write(
            seg(dir.path(), 20, "index"),
            b"\xff\xff\xff\xff\0\0\0\x01garbage",
        )
        .unwrap();
        std::fs::write(seg(dir.path(), 20, "timeindex"), [7u8; 24]).unwrap();
        let log = open(dir.path());
        assert_eq!(
            std::fs::read(&index).unwrap().len(),
            good.len(),
            "rebuilt and trimmed"
        );
        assert_eq!(log.log_end_offset(), Offset(50));
        for o in [0, 7, 19, 20, 33, 49] {
            let r = log.read(Offset(o), 1, Offset(50), true).unwrap();
            assert_eq!(r.first_offset, Some(Offset(o - o % 2)), "offset {o}");
        }
        log.close().unwrap();
        assert_eq!(
            std::fs::read(&index).unwrap(),
            good,
            "rebuilt index equals the original"
        );
    }

    #[test]
    fn an_index_pointing_past_the_log_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 25);
        log.close().unwrap();
        // Increasing, sane-looking entries that point nowhere real.
        let mut fake = Vec::new();
        for (rel, pos) in [(2u32, 401u32), (4, 777)] {
            fake.extend(rel.to_be_bytes());
            fake.extend(pos.to_be_bytes());
        }
        std::fs::write(seg(dir.path(), 0, "index"), &fake).unwrap();
        let log = open(dir.path());
        assert_eq!(all_offsets(&log), (0..50).collect::<Vec<_>>());
        let r = log.read(Offset(5), 1, Offset(50), true).unwrap();
        assert_eq!(r.first_offset, Some(Offset(4)));
    }

    #[test]
    fn checkpoint_with_a_bad_crc_is_ignored_and_everything_is_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 25);
        log.flush().unwrap();
        drop(log.advance_log_start_offset(Offset(4)).unwrap());
        drop(log.simulate_crash());
        let ckpt = dir.path().join("partition.checkpoint");
        let mut b = std::fs::read(&ckpt).unwrap();
        b[9] ^= 0x10;
        std::fs::write(&ckpt, &b).unwrap();
        // Corrupt a trusted-if-checkpointed segment: only a full scan sees it.
        let path = seg(dir.path(), 0, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3900] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(18));
        assert_eq!(
            log.log_start_offset(),
            Offset(0),
            "safe fallback: first segment base"
        );
        assert_eq!(
            log.recovery_point(),
            Offset(18),
            "recovery fsyncs what it keeps"
        );
    }

    #[test]
    fn a_marker_that_disagrees_with_the_files_means_an_unclean_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        append(&mut log, 5);
        log.close().unwrap();
        crate::checkpoint::write_clean_shutdown(dir.path(), Offset(99)).unwrap();
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(10));
        assert_eq!(log.recovery_point(), Offset(10), "checkpointed at close");
    }

    #[test]
    fn an_intact_batch_below_the_segment_base_ends_it_and_any_other_misfit_is_bad() {
        use super::{Found, check_batch};
        let check = |first: i64, count: i32| {
            check_batch(&batch(first, count, 0, 10), Offset(100), Offset(120))
        };
        assert!(matches!(check(120, 3), Ok(Found::Batch(m)) if m.last == Offset(122)));
        // A reused file's old bytes: all of the batch below the base.
        assert!(matches!(check(5, 3), Ok(Found::Earlier)));
        assert!(matches!(check(97, 3), Ok(Found::Earlier)));
        // Reaching the base, inside the segment, or past the expected
        // offset: not the continuation, and not old bytes either.
        assert!(check(98, 3).is_err());
        assert!(check(110, 3).is_err());
        assert!(check(121, 3).is_err());
        // Old bytes that are not an intact batch are bad as before.
        let mut torn = batch(5, 3, 0, 10);
        torn[70] ^= 1;
        assert!(check_batch(&torn, Offset(100), Offset(120)).is_err());
    }

    #[test]
    fn leftovers_are_removed_and_bad_configs_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000000.log.deleted"), b"x").unwrap();
        std::fs::write(dir.path().join("00000000000000000007.index"), b"x").unwrap();
        std::fs::write(dir.path().join("partition.checkpoint.tmp"), b"x").unwrap();
        let swap = dir.path().join("00000000000000000000.swap");
        std::fs::create_dir(&swap).unwrap();
        std::fs::write(swap.join("00000000000000000000.log"), b"half a copy").unwrap();
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), Offset(0));
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000000.timeindex",
            ],
            "a new, empty log writes no checkpoint: a missing one says the same"
        );
        let bad = LogConfig {
            segment_ms: 0,
            ..small_config()
        };
        assert!(matches!(
            PartitionLog::open(dir.path(), bad),
            Err(Error::InvalidConfig {
                key: "segment.ms",
                ..
            })
        ));
    }
}
