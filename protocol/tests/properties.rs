//! Property tests: decoding arbitrary bytes never panics, and codecs round
//! trip. Bounded case counts so `cargo test` stays quick; `cargo fuzz` is
//! the place for long runs.

// Test code: clippy.toml exempts `#[test]` bodies, not this file's helpers.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest,
};
use sluice_protocol::{
    CompressionType, DecodeError, RecordBatchView, RecordIter, compress, decode_frame,
    decode_request_header, decompress, validate_batch,
};

fn codec() -> impl Strategy<Value = CompressionType> {
    prop_oneof![
        Just(CompressionType::None),
        Just(CompressionType::Gzip),
        Just(CompressionType::Snappy),
        Just(CompressionType::Lz4),
        Just(CompressionType::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_decode_never_panics_and_respects_the_max(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        max in 0usize..48,
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        match decode_frame(&mut buf, max) {
            Ok(Some(frame)) => {
                prop_assert!(frame.len() <= max);
                prop_assert_eq!(buf.len() + frame.len() + 4, bytes.len());
            }
            Ok(None) => prop_assert_eq!(buf.len(), bytes.len()),
            Err(DecodeError::FrameTooLarge { max: m, .. }) => prop_assert_eq!(m, max),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn header_and_body_decode_never_panic(
        key in prop_oneof![Just(0i16), Just(1), Just(3), any::<i16>()],
        version in -1i16..16,
        rest in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut frame = Vec::with_capacity(4 + rest.len());
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&rest);
        if let Ok(request) = decode_request_header(Bytes::from(frame)) {
            prop_assert_eq!(request.api_key as i16, key);
            // Only the result's shape matters: no panic, no abort.
            match request.api_key {
                ApiKey::Produce => { let _ = request.decode_body::<ProduceRequest>(); }
                ApiKey::Fetch => { let _ = request.decode_body::<FetchRequest>(); }
                ApiKey::Metadata => { let _ = request.decode_body::<MetadataRequest>(); }
                _ => {}
            }
        }
    }

    #[test]
    fn decompressing_arbitrary_bytes_never_panics(
        codec in codec(),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(out) = decompress(codec, &bytes, 4096) {
            prop_assert!(out.len() <= 4096);
        }
    }

    #[test]
    fn records_iteration_over_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut consumed = 0;
        for record in RecordIter::new(&bytes) {
            match record {
                Ok(r) => {
                    consumed += 1;
                    prop_assert!(r.headers.iter().count() == r.headers.len());
                }
                Err(_) => break,
            }
        }
        prop_assert!(consumed <= bytes.len());
    }

    #[test]
    fn validating_arbitrary_records_in_a_valid_batch_never_panics(
        attributes in 0i16..8,
        last_offset_delta in -2i32..4,
        records_count in -2i32..4,
        records in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let batch = batch(attributes, last_offset_delta, records_count, &records);
        let view = RecordBatchView::parse(&batch, 1 << 20).unwrap();
        if let Ok(summary) = validate_batch(&view, 1 << 16) {
            prop_assert_eq!(summary.records_count, records_count);
            prop_assert_eq!(summary.records_count, last_offset_delta + 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compression_round_trips(
        codec in codec(),
        level in proptest::option::of(1i32..10),
        bytes in proptest::collection::vec(any::<u8>(), 0..70_000),
    ) {
        let packed = compress(codec, &bytes, level).unwrap();
        let unpacked = decompress(codec, &packed, bytes.len()).unwrap();
        prop_assert_eq!(&unpacked[..], &bytes[..]);
        if !bytes.is_empty() {
            let short = decompress(codec, &packed, bytes.len() - 1);
            prop_assert!(
                matches!(short, Err(DecodeError::DecompressedTooLarge { .. })),
                "{:?}",
                short
            );
        }
    }
}

/// A RecordBatch v2 with a valid CRC around arbitrary record bytes.
fn batch(attributes: i16, last_offset_delta: i32, records_count: i32, records: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 61];
    b.extend_from_slice(records);
    let batch_length = i32::try_from(b.len() - 12).unwrap();
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    b[57..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
