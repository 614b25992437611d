//! RecordBatch v2 (magic 2): a zero-copy view of the batch header.
//!
//! The bytes a producer sends are the bytes stored on disk and the bytes a
//! consumer receives; this view reads and checks them in place and never
//! decompresses or copies the records.
//!
//! ```text
//! offset size field                  covered by CRC
//!      0    8 baseOffset             no   (rewritten by the leader)
//!      8    4 batchLength            no   (bytes after this field)
//!     12    4 partitionLeaderEpoch   no   (rewritten by the leader)
//!     16    1 magic (= 2)            no
//!     17    4 crc (CRC-32C, u32)     no
//!     21    2 attributes             yes  bits 0-2 codec, 3 timestamp type,
//!                                         4 transactional, 5 control, 6 delete horizon
//!     23    4 lastOffsetDelta        yes
//!     27    8 baseTimestamp          yes
//!     35    8 maxTimestamp           yes
//!     43    8 producerId             yes
//!     51    2 producerEpoch          yes
//!     53    4 baseSequence           yes
//!     57    4 recordsCount           yes
//!     61    … records (compressed as a whole when codec ≠ none)
//! ```
//!
//! All integers are big-endian. A batch occupies `12 + batchLength` bytes.
//!
//! # Invariants
//! - A [`RecordBatchView`] is only built over a slice that holds the whole
//!   batch (`12 + batchLength` bytes, at least [`RECORD_BATCH_HEADER_BYTES`]),
//!   so its accessors cannot read out of bounds.
//! - Rewriting `baseOffset` or `partitionLeaderEpoch` never invalidates the
//!   CRC: both lie before the CRC-covered range.
//!
//! # Limits
//! - The caller passes the largest batch it accepts; a `batchLength` above it
//!   is an error before any further look at the bytes.
//!
//! # References
//! Kafka's `DefaultRecordBatch` and the "Record Batch" section of the Kafka
//! protocol documentation.

use crate::error::{DecodeError, Result};

/// Size of the fixed RecordBatch v2 header: a batch with zero records is at
/// least this long.
pub const RECORD_BATCH_HEADER_BYTES: usize = 61;

/// Bytes before `batchLength` starts counting (`baseOffset` + `batchLength`).
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

