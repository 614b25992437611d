//! What one `.log` segment file holds, read from its record-batch headers
//! alone: batches, records, bytes, and the offsets they span.
//!
//! The file is Kafka's (and Sluice's) segment format, a run of RecordBatch
//! v2 batches; only the fields below are read, with one 61-byte `pread` per
//! batch, so walking a segment costs one system call per batch and never
//! reads a record.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  batchLength      (bytes after this field: the batch is 12 + batchLength)
//!     16     1  magic            (2)
//!     23     4  lastOffsetDelta
//!     57     4  recordsCount
//! ```
//!
//! A segment a compacting cleaner has rewritten still spans every offset
//! it did (Kafka and Sluice keep the last offset of a batch whose records
//! all went, as an empty batch), but holds fewer records than it spans:
//! `records < next_offset - base_offset` is how a cleaned segment is told
//! from one never cleaned.
//!
//! # Caveats
//! - The active segment is read while the broker writes it: the walk stops
//!   at the first header that is not a whole v2 batch inside the file (the
//!   preallocated, still-zero tail, or a batch being written), so it may
//!   miss the batches of the last few milliseconds. A file trimmed while
//!   it is walked (a segment rolled: its preallocated tail cut) ends the
//!   walk where the file now ends.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes of the batch header read per batch (up to recordsCount).
const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength.
const LOG_OVERHEAD: u64 = 12;
/// The smallest `batchLength` of a v2 batch (a header and no record).
const BATCH_LENGTH_MIN: u64 = HEADER_BYTES as u64 - LOG_OVERHEAD;
const MAGIC_V2: u8 = 2;

/// The batches of one segment file, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentWalk {
    pub batches: u64,
    pub records: u64,
    /// Bytes of whole batches (the file may be longer: preallocation).
    pub bytes: u64,
    /// One past the last offset of the last batch (`None`: no batch).
    pub next_offset: Option<i64>,
}

impl SegmentWalk {
    /// Offsets the batches span from `base_offset` (the file's name) to
    /// their end.
    pub fn offsets_spanned(&self, base_offset: i64) -> u64 {
        self.next_offset
            .map_or(0, |next| u64::try_from(next - base_offset).unwrap_or(0))
    }

    /// Fewer records than offsets spanned: a cleaner removed some.
    pub fn is_cleaned(&self, base_offset: i64) -> bool {
        self.records < self.offsets_spanned(base_offset)
    }
}

/// Walks the batch headers of the segment file at `path`.
pub fn walk(path: &Path) -> std::io::Result<SegmentWalk> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    walk_file(&file, len)
}

fn walk_file(file: &File, len: u64) -> std::io::Result<SegmentWalk> {
    let mut w = SegmentWalk::default();
    let mut header = [0u8; HEADER_BYTES];
    let mut position = 0u64;
    while position + HEADER_BYTES as u64 <= len {
        match file.read_exact_at(&mut header, position) {
            Ok(()) => {}
            // Cut shorter since its length was read (a rolled segment's
            // preallocated tail trimmed): the batches up to here count.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let Some(batch) = parse(&header) else { break };
        let size = LOG_OVERHEAD + batch.length;
        if position + size > len {
            break;
        }
        w.batches += 1;
        w.records += batch.records;
        w.bytes += size;
        w.next_offset = Some(batch.base_offset + i64::from(batch.last_offset_delta) + 1);
        position += size;
    }
    Ok(w)
}

struct Header {
    base_offset: i64,
    length: u64,
    last_offset_delta: i32,
    records: u64,
}

/// The header at the start of `h`, or `None` when it is not a v2 batch
/// (zeros, a batch being written, another format).
fn parse(h: &[u8; HEADER_BYTES]) -> Option<Header> {
    let i64_at = |at: usize| h.get(at..at + 8)?.try_into().ok().map(i64::from_be_bytes);
    let i32_at = |at: usize| h.get(at..at + 4)?.try_into().ok().map(i32::from_be_bytes);
    let length = u64::try_from(i32_at(8)?).ok()?;
    if length < BATCH_LENGTH_MIN || h.get(16).copied() != Some(MAGIC_V2) {
        return None;
    }
    let last_offset_delta = i32_at(23)?;
    let records = u64::try_from(i32_at(57)?).ok()?;
    if last_offset_delta < 0 {
        return None;
    }
    Some(Header {
        base_offset: i64_at(0)?,
        length,
        last_offset_delta,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch header for offsets `base..=base+delta` holding `records`
    /// records, followed by `body` bytes of (meaningless) record data.
    fn batch(base: i64, delta: i32, records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES + body];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        let length = i32::try_from(HEADER_BYTES + body - 12).unwrap();
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[16] = MAGIC_V2;
        b[23..27].copy_from_slice(&delta.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    fn walk_bytes(bytes: &[u8]) -> SegmentWalk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.log");
        std::fs::write(&path, bytes).unwrap();
        walk(&path).unwrap()
    }

    #[test]
    fn sums_whole_batches_and_stops_at_the_preallocated_tail() {
        let mut file = batch(100, 9, 10, 500);
        file.extend(batch(110, 4, 5, 200));
        let written = file.len() as u64;
        file.extend(vec![0u8; 4096]); // preallocated, never written
        let w = walk_bytes(&file);
        assert_eq!(
            w,
            SegmentWalk {
                batches: 2,
                records: 15,
                bytes: written,
                next_offset: Some(115),
            }
        );
        assert_eq!(w.offsets_spanned(100), 15);
        assert!(!w.is_cleaned(100));
    }

    #[test]
    fn a_cleaned_segment_holds_fewer_records_than_it_spans() {
        // Offsets 100..=109 kept 3 records; 110..=114 became an empty batch.
        let mut file = batch(100, 9, 3, 150);
        file.extend(batch(110, 4, 0, 0));
        let w = walk_bytes(&file);
        assert_eq!((w.batches, w.records, w.next_offset), (2, 3, Some(115)));
        assert!(w.is_cleaned(100));
    }

    #[test]
    fn a_torn_last_batch_and_an_empty_file_count_nothing_of_theirs() {
        let mut file = batch(0, 0, 1, 10);
        let whole = file.len() as u64;
        file.extend(&batch(1, 0, 1, 100)[..80]); // cut short by the file's end
        let w = walk_bytes(&file);
        assert_eq!((w.batches, w.bytes, w.next_offset), (1, whole, Some(1)));
        assert_eq!(walk_bytes(&[]), SegmentWalk::default());
        let mut not_v2 = batch(0, 0, 1, 10);
        not_v2[16] = 1;
        assert_eq!(walk_bytes(&not_v2), SegmentWalk::default());
    }
}
