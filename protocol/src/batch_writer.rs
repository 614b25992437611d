//! Writing one RecordBatch v2 record by record, straight into the buffer
//! that goes on the wire: the producer's hot path.
//!
//! ```text
//! BatchWriter::new      reserve 61 header bytes, then capacity for the records
//! try_append × n        each record's varints, key, value and headers are
//!                       written once, after the previous record (no Record
//!                       struct, no header map, no intermediate buffer)
//! finish                fill the header in place (count, deltas, timestamps,
//!                       producer id/epoch, base sequence), CRC-32C over
//!                       bytes 21.., freeze; a codec other than none
//!                       compresses the record bytes into a new buffer
//! ```
//!
//! [`crate::batch_builder`] builds a batch from kafka-protocol `Record`s and
//! stays the convenient path for a handful of records (the group
//! coordinator, tests); this writer is for the producer, where a value's
//! bytes must be copied exactly once (caller's `Bytes` → batch) and no
//! allocation may happen per record.
//!
//! # Invariants
//! - Records get offset deltas `0..n` in append order; timestamp deltas are
//!   from the first record's timestamp (negative deltas are legal v2).
//! - The buffer never grows past the capacity reserved in
//!   [`BatchWriter::new`] except for a single record larger than the whole
//!   batch (the first one), so appending never reallocates and re-copies
//!   earlier records: [`BatchWriter::try_append`] refuses a record that does
//!   not fit instead.
//! - The header's `batchLength`, `lastOffsetDelta`, `recordsCount` and CRC
//!   are written only by [`BatchWriter::finish`], once every record is in.
//!
//! # Limits
//! - A batch holds at most `i32::MAX` records and `i32::MAX` bytes (the
//!   format's own bounds); the caller's `batch_bytes` is the practical one.
//!
//! # References
//! Kafka's `MemoryRecordsBuilder` and `DefaultRecord.writeTo`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch_builder::ProducerIdentity;
use crate::compression::compress_append;
use crate::error::{DecodeError, Result};
use crate::record_batch::{CompressionType, MAGIC_V2, RECORD_BATCH_HEADER_BYTES};

/// Bytes a record adds beyond its key, value and headers, at most:
/// length (5) + attributes (1) + timestamp delta (10) + offset delta (5) +
/// key length (5) + value length (5) + header count (5).
pub const RECORD_OVERHEAD_BYTES_MAX: usize = 36;

/// Where the header's CRC-32C sits, and where the bytes it covers start
/// (`attributes`), as in [`crate::record_batch`].
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;

/// One record's fields, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// `(key, value)`; `None` value is a null header value.
    pub headers: &'a [(String, Option<bytes::Bytes>)],
}

