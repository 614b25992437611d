//! Building one RecordBatch v2 from kafka-protocol `Record`s: the group
//! coordinator's offset records, tests and fuzz seeds. The producer's hot
//! path writes batches with [`crate::batch_writer`] instead (no per-record
//! struct or allocation), and that writer's tests check it byte for byte
//! against this builder.
//!
//! kafka-protocol's `RecordBatchEncoder` writes the header, the varint
//! records and the CRC-32C; compression goes through
//! [`crate::compression::compress`] (lz4_flex frames, xerial snappy),
//! because kafka-protocol's own LZ4 is the slow LZ4-HC (`shared/crates.md`).
//!
//! # Invariants
//! - One call makes exactly one batch: every record gets the same producer
//!   id and epoch, offsets `0..n` and sequences `base..base+n`. The encoder
//!   starts a new batch wherever `offset - sequence` changes, so a
//!   non-idempotent batch (base sequence -1) gets sequences `-1..n-1`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::compression::compress;
use crate::error::{DecodeError, Result};
use crate::record_batch::CompressionType;

/// The producer identity written into a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

impl ProducerIdentity {
    /// Not idempotent: producer id and epoch -1.
    pub const NONE: Self = Self { id: -1, epoch: -1 };
}

/// A record to put in a batch: timestamp (CreateTime), key, value, headers.
pub fn record(
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: impl IntoIterator<Item = (String, Option<Bytes>)>,
) -> Record {
    let headers: IndexMap<StrBytes, Option<Bytes>> = headers
        .into_iter()
        .map(|(k, v)| (StrBytes::from_string(k), v))
        .collect();
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key,
        value,
        headers,
    }
}

/// One uncompressed, non-idempotent batch of `count` records with the
/// value `v`, stamped `first_timestamp`, `first_timestamp + step`, …: the
/// plain batch most tests append.
pub fn plain_batch(count: i64, first_timestamp: i64, step: i64) -> Result<Bytes> {
    let mut records: Vec<_> = (0..count)
        .map(|i| {
            let timestamp = first_timestamp + step * i;
            record(timestamp, None, Some(Bytes::from_static(b"v")), [])
        })
        .collect();
    encode_batch(
        &mut records,
        CompressionType::None,
        ProducerIdentity::NONE,
        -1,
    )
}

/// Encodes `records` as one batch with `codec`; `base_sequence` is -1 when
/// not idempotent. Rewrites each record's offset, sequence and producer
/// fields.
pub fn encode_batch(
    records: &mut [Record],
    codec: CompressionType,
    producer: ProducerIdentity,
    base_sequence: i32,
) -> Result<Bytes> {
    let encode_error = |reason: String| DecodeError::Encode {
        what: "record batch",
        api_version: 2,
        reason,
    };
    for (i, r) in records.iter_mut().enumerate() {
        let i = i32::try_from(i).map_err(|_| encode_error("too many records".into()))?;
        r.offset = i64::from(i);
        r.sequence = base_sequence.wrapping_add(i);
        r.producer_id = producer.id;
        r.producer_epoch = producer.epoch;
    }
    let options = RecordEncodeOptions {
        version: 2,
        compression: kafka_codec(codec),
    };
    let compressor = move |records: &mut BytesMut, out: &mut BytesMut, _: Compression| {
        if codec == CompressionType::None {
            out.put_slice(records);
        } else {
            out.put_slice(&compress(codec, records, None)?);
        }
        Ok(())
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut out,
        records.iter(),
        &options,
        Some(compressor),
    )
    .map_err(|e| encode_error(e.to_string()))?;
    Ok(out.freeze())
}

/// kafka-protocol's name for a codec: only the attribute bits it writes.
fn kafka_codec(codec: CompressionType) -> Compression {
    match codec {
        CompressionType::None => Compression::None,
        CompressionType::Gzip => Compression::Gzip,
        CompressionType::Snappy => Compression::Snappy,
        CompressionType::Lz4 => Compression::Lz4,
        CompressionType::Zstd => Compression::Zstd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::BatchIter;
    use crate::records::BatchRecords;

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                record(
                    1_700_000_000_000 + i as i64,
                    i.is_multiple_of(2).then(|| Bytes::from(format!("k{i}"))),
                    Some(Bytes::from(format!("value-{i}"))),
                    [("h".to_string(), Some(Bytes::from_static(b"v")))],
                )
            })
            .collect()
    }

    #[test]
    fn every_codec_makes_one_valid_batch_that_reads_back() {
        for codec in CompressionType::ALL {
            let mut recs = records(100);
            let id = ProducerIdentity { id: 7, epoch: 2 };
            let bytes = encode_batch(&mut recs, codec, id, 40).unwrap();
            let batches: Vec<_> = BatchIter::new(&bytes, 1 << 20).collect();
            assert_eq!(batches.len(), 1, "{codec:?}");
            let (_, view) = batches.into_iter().next().unwrap().unwrap();
            view.verify_crc().unwrap();
            assert_eq!(view.records_count(), 100);
            assert_eq!(view.base_sequence(), 40);
            assert_eq!(view.producer_id(), 7);
            assert_eq!(view.last_offset_delta(), 99);
            assert_eq!(view.compression(), Some(codec));
            let read = BatchRecords::new(view, 1 << 20).unwrap();
            let values: Vec<Vec<u8>> = read
                .iter()
                .map(|r| r.unwrap().value.unwrap().to_vec())
                .collect();
            assert_eq!(values.len(), 100);
            assert_eq!(values[99], b"value-99");
        }
    }

    #[test]
    fn non_idempotent_batch_is_one_batch_with_base_sequence_minus_one() {
        let mut recs = records(3);
        let bytes =
            encode_batch(&mut recs, CompressionType::None, ProducerIdentity::NONE, -1).unwrap();
        let batches: Vec<_> = BatchIter::new(&bytes, 1 << 20).collect();
        assert_eq!(batches.len(), 1);
        let (_, view) = batches.into_iter().next().unwrap().unwrap();
        assert_eq!((view.base_sequence(), view.producer_id()), (-1, -1));
        assert_eq!(view.records_count(), 3);
    }
}
