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
//! # Limits
//! - A response larger than `i32::MAX` bytes is an error, not a wrapped
//!   size.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::error::{DecodeError, Result};
use crate::frame::{FRAME_SIZE_PREFIX_BYTES, frame_size_prefix};
use crate::header::{encode_response_header, response_header_bytes};

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
}
