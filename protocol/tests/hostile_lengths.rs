//! Hostile array lengths must be an `Err`, never an abort.
//!
//! kafka-protocol 0.18.0 as published sizes `Vec::with_capacity(n)` from the
//! wire: these two bodies make it try to allocate tens of gigabytes and the
//! process dies with SIGABRT. The vendored copy clamps the capacity to the
//! bytes remaining, so decoding fails on the first missing element instead.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
use kafka_protocol::protocol::Decodable;

/// Generous: the clamped decoder fails in microseconds; the unclamped one
/// never returns at all. The bound only catches a decoder that loops over
/// the claimed count without reading.
const DECODE_TIME_MAX: Duration = Duration::from_secs(2);

#[test]
fn produce_v9_with_huge_compact_topic_array_is_an_error() {
    // v9 is flexible: transactional_id (compact nullable string, null = 0),
    // acks (i16), timeout_ms (i32), then the topics compact array whose
    // unsigned varint 0x0FFFFFFF (the largest 4-byte varint) claims
    // 0x0FFFFFFE topics. Eleven bytes in all, and no topic follows.
    let body = Bytes::from_static(&[
        0x00, // transactional_id = null
        0xFF, 0xFF, // acks = -1
        0x00, 0x00, 0x75, 0x30, // timeout_ms = 30000
        0xFF, 0xFF, 0xFF, 0x7F, // topics: varint 0x0FFFFFFF
    ]);
    assert_eq!(body.len(), 11);
    let started = Instant::now();
    let decoded = ProduceRequest::decode(&mut body.clone(), 9);
    assert!(
        decoded.is_err(),
        "11-byte produce v9 body decoded: {decoded:?}"
    );
    assert!(
        started.elapsed() < DECODE_TIME_MAX,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn metadata_v4_claiming_i32_max_topics_is_an_error() {
    // v4 is not flexible: topics is a nullable i32-length array.
    let body = Bytes::from_static(&[0x7F, 0xFF, 0xFF, 0xFF]);
    let started = Instant::now();
    let decoded = MetadataRequest::decode(&mut body.clone(), 4);
    assert!(
        decoded.is_err(),
        "4-byte metadata v4 body decoded: {decoded:?}"
    );
    assert!(
        started.elapsed() < DECODE_TIME_MAX,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn compact_string_claiming_four_gigabytes_is_an_error() {
    // CreateTopics v5 (flexible) topic name: a compact string whose varint
    // claims u32::MAX - 1 bytes. The patched decoder checks the bytes are
    // present before copying instead of zero-filling a 4 GiB buffer.
    let body = Bytes::from_static(&[
        0x02, // topics: compact array of one
        0xFF, 0xFF, 0xFF, 0xFF, 0x0F, // name: varint u32::MAX
    ]);
    let decoded = kafka_protocol::messages::CreateTopicsRequest::decode(&mut body.clone(), 5);
    assert!(decoded.is_err(), "decoded: {decoded:?}");
}
