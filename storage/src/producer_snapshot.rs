//! Producer-state snapshots (Kafka's `<offset>.snapshot` files): what the
//! idempotent producers of a partition had written below an offset, so an
//! opening partition reads only the log above its latest snapshot instead
//! of replaying every batch header from the log start.
//!
//! `<partition dir>/<20-digit offset>.snapshot`, big-endian:
//!
//! ```text
//! 0   4  magic "SLPS"
//! 4   2  version (1)
//! 6   2  reserved (0)
//! 8   8  offset: the state covers every batch below it, i64
//! 16  4  producer count, u32
//! 20     producers, least recently written first:
//!          0  8  producer id            i64
//!          8  2  producer epoch         i16
//!         10  2  batch count (≤ 64)     u16
//!         12     batches, oldest first, 40 bytes each:
//!                  first sequence i32, last sequence i32,
//!                  base offset i64, last offset i64,
//!                  log append time i64 (-1: CreateTime),
//!                  max timestamp i64
//! end-4 4  CRC-32 (crc32fast) of every byte before it
//! ```
//!
//! The storage layer only keeps the files; what the entries mean is the
//! broker's (`replica::producer_state`).
//!
//! # Invariants
//! - A snapshot is written whole to `<name>.tmp` and renamed in, without
//!   fsync: a file that fails its checks (length, magic, version, counts,
//!   CRC) is ignored and the next older one is used, down to none (replay
//!   from the log start). Losing a snapshot costs replay time, never
//!   correctness.
//! - A snapshot is only used for a log that holds every offset below it:
//!   the caller picks the latest at or below the log end
//!   ([`latest_at_or_below`]) and deletes those above a truncation point
//!   ([`delete_above`], durable before the truncated log takes new
//!   batches, so a snapshot of records truncated away never comes back).
//! - Bounded: a file is read only up to [`MAX_SNAPSHOT_BYTES`]; a producer
//!   holds at most [`MAX_BATCHES_PER_PRODUCER`] batches.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::offset::Offset;

/// The file extension of snapshots.
pub const SNAPSHOT_EXT: &str = "snapshot";

/// Largest snapshot file read (10 000 producers × 5 batches take ~2 MiB).
pub const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

/// Most batches one producer entry may hold.
pub const MAX_BATCHES_PER_PRODUCER: usize = 64;

const MAGIC: &[u8; 4] = b"SLPS";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 20;
const PRODUCER_BYTES: usize = 12;
const BATCH_BYTES: usize = 40;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 for CreateTime.
    pub log_append_time_ms: i64,
    pub max_timestamp: i64,
}

/// One producer's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first.
    pub batches: Vec<SnapshotBatch>,
}

/// A snapshot read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every batch below this offset is in `producers`.
    pub offset: Offset,
    /// Least recently written first.
    pub producers: Vec<SnapshotProducer>,
}

/// Builds a snapshot file in one buffer.
#[derive(Debug)]
pub struct SnapshotWriter {
    offset: Offset,
    buf: Vec<u8>,
    count: u32,
}

impl SnapshotWriter {
    /// A snapshot of the state below `offset`; `producers` sizes the buffer.
    pub fn new(offset: Offset, producers: usize) -> Self {
        let mut buf =
            Vec::with_capacity(HEADER_BYTES + producers * (PRODUCER_BYTES + 5 * BATCH_BYTES) + 4);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&offset.0.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        Self {
            offset,
            buf,
            count: 0,
        }
    }

    /// Adds a producer (call least recently written first); batches beyond
    /// [`MAX_BATCHES_PER_PRODUCER`] (the oldest) are left out.
    pub fn producer<'a>(
        &mut self,
        producer_id: i64,
        epoch: i16,
        batches: impl ExactSizeIterator<Item = &'a SnapshotBatch>,
    ) {
        let skip = batches.len().saturating_sub(MAX_BATCHES_PER_PRODUCER);
        let kept = batches.len() - skip;
        self.buf.extend_from_slice(&producer_id.to_be_bytes());
        self.buf.extend_from_slice(&epoch.to_be_bytes());
        // kept ≤ MAX_BATCHES_PER_PRODUCER fits u16.
        self.buf.extend_from_slice(&(kept as u16).to_be_bytes());
        for b in batches.skip(skip) {
            self.buf.extend_from_slice(&b.first_sequence.to_be_bytes());
            self.buf.extend_from_slice(&b.last_sequence.to_be_bytes());
            self.buf.extend_from_slice(&b.base_offset.to_be_bytes());
            self.buf.extend_from_slice(&b.last_offset.to_be_bytes());
            self.buf
                .extend_from_slice(&b.log_append_time_ms.to_be_bytes());
            self.buf.extend_from_slice(&b.max_timestamp.to_be_bytes());
        }
        self.count += 1;
    }

    /// Writes the file into `dir` (temp file, rename; no fsync, see the
    /// module docs), replacing a snapshot at the same offset.
    pub fn write(mut self, dir: &Path) -> Result<PathBuf> {
        if let Some(count) = self.buf.get_mut(16..20) {
            count.copy_from_slice(&self.count.to_be_bytes());
        }
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        let name = format!("{:020}.{SNAPSHOT_EXT}", self.offset.0);
        checkpoint::write_renamed(dir, &name, &self.buf, false)?;
        Ok(dir.join(name))
    }
}

