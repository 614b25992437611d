//! Request and response headers, and splitting a request frame into header
//! and body.
//!
//! ```text
//! request header (v1; v2 appends tagged fields, client_id stays non-compact)
//! offset size field
//!      0    2 request_api_key      (i16)
//!      2    2 request_api_version  (i16)
//!      4    4 correlation_id       (i32)
//!      8  2+n client_id            (nullable string, i16 length)
//!      …    … tagged fields        (v2 only: unsigned varint count, …)
//!
//! response header
//!   v0: correlation_id (i32)
//!   v1: correlation_id (i32), tagged fields (unsigned varint count = 0)
//! ```
//!
//! Which header version goes with which request is a property of the API
//! and its version (the "flexible versions" of each message); kafka-protocol
//! generates that table from Kafka's JSON specs and this module asks it.
//! ApiVersions responses always use header v0, whatever the request
//! version, so that a client can read the error of a version the broker
//! does not support (KIP-511).
//!
//! # Invariants
//! - The body returned by [`decode_request_header`] is a slice of the frame:
//!   no byte is copied.
//! - The api key and version are read before the header version is chosen;
//!   an unknown api key is reported with the correlation id whenever the
//!   frame holds one, so the broker can answer before closing.
//!
//! # Limits
//! - A header is bounded by the frame it is read from (see `frame.rs`);
//!   kafka-protocol's decoders are the vendored, clamped ones.
//!
//! # References
//! `RequestHeader.json` / `ResponseHeader.json` in Kafka; KIP-482 (tagged
//! fields), KIP-511 (ApiVersions response header).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::{DecodeError, Result};

/// Bytes of api key + api version + correlation id: the fixed start of
/// every request header version.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// A request frame split into its decoded header and its undecoded body.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// The API named by `header.request_api_key`, already checked to be
    /// known.
    pub api_key: ApiKey,
    pub header: RequestHeader,
    /// The message body, a zero-copy slice of the frame.
    pub body: Bytes,
}

impl RequestFrame {
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    /// Decodes the body as `M` at the request's version.
    ///
    /// Byte fields of `M` (record batches, for one) stay slices of the
    /// frame. Trailing bytes after the message are ignored, as Kafka does.
    pub fn decode_body<M: Decodable>(&self) -> Result<M> {
        let mut body = self.body.clone();
        M::decode(&mut body, self.api_version()).map_err(|e| DecodeError::Malformed {
            what: "request body",
            api_key: self.api_key as i16,
            api_version: self.api_version(),
            correlation_id: Some(self.correlation_id()),
            reason: e.to_string(),
        })
    }
}

/// Splits a request frame (as returned by [`crate::frame::decode_frame`])
/// into header and body.
pub fn decode_request_header(frame: Bytes) -> Result<RequestFrame> {
    let (Some(key), Some(version)) = (read_i16(&frame, 0), read_i16(&frame, 2)) else {
        return Err(DecodeError::HeaderTruncated {
            needed: REQUEST_HEADER_FIXED_BYTES,
            available: frame.len(),
        });
    };
    let correlation_id = read_i32(&frame, 4);
    let api_key = ApiKey::try_from(key).map_err(|()| DecodeError::UnknownApiKey {
        api_key: key,
        api_version: version,
        correlation_id,
    })?;
    let header_version = api_key.request_header_version(version);
    let mut body = frame;
    let header =
        RequestHeader::decode(&mut body, header_version).map_err(|e| DecodeError::Malformed {
            what: "request header",
            api_key: key,
            api_version: version,
            correlation_id,
            reason: e.to_string(),
        })?;
    Ok(RequestFrame {
        api_key,
        header,
        body,
    })
}

/// The response header version for a response to `api_key` at
/// `api_version`: 0 or 1 (always 0 for ApiVersions).
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    api_key.response_header_version(api_version)
}

/// Encoded size of that response header: 4 (v0) or 5 (v1, no tagged
/// fields).
pub fn response_header_bytes(api_key: ApiKey, api_version: i16) -> usize {
    if response_header_version(api_key, api_version) >= 1 {
        5
    } else {
        4
    }
}

