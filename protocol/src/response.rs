//! A whole response frame for every API except Fetch: size prefix, response
//! header, body encoded by kafka-protocol, in one buffer.
//!
//! ```text
//! size (i32) | response header (v0: 4 bytes, v1: 5) | body
//! ```
//!
//! Fetch responses carry record bytes that should go to the socket straight
//! from the segment files, so they are framed by `fetch_response.rs`
//! instead.
//!
//! # Invariants
//! - The size prefix equals the bytes that follow it: the body's size is
//!   computed first and the buffer is reserved exactly once.
//!
//! It also answers Produce v0–2, which Sluice advertises but does not serve
//! (see `api.rs`) and kafka-protocol cannot encode: every partition of the
//! request gets the same error, normally UNSUPPORTED_VERSION.
//!
//! ```text
//! ProduceResponse v0–2 (header v0)
//!   responses [i32 n]: name string, partitions [i32 n]:
//!     index i32, error_code i16, base_offset i64, log_append_time i64 (v2)
//!   throttle_time_ms i32 (v1+)
//! ```
//!
//! # Limits
//! - A response larger than `i32::MAX` bytes is an error, not a wrapped
//!   size.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::{DecodeError, Result};
use crate::error_code::ErrorCode;
use crate::frame::{FRAME_SIZE_PREFIX_BYTES, frame_size_prefix};
use crate::header::{RequestFrame, encode_response_header, response_header_bytes};

/// Produce versions kafka-protocol cannot decode or encode (removed in
/// Kafka 4.0), answered by [`encode_legacy_produce_error`].
pub const LEGACY_PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=2;

/// Encodes `body` as the complete response frame to a request for
/// `api_key` at `api_version` with `correlation_id`.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<Bytes> {
    let encode_error = |e: &dyn std::fmt::Display| DecodeError::Encode {
        what: "response",
        api_version,
        reason: format!("{api_key:?}: {e}"),
    };
    let body_bytes = body
        .compute_size(api_version)
        .map_err(|e| encode_error(&e))?;
    let size = response_header_bytes(api_key, api_version).saturating_add(body_bytes);
    let prefix = frame_size_prefix(size)?;
    let mut out = BytesMut::with_capacity(FRAME_SIZE_PREFIX_BYTES + size);
    out.put_slice(&prefix);
    encode_response_header(&mut out, api_key, api_version, correlation_id);
    body.encode(&mut out, api_version)
        .map_err(|e| encode_error(&e))?;
    debug_assert_eq!(out.len(), FRAME_SIZE_PREFIX_BYTES + size);
    Ok(out.freeze())
}