/// The only message format Sluice stores.
pub const MAGIC_V2: i8 = 2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The codec named in a batch's attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// Every codec, in attribute-id order (for code and tests that must
    /// cover them all).
    pub const ALL: [Self; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// The codec for attribute bits 0-2, or `None` for the unused values 5-7.
    pub fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The attribute bits 0-2 for this codec.
    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// Whether a batch's timestamps were set by the producer or by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A checked, borrowed view of one whole RecordBatch v2.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatchView<'a> {
    /// Views the batch at the start of `buf`, which may hold more after it.
    ///
    /// Checks only framing: that the header is present, that `batchLength`
    /// lies within `RECORD_BATCH_HEADER_BYTES - 12 ..= batch_bytes_max - 12`
    /// and that the whole batch is present, and that magic is 2. The CRC is
    /// checked separately by [`RecordBatchView::verify_crc`], since some
    /// callers (fetch) never need it.
    pub fn parse(buf: &'a [u8], batch_bytes_max: usize) -> Result<Self> {
        let size = batch_size_at(buf, batch_bytes_max)?.ok_or(DecodeError::BatchTruncated {
            needed: RECORD_BATCH_HEADER_BYTES,
            available: buf.len(),
        })?;
        let bytes = buf.get(..size).ok_or(DecodeError::BatchTruncated {
            needed: size,
            available: buf.len(),
        })?;
        let view = Self { bytes };
        if view.magic() != MAGIC_V2 {
            return Err(DecodeError::UnsupportedMagic {
                magic: view.magic(),
            });
        }
        Ok(view)
    }

    /// The batch's bytes, exactly `12 + batchLength` of them.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size of the batch in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn base_offset(&self) -> i64 {
        read_i64(self.bytes, BASE_OFFSET_AT)
    }

    pub fn batch_length(&self) -> i32 {
        read_i32(self.bytes, BATCH_LENGTH_AT)
    }

    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(self.bytes, PARTITION_LEADER_EPOCH_AT)
    }

    pub fn magic(&self) -> i8 {
        i8::from_be_bytes([byte_at(self.bytes, MAGIC_AT)])
    }

    /// The CRC-32C the header claims for bytes `21..`.
    pub fn crc(&self) -> u32 {
        read_u32(self.bytes, CRC_AT)
    }

    pub fn attributes(&self) -> i16 {
        read_i16(self.bytes, ATTRIBUTES_AT)
    }

    /// The codec, or `None` for attribute values 5-7 that name no codec.
    pub fn compression(&self) -> Option<CompressionType> {
        CompressionType::from_id(self.attributes() & COMPRESSION_MASK)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.bytes, LAST_OFFSET_DELTA_AT)
    }

    /// `baseOffset + lastOffsetDelta`: the offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }

    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.bytes, BASE_TIMESTAMP_AT)
    }

    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.bytes, MAX_TIMESTAMP_AT)
    }

    pub fn producer_id(&self) -> i64 {
        read_i64(self.bytes, PRODUCER_ID_AT)
    }

    pub fn producer_epoch(&self) -> i16 {
        read_i16(self.bytes, PRODUCER_EPOCH_AT)
    }

    pub fn base_sequence(&self) -> i32 {
        read_i32(self.bytes, BASE_SEQUENCE_AT)
    }

    pub fn records_count(&self) -> i32 {
        read_i32(self.bytes, RECORDS_COUNT_AT)
    }

    /// The record bytes after the header (compressed when a codec is set).
    pub fn records(&self) -> &'a [u8] {
        self.bytes
            .get(RECORD_BATCH_HEADER_BYTES..)
            .unwrap_or_default()
    }

    /// CRC-32C (Castagnoli) of bytes `21..`, as the header's `crc` should be.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(ATTRIBUTES_AT..).unwrap_or_default())
    }

    /// A copy of this batch whose header says `timestamp_type` (attribute
    /// bit 3) and `max_timestamp`, with the CRC recomputed (both fields lie
    /// in the CRC-covered range), as Kafka's
    /// `DefaultRecordBatch.setMaxTimestamp` does. The records, and so their
    /// timestamp deltas, are unchanged.
    pub fn with_max_timestamp(
        &self,
        timestamp_type: TimestampType,
        max_timestamp: i64,
    ) -> bytes::Bytes {
        let mut b = self.bytes.to_vec();
        let attributes = match timestamp_type {
            TimestampType::LogAppendTime => self.attributes() | TIMESTAMP_TYPE_BIT,
            TimestampType::CreateTime => self.attributes() & !TIMESTAMP_TYPE_BIT,
        };
        write_at(&mut b, ATTRIBUTES_AT, &attributes.to_be_bytes());
        write_at(&mut b, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
        with_crc(b)
    }

    /// A copy of this batch whose records are `records_count` records,
    /// `records` (already encoded with `codec`): the header is kept field
    /// for field except the codec bits of `attributes`, `recordsCount`,
    /// `batchLength` and the CRC. Kafka's `LogValidator` rebuilding a batch
    /// under the topic's codec, and its cleaner filtering a batch, keep the
    /// base offset, last offset delta, producer id, epoch, base sequence
    /// and timestamps the same way.
    pub fn with_records(
        &self,
        codec: CompressionType,
        records_count: i32,
        records: &[u8],
    ) -> Result<bytes::Bytes> {
        let header = self
            .bytes
            .get(..RECORD_BATCH_HEADER_BYTES)
            .unwrap_or_default();
        let total = header.len() + records.len();
        let batch_length = i32::try_from(total - 12).map_err(|_| DecodeError::Encode {
            what: "record batch",
            api_version: 2,
            reason: format!("{total} bytes is larger than a batch can be"),
        })?;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(header);
        b.extend_from_slice(records);
        let attributes = (self.attributes() & !COMPRESSION_MASK) | codec.id();
        write_at(&mut b, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
        write_at(&mut b, ATTRIBUTES_AT, &attributes.to_be_bytes());
        write_at(&mut b, RECORDS_COUNT_AT, &records_count.to_be_bytes());
        Ok(with_crc(b))
    }

    /// A copy of this batch stamped with another producer: `producer_id`,
    /// `producer_epoch` and `base_sequence` rewritten and the CRC
    /// recomputed (all three lie in the CRC-covered range). An idempotent
    /// producer that bumps its epoch (KIP-360) renumbers its unsent
    /// batches this way; the records are unchanged (their sequence is the
    /// base plus their offset delta).
    pub fn with_producer(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> bytes::Bytes {
        let mut b = self.bytes.to_vec();
        write_at(&mut b, PRODUCER_ID_AT, &producer_id.to_be_bytes());
        write_at(&mut b, PRODUCER_EPOCH_AT, &producer_epoch.to_be_bytes());
        write_at(&mut b, BASE_SEQUENCE_AT, &base_sequence.to_be_bytes());
        with_crc(b)
    }

    /// Checks the header's CRC against the bytes.
    pub fn verify_crc(&self) -> Result<()> {
        let (expected, actual) = (self.crc(), self.compute_crc());
        if expected == actual {
            Ok(())
        } else {
            Err(DecodeError::CrcMismatch { expected, actual })
        }
    }
}

/// An empty batch (`recordsCount` 0, no producer) covering the offsets
/// `base_offset..=last_offset`: what the log cleaner leaves where batches
/// lost every record, so batch offsets stay dense. Kafka writes the same
/// shape for an emptied batch (`MemoryRecords.writeEmptyHeader`); consumers
/// skip it and continue at `last_offset + 1`.
pub fn empty_batch(
    base_offset: i64,
    last_offset: i64,
    partition_leader_epoch: i32,
    max_timestamp: i64,
) -> Result<bytes::Bytes> {
    let delta = last_offset
        .checked_sub(base_offset)
        .and_then(|d| i32::try_from(d).ok())
        .filter(|d| *d >= 0)
        .ok_or_else(|| DecodeError::Encode {
            what: "empty record batch",
            api_version: 2,
            reason: format!("offsets {base_offset}..={last_offset} do not fit one batch"),
        })?;
    let mut b = vec![0u8; RECORD_BATCH_HEADER_BYTES];
    let length = (RECORD_BATCH_HEADER_BYTES - 12) as i32;
    write_at(&mut b, BASE_OFFSET_AT, &base_offset.to_be_bytes());
    write_at(&mut b, BATCH_LENGTH_AT, &length.to_be_bytes());
    write_at(
        &mut b,
        PARTITION_LEADER_EPOCH_AT,
        &partition_leader_epoch.to_be_bytes(),
    );
    write_at(&mut b, MAGIC_AT, &MAGIC_V2.to_be_bytes());
    write_at(&mut b, LAST_OFFSET_DELTA_AT, &delta.to_be_bytes());
    write_at(&mut b, BASE_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
    write_at(&mut b, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
    write_at(&mut b, PRODUCER_ID_AT, &(-1i64).to_be_bytes());
    write_at(&mut b, PRODUCER_EPOCH_AT, &(-1i16).to_be_bytes());
    write_at(&mut b, BASE_SEQUENCE_AT, &(-1i32).to_be_bytes());
    Ok(with_crc(b))
}

/// `batch` (a whole v2 batch) with its CRC-32C computed over the covered
/// range (from `attributes` on) and written in place: the last step of
/// every header rewrite above.
fn with_crc(mut batch: Vec<u8>) -> bytes::Bytes {
    let crc = crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default());
    write_at(&mut batch, CRC_AT, &crc.to_be_bytes());
    bytes::Bytes::from(batch)
}

/// The size of the batch that starts `buf`, from its `batchLength`.
///
/// `Ok(None)` when fewer than [`RECORD_BATCH_HEADER_BYTES`] bytes are
/// present (the header cannot be judged yet); an error when `batchLength` is
/// out of bounds. The returned size may exceed `buf.len()`: the caller
/// decides whether a short batch is a torn tail or an error.
pub fn batch_size_at(buf: &[u8], batch_bytes_max: usize) -> Result<Option<usize>> {
    if buf.len() < RECORD_BATCH_HEADER_BYTES {
        return Ok(None);
    }
    let length = i64::from(read_i32(buf, BATCH_LENGTH_AT));
    let min = RECORD_BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES;
    let max = batch_bytes_max.saturating_sub(BATCH_LENGTH_PREFIX_BYTES);
    match usize::try_from(length) {
        Ok(len) if len >= min && len <= max => Ok(Some(len + BATCH_LENGTH_PREFIX_BYTES)),
        _ => Err(DecodeError::BatchLengthOutOfBounds {
            length,
            min: RECORD_BATCH_HEADER_BYTES,
            max: batch_bytes_max,
        }),
    }
}

/// Writes `base_offset` into the batch at the start of `batch`.
///
/// Outside the CRC-covered range, so the CRC stays valid. Does nothing when
/// `batch` is shorter than the header (callers pass parsed batches).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    write_at(batch, BASE_OFFSET_AT, &base_offset.to_be_bytes());
}

/// Writes `epoch` as the batch's partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    write_at(batch, PARTITION_LEADER_EPOCH_AT, &epoch.to_be_bytes());
}

/// Iterates the whole batches laid back to back in a buffer.
///
/// Yields `Err` once and then stops when the bytes stop being a valid batch
/// sequence: a torn tail (fewer bytes than the next batch needs) is
/// [`DecodeError::BatchTruncated`], so recovery can tell it from corruption.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    position: usize,
    batch_bytes_max: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8], batch_bytes_max: usize) -> Self {
        Self {
            rest: buf,
            position: 0,
            batch_bytes_max,
            failed: false,
        }
    }

    /// Byte position, within the original buffer, of the next batch.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    /// The batch and its byte position in the original buffer.
    type Item = Result<(usize, RecordBatchView<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match RecordBatchView::parse(self.rest, self.batch_bytes_max) {
            Ok(view) => {
                let at = self.position;
                self.rest = self.rest.get(view.size()..).unwrap_or_default();
                self.position += view.size();
                Some(Ok((at, view)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn byte_at(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

fn read_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(read_array(buf, at))
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(read_array(buf, at))
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_array(buf, at))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(read_array(buf, at))
}

fn write_at(buf: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + value.len()) {
        dst.copy_from_slice(value);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a well-formed, uncompressed batch whose record bytes are
    /// `records` (not real records: the view never looks inside them).
    pub(crate) fn batch(base_offset: i64, last_offset_delta: i32, records: &[u8]) -> Vec<u8> {
        batch_with_attributes(
            base_offset,
            last_offset_delta,
            last_offset_delta + 1,
            0,
            records,
        )
    }

    /// Base timestamp of test batches; their max timestamp is this plus
    /// `10 * lastOffsetDelta` (records 10 ms apart).
    pub(crate) const TEST_BASE_TIMESTAMP: i64 = 1_700_000_000_000;

    /// A batch with a valid CRC and the given header fields, over
    /// `records` exactly as given (already compressed if the codec says so).
    pub(crate) fn batch_with_attributes(
        base_offset: i64,
        last_offset_delta: i32,
        records_count: i32,
        attributes: i16,
        records: &[u8],
    ) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_BATCH_HEADER_BYTES];
        b.extend_from_slice(records);
        let len = i32::try_from(b.len() - BATCH_LENGTH_PREFIX_BYTES).unwrap();
        let max_timestamp = TEST_BASE_TIMESTAMP + 10 * i64::from(last_offset_delta);
        write_at(&mut b, BASE_OFFSET_AT, &base_offset.to_be_bytes());
        write_at(&mut b, BATCH_LENGTH_AT, &len.to_be_bytes());
        write_at(&mut b, MAGIC_AT, &[2]);
        write_at(&mut b, ATTRIBUTES_AT, &attributes.to_be_bytes());
        write_at(
            &mut b,
            LAST_OFFSET_DELTA_AT,
            &last_offset_delta.to_be_bytes(),
        );
        write_at(
            &mut b,
            BASE_TIMESTAMP_AT,
            &TEST_BASE_TIMESTAMP.to_be_bytes(),
        );
        write_at(&mut b, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
        write_at(&mut b, PRODUCER_ID_AT, &(-1i64).to_be_bytes());
        write_at(&mut b, RECORDS_COUNT_AT, &records_count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        write_at(&mut b, CRC_AT, &crc.to_be_bytes());
        b
    }

    #[test]
    fn with_max_timestamp_sets_type_and_time_and_keeps_the_crc_valid() {
        let b = batch(42, 9, b"0123456789");
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        let stamped = view.with_max_timestamp(TimestampType::LogAppendTime, 77);
        let out = RecordBatchView::parse(&stamped, usize::MAX).unwrap();
        out.verify_crc().unwrap();
        assert_eq!(out.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(out.max_timestamp(), 77);
        assert_eq!(out.base_timestamp(), view.base_timestamp());
        assert_eq!(out.records(), view.records());
        let back = out.with_max_timestamp(TimestampType::CreateTime, 5);
        let back = RecordBatchView::parse(&back, usize::MAX).unwrap();
        back.verify_crc().unwrap();
        assert_eq!(back.attributes(), view.attributes());
    }

    #[test]
    fn with_producer_renumbers_and_keeps_the_crc_valid() {
        let b = batch(0, 9, b"0123456789");
        let view = RecordBatchView::parse(&b, usize::MAX).unwrap();
        let stamped = view.with_producer(4711, 3, 120);
        let out = RecordBatchView::parse(&stamped, usize::MAX).unwrap();
        out.verify_crc().unwrap();
        assert_eq!(
            (out.producer_id(), out.producer_epoch(), out.base_sequence()),
            (4711, 3, 120)
        );
        assert_eq!(out.records(), view.records());
        assert_eq!(out.last_offset_delta(), view.last_offset_delta());
        assert_eq!(out.max_timestamp(), view.max_timestamp());
    }

    #[test]
    fn parses_fields_and_verifies_crc() {
        let b = batch(42, 9, b"0123456789");
        let v = RecordBatchView::parse(&b, 1 << 20).unwrap();
        assert_eq!(v.base_offset(), 42);
        assert_eq!(v.last_offset(), 51);
        assert_eq!(v.records_count(), 10);
        assert_eq!(v.size(), 71);
        assert_eq!(v.records(), b"0123456789");
        assert_eq!(v.compression(), Some(CompressionType::None));
        assert_eq!(v.producer_id(), -1);
        v.verify_crc().unwrap();
    }

    #[test]
    fn rewriting_offset_and_epoch_keeps_crc_valid() {
        let mut b = batch(0, 0, b"x");
        set_base_offset(&mut b, 1234);
        set_partition_leader_epoch(&mut b, 7);
        let v = RecordBatchView::parse(&b, 1 << 20).unwrap();
        assert_eq!((v.base_offset(), v.partition_leader_epoch()), (1234, 7));
        v.verify_crc().unwrap();
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut b = batch(0, 0, b"payload");
        let last = b.len() - 1;
        b[last] ^= 0x40;
        let v = RecordBatchView::parse(&b, 1 << 20).unwrap();
        assert!(matches!(
            v.verify_crc(),
            Err(DecodeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_oversized_batches_are_errors() {
        let b = batch(0, 0, b"payload");
        assert_eq!(
            RecordBatchView::parse(&b[..b.len() - 1], 1 << 20).unwrap_err(),
            DecodeError::BatchTruncated {
                needed: b.len(),
                available: b.len() - 1
            }
        );
        assert!(matches!(
            RecordBatchView::parse(&b, 64).unwrap_err(),
            DecodeError::BatchLengthOutOfBounds { .. }
        ));
        assert_eq!(batch_size_at(&b[..60], 1 << 20), Ok(None));
    }

    #[test]
    fn iterates_back_to_back_batches_and_stops_at_torn_tail() {
        let mut buf = batch(0, 1, b"ab");
        let second_at = buf.len();
        buf.extend(batch(2, 0, b"c"));
        buf.extend(&batch(3, 0, b"dd")[..30]);
        let items: Vec<_> = BatchIter::new(&buf, 1 << 20).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].as_ref().unwrap().0, second_at);
        assert_eq!(items[1].as_ref().unwrap().1.base_offset(), 2);
        assert!(items[2].is_err());
    }
}
