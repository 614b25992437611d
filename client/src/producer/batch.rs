//! Building one RecordBatch v2 from records, with kafka-protocol's
//! `RecordBatchEncoder` and Sluice's codecs.
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 = 2 |
//! crc u32 (CRC-32C of what follows) | attributes i16 | lastOffsetDelta i32 |
//! baseTimestamp i64 | maxTimestamp i64 | producerId i64 | producerEpoch i16 |
//! baseSequence i32 | recordsCount i32 | records (compressed as one unit)
//! ```
//!
//! kafka-protocol writes the header, the varint records and the CRC-32C;
//! compression goes through `sluice_protocol::compression::compress`
//! (lz4_flex frames, xerial snappy), because kafka-protocol's own LZ4 is
//! the slow LZ4-HC (see `shared/crates.md`).
//!
//! # Invariants
//! - One call makes exactly one batch: every record gets the same producer
//!   id and epoch, offsets `0..n` and sequences `base..base+n` (the encoder
//!   starts a new batch wherever `offset - sequence` changes).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
use sluice_protocol::compression::{CompressionType, compress};

use crate::error::{Result, protocol};
use crate::producer::Compression;

/// Producer identity written into a batch; `-1`s when not idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

impl ProducerIdentity {
    pub(crate) const NONE: Self = Self { id: -1, epoch: -1 };
}

/// Encodes `records` as one batch. `base_sequence` is -1 when not
/// idempotent.
pub(crate) fn encode_batch(
    records: &mut [Record],
    compression: Compression,
    producer: ProducerIdentity,
    base_sequence: i32,
) -> Result<Bytes> {
    for (i, r) in records.iter_mut().enumerate() {
        let i = i32::try_from(i).map_err(|_| protocol("too many records in one batch"))?;
        r.offset = i64::from(i);
        r.sequence = base_sequence.wrapping_add(i);
        r.producer_id = producer.id;
        r.producer_epoch = producer.epoch;
    }
    let options = RecordEncodeOptions {
        version: 2,
        compression: compression.kafka_protocol(),
    };
    let codec = compression.codec();
    let compressor = move |records: &mut BytesMut,
                           out: &mut BytesMut,
                           _: kafka_protocol::records::Compression| {
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
    .map_err(|e| protocol(format!("record batch does not encode: {e}")))?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::TimestampType;
    use sluice_protocol::{BatchIter, BatchRecords};

    use super::*;

    fn record(i: usize) -> Record {
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
            timestamp: 1_700_000_000_000 + i as i64,
            key: i.is_multiple_of(2).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: IndexMap::new(),
        }
    }

    #[test]
    fn every_codec_makes_one_valid_batch_that_reads_back() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut records: Vec<Record> = (0..100).map(record).collect();
            let id = ProducerIdentity { id: 7, epoch: 2 };
            let bytes = encode_batch(&mut records, compression, id, 40).unwrap();
            let batches: Vec<_> = BatchIter::new(&bytes, 1 << 20).collect();
            assert_eq!(batches.len(), 1, "{compression:?}");
            let (_, view) = batches.into_iter().next().unwrap().unwrap();
            view.verify_crc().unwrap();
            assert_eq!(view.records_count(), 100);
            assert_eq!(view.base_sequence(), 40);
            assert_eq!(view.producer_id(), 7);
            assert_eq!(view.last_offset_delta(), 99);
            assert_eq!(view.compression(), Some(compression.codec()));
            let recs = BatchRecords::new(view, 1 << 20).unwrap();
            let values: Vec<Vec<u8>> = recs
                .iter()
                .map(|r| r.unwrap().value.unwrap().to_vec())
                .collect();
            assert_eq!(values.len(), 100);
            assert_eq!(values[99], b"value-99");
        }
    }

    #[test]
    fn non_idempotent_batch_has_base_sequence_minus_one() {
        let mut records: Vec<Record> = (0..3).map(record).collect();
        let bytes =
            encode_batch(&mut records, Compression::None, ProducerIdentity::NONE, -1).unwrap();
        let (_, view) = BatchIter::new(&bytes, 1 << 20).next().unwrap().unwrap();
        assert_eq!(view.base_sequence(), -1);
        assert_eq!(view.producer_id(), -1);
        assert_eq!(view.records_count(), 3);
    }
}
