//! What the fuzz targets share: the broker's checks of a produced batch,
//! replayed with `sluice-protocol` calls only (the fuzz crate does not link
//! the broker and its runtime).
//!
//! # Invariants
//! - [`validate_produced_batch`] runs the same steps, in the same order and
//!   with the same bounds, as `broker/src/handlers/produce.rs`
//!   `validate_single_batch`: size cap, header parse, exactly one batch,
//!   `validate_batch` (CRC-32C, codec, every record) with the records
//!   decompressed into at most `max_message_bytes * RECORDS_EXPANSION_MAX`.
//!
//! # Caveats
//! - If the broker's sequence changes, this copy must follow; it is kept
//!   short so the two are easy to compare.

use bytes::Bytes;
use sluice_protocol::batch_builder::{ProducerIdentity, encode_batch, record};
use sluice_protocol::records::{BatchRecords, BatchSummary, validate_batch};
use sluice_protocol::{CompressionType, DecodeError, RecordBatchView};
use sluice_storage::LogConfig;

/// The broker's default `message.max.bytes` (Kafka's 1 MiB + 12).
pub const MESSAGE_MAX_BYTES: usize = 1_048_588;

/// `broker/src/handlers/produce.rs` `RECORDS_EXPANSION_MAX`.
pub const RECORDS_EXPANSION_MAX: usize = 64;

/// Validates `records` as the produce path does; on success also walks
/// every record a second time through [`BatchRecords`] (what ListOffsets
/// and the group coordinator do with a stored batch) and checks that the
/// walk agrees with the summary.
pub fn validate_produced_batch(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<BatchSummary, DecodeError> {
    if records.len() > max_message_bytes {
        return Err(DecodeError::BatchTruncated {
            needed: records.len(),
            available: max_message_bytes,
        });
    }
    let view = RecordBatchView::parse(records, max_message_bytes)?;
    if view.size() != records.len() {
        return Err(DecodeError::BatchTruncated {
            needed: view.size(),
            available: records.len(),
        });
    }
    let bound = max_message_bytes.saturating_mul(RECORDS_EXPANSION_MAX);
    let summary = validate_batch(&view, bound)?;
    let walked = BatchRecords::new(view, bound)?;
    let mut count = 0i32;
    for record in walked.iter() {
        let record = record?;
        assert_eq!(
            record.offset_delta, count,
            "validated batch re-walks differently"
        );
        assert_eq!(
            record.headers.iter().count(),
            record.headers.len(),
            "headers checked at parse must iterate whole"
        );
        count += 1;
    }
    assert_eq!(
        count, summary.records_count,
        "validated batch re-walks differently"
    );
    assert_eq!(walked.bytes().len(), summary.uncompressed_bytes);
    assert!(
        summary.uncompressed_bytes <= bound,
        "decompression exceeded its bound"
    );
    Ok(summary)
}

/// The log settings of the `log_recovery` target and of its seeds: small
/// segments and indexes, so little input reaches rolls and full indexes.
pub fn recovery_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        segment_index_bytes: 1024,
        index_interval_bytes: 512,
        max_message_bytes: 64 * 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A valid uncompressed batch of `count` records stamped `timestamp`,
/// built by the repo's batch builder.
pub fn plain_batch(count: i64, timestamp: i64) -> Bytes {
    let mut records: Vec<_> = (0..count)
        .map(|i| record(timestamp + i, None, Some(Bytes::from_static(b"fuzz")), []))
        .collect();
    match encode_batch(
        &mut records,
        CompressionType::None,
        ProducerIdentity::NONE,
        -1,
    ) {
        Ok(batch) => batch,
        Err(e) => panic!("the batch builder refused a plain batch: {e}"),
    }
}