/// The file of the snapshot at `offset`.
pub fn snapshot_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(format!("{:020}.{SNAPSHOT_EXT}", offset.0))
}

/// The offsets of the snapshots in `dir`, ascending.
pub fn offsets(dir: &Path) -> Result<Vec<Offset>> {
    crate::recovery::offsets_named(dir, SNAPSHOT_EXT)
}

/// The latest snapshot at or below `end` that passes its checks; those
/// that fail are logged and skipped.
pub fn latest_at_or_below(dir: &Path, end: Offset) -> Result<Option<Snapshot>> {
    for offset in offsets(dir)?.into_iter().rev().filter(|o| *o <= end) {
        let path = snapshot_path(dir, offset);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        if len > MAX_SNAPSHOT_BYTES {
            tracing::warn!(file = %path.display(), len, "producer snapshot too large; ignored");
            continue;
        }
        let Some(bytes) = checkpoint::read_if_exists(&path)? else {
            continue;
        };
        match decode(&bytes) {
            Ok(s) if s.offset == offset => return Ok(Some(s)),
            Ok(_) => {
                tracing::warn!(file = %path.display(), "producer snapshot names another offset; ignored")
            }
            Err(reason) => {
                tracing::warn!(file = %path.display(), reason, "producer snapshot ignored")
            }
        }
    }
    Ok(None)
}

/// Deletes the snapshots above `offset` (the log is truncated to it) and
/// makes the deletion durable.
pub fn delete_above(dir: &Path, offset: Offset) -> Result<usize> {
    let doomed: Vec<Offset> = offsets(dir)?.into_iter().filter(|o| *o > offset).collect();
    delete(dir, &doomed)?;
    if !doomed.is_empty() {
        checkpoint::sync_dir(dir)?;
    }
    Ok(doomed.len())
}

/// Deletes the snapshots below `offset` but the latest of them (retention
/// moved the log start: they are never needed again, while the latest may
/// still save replaying from the log start). Not fsynced: one that comes
/// back is only older.
pub fn delete_below(dir: &Path, offset: Offset) -> Result<usize> {
    let below: Vec<Offset> = offsets(dir)?.into_iter().filter(|o| *o < offset).collect();
    let doomed = below.split_last().map_or(&[][..], |(_, rest)| rest);
    delete(dir, doomed)?;
    Ok(doomed.len())
}

fn delete(dir: &Path, offsets: &[Offset]) -> Result<()> {
    for o in offsets {
        let path = snapshot_path(dir, *o);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("unlink", path, e)),
        }
    }
    Ok(())
}

/// Reads big-endian fields from a slice, failing past its end.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], &'static str> {
        let field = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or("truncated")?;
        self.at += N;
        Ok(field)
    }
    fn i16(&mut self) -> std::result::Result<i16, &'static str> {
        self.take().map(i16::from_be_bytes)
    }
    fn u16(&mut self) -> std::result::Result<u16, &'static str> {
        self.take().map(u16::from_be_bytes)
    }
    fn i32(&mut self) -> std::result::Result<i32, &'static str> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> std::result::Result<u32, &'static str> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> std::result::Result<i64, &'static str> {
        self.take().map(i64::from_be_bytes)
    }
}