/// Writes the response header for `api_key` at `api_version`.
///
/// v1's tagged-field section is always empty: the response header defines
/// no tagged fields Sluice sets.
pub fn encode_response_header(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) {
    out.put_i32(correlation_id);
    if response_header_version(api_key, api_version) >= 1 {
        out.put_u8(0);
    }
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    let bytes = buf.get(at..at + 2)?.first_chunk::<2>()?;
    Some(i16::from_be_bytes(*bytes))
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at + 4)?.first_chunk::<4>()?;
    Some(i32::from_be_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{MetadataRequest, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn request(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-test")));
        let mut b = BytesMut::new();
        header
            .encode(&mut b, api_key.request_header_version(version))
            .unwrap();
        b.extend_from_slice(body);
        b.freeze()
    }

    #[test]
    fn splits_header_and_body_for_flexible_and_non_flexible_versions() {
        for version in [4, 9, 12] {
            let topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))));
            let msg = MetadataRequest::default().with_topics(Some(vec![topic]));
            let mut body = BytesMut::new();
            msg.encode(&mut body, version).unwrap();
            let frame = request(ApiKey::Metadata, version, 77, &body);
            let parsed = decode_request_header(frame.clone()).unwrap();
            assert_eq!(parsed.api_key, ApiKey::Metadata);
            assert_eq!(parsed.api_version(), version);
            assert_eq!(parsed.correlation_id(), 77);
            assert_eq!(parsed.header.client_id.as_deref(), Some("sluice-test"));
            assert_eq!(parsed.body, body, "v{version}");
            // Zero copy: the body points into the frame's allocation.
            let frame_range = frame.as_ptr_range();
            assert!(frame_range.contains(&parsed.body.as_ptr()), "v{version}");
            assert_eq!(parsed.decode_body::<MetadataRequest>().unwrap(), msg);
        }
    }

    #[test]
    fn unknown_api_key_carries_the_correlation_id_when_present() {
        let frame = Bytes::from_static(&[0x7F, 0x00, 0, 1, 0, 0, 0, 42, 0xFF, 0xFF]);
        assert_eq!(
            decode_request_header(frame).unwrap_err(),
            DecodeError::UnknownApiKey {
                api_key: 0x7F00,
                api_version: 1,
                correlation_id: Some(42)
            }
        );
        let frame = Bytes::from_static(&[0x7F, 0x00, 0, 1, 0, 0]);
        assert_eq!(
            decode_request_header(frame).unwrap_err(),
            DecodeError::UnknownApiKey {
                api_key: 0x7F00,
                api_version: 1,
                correlation_id: None
            }
        );
    }

    #[test]
    fn short_or_malformed_headers_are_errors() {
        assert!(matches!(
            decode_request_header(Bytes::from_static(&[0, 3, 0])),
            Err(DecodeError::HeaderTruncated { available: 3, .. })
        ));
        // Metadata v4, correlation id 5, client id claims 10 bytes, has 1.
        let frame = Bytes::from_static(&[0, 3, 0, 4, 0, 0, 0, 5, 0, 10, b'x']);
        assert!(matches!(
            decode_request_header(frame),
            Err(DecodeError::Malformed {
                correlation_id: Some(5),
                ..
            })
        ));
    }

    #[test]
    fn response_headers_match_kafka_protocol() {
        let cases = [
            (ApiKey::Metadata, 8, 0),
            (ApiKey::Metadata, 9, 1),
            (ApiKey::Fetch, 12, 1),
            (ApiKey::ApiVersions, 3, 0),
            (ApiKey::ApiVersions, 0, 0),
        ];
        for (key, version, header_version) in cases {
            assert_eq!(response_header_version(key, version), header_version);
            let mut ours = BytesMut::new();
            encode_response_header(&mut ours, key, version, -3);
            let mut theirs = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(-3)
                .encode(&mut theirs, header_version)
                .unwrap();
            assert_eq!(ours, theirs, "{key:?} v{version}");
            assert_eq!(ours.len(), response_header_bytes(key, version));
        }
    }
}