/// The complete response frame to a Produce v0–2 request: `error` for
/// every partition it names, base offset -1.
///
/// A v0–2 body is a v3 body without the leading `transactional_id`, so it
/// is decoded as v3 behind a null one (one small copy, on a path no
/// current client takes).
pub fn encode_legacy_produce_error(request: &RequestFrame, error: ErrorCode) -> Result<Bytes> {
    let version = request.api_version();
    if request.api_key != ApiKey::Produce || !LEGACY_PRODUCE_VERSIONS.contains(&version) {
        return Err(DecodeError::Encode {
            what: "legacy ProduceResponse",
            api_version: version,
            reason: format!("{:?} is not Produce v0-2", request.api_key),
        });
    }
    let mut body = BytesMut::with_capacity(2 + request.body.len());
    body.put_i16(-1);
    body.put_slice(&request.body);
    let produce =
        ProduceRequest::decode(&mut body.freeze(), 3).map_err(|e| DecodeError::Malformed {
            what: "request body",
            api_key: ApiKey::Produce as i16,
            api_version: version,
            correlation_id: Some(request.correlation_id()),
            reason: e.to_string(),
        })?;
    let mut out = BytesMut::new();
    out.put_i32(0); // size, patched below
    encode_response_header(&mut out, ApiKey::Produce, version, request.correlation_id());
    put_array_len(&mut out, produce.topic_data.len())?;
    for topic in &produce.topic_data {
        let name = topic.name.as_bytes();
        let name_len = i16::try_from(name.len()).map_err(|_| DecodeError::EncodeOverflow {
            field: "topic name length",
            value: name.len() as u64,
        })?;
        out.put_i16(name_len);
        out.put_slice(name);
        put_array_len(&mut out, topic.partition_data.len())?;
        for partition in &topic.partition_data {
            out.put_i32(partition.index);
            out.put_i16(error.code());
            out.put_i64(-1); // base_offset
            if version >= 2 {
                out.put_i64(-1); // log_append_time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let prefix = frame_size_prefix(out.len() - FRAME_SIZE_PREFIX_BYTES)?;
    if let Some(size) = out.get_mut(..FRAME_SIZE_PREFIX_BYTES) {
        size.copy_from_slice(&prefix);
    }
    Ok(out.freeze())
}

fn put_array_len(out: &mut BytesMut, len: usize) -> Result<()> {
    let len = i32::try_from(len).map_err(|_| DecodeError::EncodeOverflow {
        field: "array length",
        value: len as u64,
    })?;
    out.put_i32(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    use super::*;

    #[test]
    fn frame_holds_size_header_and_body() {
        let body = MetadataResponse::default().with_throttle_time_ms(12);
        for version in [3, 9, 12] {
            let mut frame = encode_response(ApiKey::Metadata, version, 99, &body).unwrap();
            let size = frame.get_i32();
            assert_eq!(size as usize, frame.len());
            let header_version = if version >= 9 { 1 } else { 0 };
            let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
            assert_eq!(header.correlation_id, 99);
            let decoded = MetadataResponse::decode(&mut frame, version).unwrap();
            assert_eq!(decoded, body);
            assert!(frame.is_empty());
        }
    }

    #[test]
    fn api_versions_response_uses_header_v0_at_v3() {
        let body = ApiVersionsResponse::default();
        let mut frame = encode_response(ApiKey::ApiVersions, 3, 7, &body).unwrap();
        let _size = frame.get_i32();
        assert_eq!(frame.get_i32(), 7);
        assert_eq!(ApiVersionsResponse::decode(&mut frame, 3).unwrap(), body);
    }

    #[test]
    fn unsupported_version_is_an_error() {
        let body = MetadataResponse::default();
        assert!(matches!(
            encode_response(ApiKey::Metadata, 99, 1, &body),
            Err(DecodeError::Encode { .. })
        ));
    }

    #[test]
    fn legacy_produce_gets_unsupported_version_for_every_partition() {
        use kafka_protocol::messages::RequestHeader;
        use kafka_protocol::protocol::StrBytes;

        use crate::error_code::ResponseError;
        use crate::header::decode_request_header;

        // Produce v2: acks, timeout, [topic "t", [partition 0, partition 5]].
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(2)
            .with_correlation_id(31)
            .with_client_id(Some(StrBytes::from_static_str("old")))
            .encode(&mut frame, 1)
            .unwrap();
        frame.put_i16(1);
        frame.put_i32(1000);
        frame.put_i32(1);
        frame.put_i16(1);
        frame.put_slice(b"t");
        frame.put_i32(2);
        for index in [0, 5] {
            frame.put_i32(index);
            frame.put_i32(-1); // null records
        }
        let request = decode_request_header(frame.freeze()).unwrap();
        let error = ErrorCode::of(ResponseError::UnsupportedVersion);
        let mut out = encode_legacy_produce_error(&request, error).unwrap();
        assert_eq!(out.get_i32() as usize, out.len());
        assert_eq!(out.get_i32(), 31); // header v0
        assert_eq!(out.get_i32(), 1); // one topic
        assert_eq!(out.get_i16(), 1);
        assert_eq!(out.get_u8(), b't');
        assert_eq!(out.get_i32(), 2);
        for index in [0, 5] {
            assert_eq!(out.get_i32(), index);
            assert_eq!(out.get_i16(), 35);
            assert_eq!(out.get_i64(), -1);
            assert_eq!(out.get_i64(), -1);
        }
        assert_eq!(out.get_i32(), 0);
        assert!(out.is_empty());
    }
}