fn decode(bytes: &[u8]) -> std::result::Result<Snapshot, &'static str> {
    if bytes.len() < HEADER_BYTES + 4 {
        return Err("too short");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "too short")?);
    if crc32fast::hash(body) != crc {
        return Err("CRC mismatch");
    }
    let mut f = Fields { bytes: body, at: 0 };
    if &f.take::<4>()? != MAGIC || f.take::<2>()? != VERSION.to_be_bytes() {
        return Err("unknown magic or version");
    }
    f.take::<2>()?;
    let offset = Offset(f.i64()?);
    let count = f.u32()? as usize;
    if count > (body.len() - HEADER_BYTES) / PRODUCER_BYTES {
        return Err("producer count larger than the file");
    }
    let mut producers = Vec::with_capacity(count);
    for _ in 0..count {
        let producer_id = f.i64()?;
        let epoch = f.i16()?;
        let batch_count = usize::from(f.u16()?);
        if batch_count > MAX_BATCHES_PER_PRODUCER {
            return Err("too many batches for one producer");
        }
        let mut batches = Vec::with_capacity(batch_count);
        for _ in 0..batch_count {
            batches.push(SnapshotBatch {
                first_sequence: f.i32()?,
                last_sequence: f.i32()?,
                base_offset: f.i64()?,
                last_offset: f.i64()?,
                log_append_time_ms: f.i64()?,
                max_timestamp: f.i64()?,
            });
        }
        producers.push(SnapshotProducer {
            producer_id,
            epoch,
            batches,
        });
    }
    if f.at != body.len() {
        return Err("trailing bytes");
    }
    Ok(Snapshot { offset, producers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: i32, offset: i64) -> SnapshotBatch {
        SnapshotBatch {
            first_sequence: seq,
            last_sequence: seq + 2,
            base_offset: offset,
            last_offset: offset + 2,
            log_append_time_ms: -1,
            max_timestamp: 1_700_000_000_000 + offset,
        }
    }

    fn write(dir: &Path, offset: i64, producers: &[SnapshotProducer]) {
        let mut w = SnapshotWriter::new(Offset(offset), producers.len());
        for p in producers {
            w.producer(p.producer_id, p.epoch, p.batches.iter());
        }
        w.write(dir).unwrap();
    }

    #[test]
    fn what_is_written_reads_back_and_the_latest_at_or_below_the_end_is_used() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest_at_or_below(dir.path(), Offset(100)).unwrap(), None);
        let producers = vec![
            SnapshotProducer {
                producer_id: 7,
                epoch: 2,
                batches: vec![batch(0, 0), batch(3, 10)],
            },
            SnapshotProducer {
                producer_id: 9,
                epoch: 0,
                batches: vec![],
            },
        ];
        write(dir.path(), 20, &producers);
        write(dir.path(), 50, &producers[..1]);
        assert_eq!(offsets(dir.path()).unwrap(), vec![Offset(20), Offset(50)]);
        let at_50 = latest_at_or_below(dir.path(), Offset(60)).unwrap().unwrap();
        assert_eq!(at_50.offset, Offset(50));
        assert_eq!(at_50.producers, producers[..1]);
        // A log that ends below 50 uses the one at 20.
        let at_20 = latest_at_or_below(dir.path(), Offset(49)).unwrap().unwrap();
        assert_eq!(
            (at_20.offset, at_20.producers),
            (Offset(20), producers.clone())
        );
        // A damaged latest is skipped for the older one.
        let path = snapshot_path(dir.path(), Offset(50));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[25] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let used = latest_at_or_below(dir.path(), Offset(60)).unwrap().unwrap();
        assert_eq!(used.offset, Offset(20));
        // Truncating to 30 deletes the one above it.
        assert_eq!(delete_above(dir.path(), Offset(30)).unwrap(), 1);
        assert_eq!(offsets(dir.path()).unwrap(), vec![Offset(20)]);
    }

    #[test]
    fn only_the_latest_snapshot_below_the_log_start_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for o in [10, 20, 30, 40] {
            write(dir.path(), o, &[]);
        }
        assert_eq!(delete_below(dir.path(), Offset(35)).unwrap(), 2);
        assert_eq!(offsets(dir.path()).unwrap(), vec![Offset(30), Offset(40)]);
        assert_eq!(delete_below(dir.path(), Offset(5)).unwrap(), 0);
    }

    #[test]
    fn malformed_files_are_refused_not_trusted() {
        for bad in [&b""[..], &b"SLPS"[..], &[0u8; 24][..]] {
            assert!(decode(bad).is_err());
        }
        // A valid CRC over a count larger than the file.
        let mut body = Vec::new();
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&VERSION.to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(decode(&body), Err("producer count larger than the file"));
        // Too many batches for one producer.
        let mut w = SnapshotWriter::new(Offset(5), 1);
        let many = vec![batch(0, 0); MAX_BATCHES_PER_PRODUCER + 3];
        w.producer(1, 0, many.iter());
        let dir = tempfile::tempdir().unwrap();
        let path = w.write(dir.path()).unwrap();
        let read = decode(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(read.producers[0].batches.len(), MAX_BATCHES_PER_PRODUCER);
    }
}
