//! The record-batch validator with all four codecs: what a produced batch
//! goes through before it reaches a log (`sluice_fuzz::validate_produced_batch`,
//! the broker's sequence), what recovery and ListOffsets do with stored
//! batches (`BatchIter`, `offset_for_timestamp`), and the bounded
//! decompressors on their own.
//!
//! Input layout: byte 0 is a mode, the rest a batch (or several back to
//! back). Mode bit 0 set: rewrite the CRC-32C of every batch before
//! validating, so mutations reach the codecs and the record parser instead
//! of stopping at the checksum. Bits 1-3 pick a codec (0-4, wrapping) to
//! decompress the bytes after the 61-byte header with directly, under a
//! small output bound that must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{MESSAGE_MAX_BYTES, RECORDS_EXPANSION_MAX, validate_produced_batch};
use sluice_protocol::records::offset_for_timestamp;
use sluice_protocol::{BatchIter, CompressionType, RecordBatchView, decompress};

/// Output bound for the direct decompression: small, so a bound that is
/// not enforced shows as a failed assertion rather than as memory use.
const DIRECT_OUTPUT_MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, batch)) = data.split_first() else {
        return;
    };
    let mut batch = batch.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut batch);
    }

    let _ = validate_produced_batch(&batch, MESSAGE_MAX_BYTES);

    let bound = MESSAGE_MAX_BYTES * RECORDS_EXPANSION_MAX;
    let mut next_position = 0;
    for item in BatchIter::new(&batch, MESSAGE_MAX_BYTES) {
        let Ok((position, view)) = item else { break };
        assert_eq!(position, next_position, "batches are back to back");
        next_position = position + view.size();
        if view.verify_crc().is_ok() {
            for ts in [i64::MIN, view.base_timestamp(), view.max_timestamp()] {
                let _ = offset_for_timestamp(&view, ts, bound);
            }
        }
    }

    let codecs = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];
    let codec = codecs[usize::from(mode >> 1) % codecs.len()];
    if let Some(payload) = batch.get(61..) {
        if let Ok(out) = decompress(codec, payload, DIRECT_OUTPUT_MAX) {
            assert!(
                out.len() <= DIRECT_OUTPUT_MAX,
                "{codec:?} exceeded its bound"
            );
        }
    }
});

/// Rewrites the CRC-32C (bytes 17..21, over bytes 21..end) of each batch
/// whose length field fits the buffer.
fn fix_crcs(buf: &mut [u8]) {
    let mut at = 0;
    while let Some(rest) = buf.get_mut(at..) {
        let Ok(view) = RecordBatchView::parse(rest, MESSAGE_MAX_BYTES) else {
            // Not parseable as a whole batch: fix what the header claims
            // if it is at least long enough to hold a CRC.
            if rest.len() > 21 {
                let crc = crc32c::crc32c(&rest[21..]);
                rest[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            return;
        };
        let size = view.size();
        let crc = crc32c::crc32c(&rest[21..size]);
        rest[17..21].copy_from_slice(&crc.to_be_bytes());
        at += size;
    }
}
