//! Re-encoding a produced RecordBatch v2 under another codec: what a
//! broker does when a topic's `compression.type` names a codec other than
//! the one the producer used.
//!
//! ```text
//! batch (codec A) ─► records decompressed (bounded, `grow` asked first)
//!                 ─► compressed with codec B at the topic's level
//!                 ─► header copied: codec bits, batchLength, CRC-32C rewritten
//! ```
//!
//! Record bytes inside a batch do not depend on the codec (the codec wraps
//! the whole run of records), so the records are not re-encoded one by
//! one: the decompressed run is compressed again as it is. Every other
//! header field (base offset, producer id/epoch, base sequence, timestamps,
//! timestamp type, last offset delta, record count) is kept, so idempotence
//! and the time index see the batch the producer sent.
//!
//! # Copies
//! Three buffers: the decompressed records (none when the batch is
//! uncompressed), the compressed records (none when the target is
//! uncompressed), and the new batch. This path is taken only when the codec
//! differs; a topic with `compression.type=producer`, or a batch already in
//! the topic's codec, keeps the zero-copy append.
//!
//! # Limits
//! - The decompressed records are bounded by `records_bytes_max` and the
//!   caller's `grow` (a broker-wide budget), as in produce validation.
//! - The output is at most the codec's worst case over the decompressed
//!   size; the caller checks the new batch against `max.message.bytes`
//!   (Kafka re-checks a batch whose size validation may have changed).
//!
//! # References
//! Kafka's `LogValidator.buildRecordsAndAssignOffsets` and
//! `validateMessagesAndAssignOffsetsCompressed`; KIP-390 (levels).

use bytes::Bytes;

use crate::compression::{OutputGrowth, compress};
use crate::error::Result;
use crate::record_batch::{CompressionType, RecordBatchView};
use crate::records::BatchRecords;

/// The codec and level a batch is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub compression: CompressionType,
    /// The codec's level; `None` for its default (snappy has no levels).
    pub level: Option<i32>,
}

/// `view` re-encoded with `target`: a new batch, or `None` when the batch
/// already uses `target`'s codec (Kafka does not recompress a batch whose
/// codec matches, whatever its level).
pub fn recompress_within(
    view: &RecordBatchView<'_>,
    target: Codec,
    records_bytes_max: usize,
    grow: OutputGrowth<'_>,
) -> Result<Option<Bytes>> {
    if view.compression() == Some(target.compression) {
        return Ok(None);
    }
    let records = BatchRecords::new_within(*view, records_bytes_max, grow)?;
    let count = view.records_count();
    let batch = match target.compression {
        CompressionType::None => {
            view.with_records(CompressionType::None, count, records.bytes())?
        }
        codec => {
            let compressed = compress(codec, records.bytes(), target.level)?;
            view.with_records(codec, count, &compressed)?
        }
    };
    Ok(Some(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_builder::ProducerIdentity;
    use crate::batch_writer::{BatchWriter, RecordParts};
    use crate::records::validate_batch;

    fn batch(codec: CompressionType) -> Bytes {
        let mut w = BatchWriter::new(64 * 1024);
        for i in 0..50_i64 {
            let value = format!("value-{i}-").repeat(20);
            let key = format!("key-{}", i % 7);
            assert!(w.try_append(&RecordParts {
                timestamp: 1_000 + i,
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: &[("h".to_string(), Some(Bytes::from_static(b"v")))],
            }));
        }
        let producer = ProducerIdentity { id: 42, epoch: 3 };
        w.finish(codec, producer, 17).unwrap()
    }

    #[test]
    fn every_codec_to_every_codec_keeps_records_and_header() {
        for from in CompressionType::ALL {
            let original = batch(from);
            let view = RecordBatchView::parse(&original, usize::MAX).unwrap();
            let plain = BatchRecords::new(view, usize::MAX)
                .unwrap()
                .bytes()
                .to_vec();
            for to in CompressionType::ALL {
                for level in [None, Some(1)] {
                    let target = Codec {
                        compression: to,
                        level,
                    };
                    let out = recompress_within(&view, target, usize::MAX, &mut |_| true).unwrap();
                    let Some(out) = out else {
                        assert_eq!(from, to, "{from:?} → {to:?} was not recompressed");
                        continue;
                    };
                    assert_ne!(from, to);
                    let new = RecordBatchView::parse(&out, usize::MAX).unwrap();
                    let summary = validate_batch(&new, usize::MAX).unwrap();
                    assert_eq!(new.compression(), Some(to));
                    assert_eq!(summary.records_count, 50);
                    assert_eq!(new.producer_id(), 42);
                    assert_eq!(new.producer_epoch(), 3);
                    assert_eq!(new.base_sequence(), 17);
                    assert_eq!(new.base_timestamp(), view.base_timestamp());
                    assert_eq!(new.max_timestamp(), view.max_timestamp());
                    assert_eq!(new.last_offset_delta(), view.last_offset_delta());
                    let again = BatchRecords::new(new, usize::MAX).unwrap();
                    assert_eq!(again.bytes(), plain.as_slice(), "{from:?} → {to:?}");
                }
            }
        }
    }

    #[test]
    fn the_budget_and_bound_are_honoured() {
        let original = batch(CompressionType::Gzip);
        let view = RecordBatchView::parse(&original, usize::MAX).unwrap();
        let target = Codec {
            compression: CompressionType::Lz4,
            level: None,
        };
        assert!(recompress_within(&view, target, 100, &mut |_| true).is_err());
        assert!(recompress_within(&view, target, usize::MAX, &mut |_| false).is_err());
    }
}