/// A RecordBatch v2 being filled.
#[derive(Debug)]
pub struct BatchWriter {
    buf: BytesMut,
    /// Bytes of records the batch is meant to hold (its `batch.size`).
    records_bytes_max: usize,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchWriter {
    /// An empty batch with room for `records_bytes_max` bytes of encoded
    /// records (reserved now, so appends never reallocate).
    pub fn new(records_bytes_max: usize) -> Self {
        Self::with_buffer(BytesMut::new(), records_bytes_max)
    }

    /// [`BatchWriter::new`] in a buffer handed back by
    /// [`BatchWriter::finish_recycling`] (or any buffer: it is emptied),
    /// grown to the room needed if it is smaller.
    pub fn with_buffer(mut buf: BytesMut, records_bytes_max: usize) -> Self {
        buf.clear();
        buf.reserve(RECORD_BATCH_HEADER_BYTES + records_bytes_max);
        buf.put_bytes(0, RECORD_BATCH_HEADER_BYTES);
        Self {
            buf,
            records_bytes_max,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.count.unsigned_abs() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of encoded records so far (the header excluded).
    pub fn records_bytes(&self) -> usize {
        self.buf.len() - RECORD_BATCH_HEADER_BYTES
    }

    /// The bytes `record` takes once encoded in this batch.
    pub fn encoded_len(&self, record: &RecordParts<'_>) -> usize {
        let body = self.body_len(record);
        varint_len(i64::try_from(body).unwrap_or(i64::MAX)) + body
    }

    /// Appends `record` when it fits in the room reserved (or the batch is
    /// empty: a first record larger than the batch gets a batch of its
    /// own, as Kafka's producer does). Returns false, changing nothing,
    /// when it does not fit or the batch is at the format's record limit.
    pub fn try_append(&mut self, record: &RecordParts<'_>) -> bool {
        let body = self.body_len(record);
        let Ok(body_i64) = i64::try_from(body) else {
            return false;
        };
        let total = varint_len(body_i64) + body;
        if self.count == i32::MAX
            || (self.count > 0 && self.records_bytes() + total > self.records_bytes_max)
        {
            return false;
        }
        if self.count == 0 {
            self.base_timestamp = record.timestamp;
            self.buf.reserve(total);
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        let buf = &mut self.buf;
        put_varint(buf, body_i64);
        buf.put_i8(0);
        put_varint(buf, record.timestamp.wrapping_sub(self.base_timestamp));
        put_varint(buf, i64::from(self.count));
        put_bytes(buf, record.key);
        put_bytes(buf, record.value);
        put_varint(buf, len_i64(record.headers.len()));
        for (key, value) in record.headers {
            put_bytes(buf, Some(key.as_bytes()));
            put_bytes(buf, value.as_deref());
        }
        self.count += 1;
        true
    }

    /// Seals the batch: header, optional compression, CRC-32C. A
    /// non-idempotent batch passes `ProducerIdentity::NONE` and base
    /// sequence -1.
    pub fn finish(
        self,
        codec: CompressionType,
        producer: ProducerIdentity,
        base_sequence: i32,
    ) -> Result<Bytes> {
        self.finish_recycling(codec, producer, base_sequence)
            .map(|(batch, _)| batch)
    }

    /// [`BatchWriter::finish`], handing back the record buffer when the
    /// batch is compressed (the records were compressed out of it into a
    /// new buffer of the compressed size), emptied, for
    /// [`BatchWriter::with_buffer`]: a producer of small compressed batches
    /// then allocates one buffer of the batch's size per batch, not the
    /// `batch.size` reservation as well. Uncompressed, the record buffer
    /// *is* the batch and nothing comes back.
    ///
    /// Record bytes are copied once into the record buffer (appends); a
    /// compressed batch's are then read once by the codec, which writes
    /// straight into the batch after its header (zstd) or is copied in
    /// (the other codecs).
    pub fn finish_recycling(
        self,
        codec: CompressionType,
        producer: ProducerIdentity,
        base_sequence: i32,
    ) -> Result<(Bytes, Option<BytesMut>)> {
        let header = BatchHeader {
            codec,
            count: self.count,
            base_timestamp: self.base_timestamp,
            max_timestamp: if self.count == 0 {
                self.base_timestamp
            } else {
                self.max_timestamp
            },
            producer,
            base_sequence,
        };
        let mut buf = self.buf;
        if codec == CompressionType::None {
            header.write_into(&mut buf)?;
            return Ok((buf.freeze(), None));
        }
        let records = buf.get(RECORD_BATCH_HEADER_BYTES..).unwrap_or_default();
        let mut batch = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + records.len() / 2 + 64);
        batch.resize(RECORD_BATCH_HEADER_BYTES, 0);
        compress_append(codec, records, None, &mut batch)?;
        header.write_into(&mut batch)?;
        buf.clear();
        Ok((Bytes::from(batch), Some(buf)))
    }

    fn body_len(&self, record: &RecordParts<'_>) -> usize {
        let delta = if self.count == 0 {
            0
        } else {
            record.timestamp.wrapping_sub(self.base_timestamp)
        };
        let headers: usize = record
            .headers
            .iter()
            .map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(v.as_deref()))
            .sum();
        1 + varint_len(delta)
            + varint_len(i64::from(self.count))
            + bytes_len(record.key)
            + bytes_len(record.value)
            + varint_len(len_i64(record.headers.len()))
            + headers
    }
}

/// The header fields [`BatchWriter::finish_recycling`] fills in once the
/// records are in.
struct BatchHeader {
    codec: CompressionType,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer: ProducerIdentity,
    base_sequence: i32,
}

impl BatchHeader {
    /// Writes the header over the first [`RECORD_BATCH_HEADER_BYTES`] of
    /// `batch` (header space, then the records as they go on the wire),
    /// then the CRC-32C over bytes 21...
    fn write_into(&self, batch: &mut [u8]) -> Result<()> {
        let encode_error = |reason: String| DecodeError::Encode {
            what: "record batch",
            api_version: 2,
            reason,
        };
        let batch_length = i32::try_from(batch.len().saturating_sub(12)).map_err(|_| {
            encode_error(format!(
                "{} bytes is larger than a batch can be",
                batch.len()
            ))
        })?;
        let Some(mut header) = batch.get_mut(..RECORD_BATCH_HEADER_BYTES) else {
            return Err(encode_error("header space missing".into()));
        };
        header.put_i64(0); // baseOffset: the broker assigns it
        header.put_i32(batch_length);
        header.put_i32(-1); // partitionLeaderEpoch
        header.put_i8(MAGIC_V2);
        header.put_u32(0); // crc, below
        header.put_i16(self.codec.id()); // CreateTime, not transactional
        header.put_i32(self.count.saturating_sub(1));
        header.put_i64(self.base_timestamp);
        header.put_i64(self.max_timestamp);
        header.put_i64(self.producer.id);
        header.put_i16(self.producer.epoch);
        header.put_i32(self.base_sequence);
        header.put_i32(self.count);
        let crc = crc32c::crc32c(batch.get(CRC_COVERS_FROM..).unwrap_or_default());
        if let Some(slot) = batch.get_mut(CRC_AT..CRC_COVERS_FROM) {
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(())
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Length-prefixed bytes: varint length (-1 for null), then the bytes.
fn put_bytes(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(buf, len_i64(b.len()));
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    bytes.map_or(1, |b| varint_len(len_i64(b.len())) + b.len())
}

/// Kafka's zigzag varint/varlong (one encoding for both widths).
fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    // 1 byte per started group of 7 bits, at least one: ceil(bits / 7),
    // exact for bits in 1..=64 as one multiply and a shift (`div_ceil`
    // added a division's remainder test: ~36 instructions per record in
    // `body_len`, by callgrind; `varint_lengths_match_the_encoding`
    // checks every width).
    let bits = 64 - (z | 1).leading_zeros() as usize;
    (bits * 37 + 219) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_builder::{encode_batch, record};
    use crate::record_batch::{BatchIter, RecordBatchView};
    use crate::records::BatchRecords;

    type Fields = (
        i64,
        Option<Bytes>,
        Option<Bytes>,
        Vec<(String, Option<Bytes>)>,
    );

    fn fields(n: usize) -> Vec<Fields> {
        (0..n)
            .map(|i| {
                (
                    1_700_000_000_000 + (i as i64 % 7) * 1000 - 3000,
                    i.is_multiple_of(3).then(|| Bytes::from(format!("key-{i}"))),
                    (i % 5 != 4).then(|| Bytes::from(vec![b'v'; i * 37 % 300])),
                    if i.is_multiple_of(2) {
                        vec![
                            ("h".into(), Some(Bytes::from_static(b"x"))),
                            ("n".into(), None),
                        ]
                    } else {
                        Vec::new()
                    },
                )
            })
            .collect()
    }

    fn write(records: &[Fields], codec: CompressionType, seq: i32) -> Bytes {
        let mut w = BatchWriter::new(1 << 20);
        for (ts, k, v, h) in records {
            let parts = RecordParts {
                timestamp: *ts,
                key: k.as_deref(),
                value: v.as_deref(),
                headers: h,
            };
            let before = w.records_bytes();
            let len = w.encoded_len(&parts);
            assert!(w.try_append(&parts));
            assert_eq!(w.records_bytes() - before, len, "encoded_len is exact");
        }
        let producer = ProducerIdentity { id: 42, epoch: 3 };
        w.finish(codec, producer, seq).expect("finishes")
    }

    #[test]
    fn uncompressed_batch_is_byte_identical_to_the_builder() {
        let records = fields(50);
        let mut built: Vec<_> = records
            .iter()
            .map(|(ts, k, v, h)| record(*ts, k.clone(), v.clone(), h.clone()))
            .collect();
        let producer = ProducerIdentity { id: 42, epoch: 3 };
        let expected =
            encode_batch(&mut built, CompressionType::None, producer, 17).expect("encodes");
        assert_eq!(write(&records, CompressionType::None, 17), expected);
    }

    #[test]
    fn every_codec_reads_back_record_for_record() {
        let records = fields(64);
        for codec in CompressionType::ALL {
            let batch = write(&records, codec, -1);
            let views: Vec<_> = BatchIter::new(&batch, usize::MAX)
                .collect::<Result<_>>()
                .expect("parses");
            assert_eq!(views.len(), 1);
            let view: &RecordBatchView<'_> = &views[0].1;
            view.verify_crc().expect("crc");
            assert_eq!(view.compression(), Some(codec));
            assert_eq!(view.records_count(), 64);
            assert_eq!(view.last_offset_delta(), 63);
            assert_eq!(view.base_sequence(), -1);
            assert_eq!(view.max_timestamp(), 1_700_000_000_000 + 3000);
            let decoded = BatchRecords::new(*view, 1 << 24).expect("decodes");
            let got: Vec<_> = decoded.iter().collect::<Result<_>>().expect("records");
            assert_eq!(got.len(), records.len());
            for (i, (r, (ts, k, v, h))) in got.iter().zip(&records).enumerate() {
                assert_eq!(r.offset_delta, i as i32);
                assert_eq!(view.base_timestamp() + r.timestamp_delta, *ts);
                assert_eq!(r.key, k.as_deref());
                assert_eq!(r.value, v.as_deref());
                assert_eq!(r.headers.len(), h.len());
            }
        }
    }

    #[test]
    fn a_recycled_buffer_writes_the_same_batches() {
        let records = fields(40);
        let producer = ProducerIdentity { id: 42, epoch: 3 };
        for codec in CompressionType::ALL {
            let mut spare = None;
            for round in 0..3 {
                let mut w = match spare.take() {
                    Some(buf) => BatchWriter::with_buffer(buf, 1 << 20),
                    None => BatchWriter::new(1 << 20),
                };
                // A different prefix each round, then the same records.
                for (ts, k, v, h) in records.iter().skip(round) {
                    let parts = RecordParts {
                        timestamp: *ts,
                        key: k.as_deref(),
                        value: v.as_deref(),
                        headers: h,
                    };
                    assert!(w.try_append(&parts));
                }
                let (batch, back) = w.finish_recycling(codec, producer, 5).expect("finishes");
                assert_eq!(back.is_some(), codec != CompressionType::None, "{codec:?}");
                assert_eq!(
                    batch,
                    write(&records[round..], codec, 5),
                    "{codec:?} round {round}"
                );
                spare = back;
            }
        }
    }

    #[test]
    fn a_full_batch_refuses_without_change_but_an_empty_one_takes_a_large_record() {
        let big = vec![b'x'; 500];
        let parts = RecordParts {
            timestamp: 1,
            key: None,
            value: Some(&big),
            headers: &[],
        };
        let mut w = BatchWriter::new(100);
        assert!(w.try_append(&parts), "first record always fits");
        let len = w.records_bytes();
        assert!(!w.try_append(&parts));
        assert_eq!(w.records_bytes(), len);
        assert_eq!(w.record_count(), 1);
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        // Every bit width of the zigzag value, at both ends.
        let widths = (0..63).flat_map(|bit| [1i64 << bit, -(1i64 << bit), (1i64 << bit) - 1]);
        for v in widths {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            8192,
            i32::MAX.into(),
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }
}
