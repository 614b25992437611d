//! `sluice-protocol`: the Kafka wire formats Sluice speaks, and nothing else.
//!
//! This crate owns formats only: no files, no sockets, no async runtime, no
//! I/O policy. Callers hand it bytes and get values back (or the reverse).
//!
//! # Kafka versions
//! Kafka 4.0 baselines: RecordBatch v2 (magic 2) only, Produce ≥ 3, Fetch ≥
//! 4. The exact APIs and version ranges are the table in [`api`]; message
//! bodies are kafka-protocol 0.18's generated types (vendored, with its
//! hostile-length allocations clamped).
//!
//! # Frame layout
//! ```text
//! size (i32, big-endian) | header | body
//! request header:  api_key i16 | api_version i16 | correlation_id i32 |
//!                  client_id (i16-length string) | [tagged fields, v2]
//! response header: correlation_id i32 | [tagged fields, v1]
//! ```
//!
//! # What is zero-copy
//! - Request decode: [`frame::decode_frame`] splits the frame off the read
//!   buffer, [`header::decode_request_header`] slices the body off the
//!   frame, and kafka-protocol keeps `records` fields as slices of it. A
//!   produced batch is copied once, into the segment.
//! - Fetch response encode: [`fetch_response`] writes only the framing
//!   around the record bytes and names the regions the broker sends
//!   itself (gathered from the segment mappings into one `writev`), so
//!   record bytes are never copied in user space.
//! - [`record_batch::RecordBatchView`] reads batch headers in place;
//!   [`records`] borrows uncompressed records from the batch and copies
//!   only what it must decompress (bounded).
//!
//! # Modules
//! - [`frame`]: 4-byte size prefix; `Ok(None)` for "need more bytes".
//! - [`header`]: request header decode, response header encode.
//! - [`response`]: a whole response frame for every API but Fetch.
//! - [`fetch_response`]: the hand-written, zero-copy Fetch response (v4–12).
//! - [`api`]: API keys and version ranges served and advertised.
//! - [`error_code`]: Kafka error codes and their retriable flag.
//! - [`record_batch`]: the RecordBatch v2 header view and CRC-32C.
//! - [`records`]: records inside a batch; produce validation; timestamp
//!   lookup.
//! - [`compression`]: gzip, snappy, lz4, zstd with a hard output bound.
//!
//! # Invariants
//! - Nothing here allocates an amount read from the wire before checking it
//!   against the bytes actually present or an explicit maximum.
//! - Nothing here panics on any input (property-tested for frames, headers,
//!   records and codecs).

pub mod api;
pub mod batch_builder;
pub mod batch_writer;
pub mod compression;
pub mod error;
pub mod error_code;
pub mod fetch_response;
pub mod frame;
pub mod header;
pub mod recompress;
pub mod record_batch;
pub mod records;
pub mod response;
mod zstd_contexts;

pub use api::{
    ApiSupport, CORE_APIS, GROUP_APIS, advertised_range, api_versions_keys, is_served, served_range,
};
pub use compression::{OutputGrowth, compress, decompress, decompress_within};
pub use error::{DecodeError, Result};
pub use error_code::{ErrorCode, ResponseError};
pub use fetch_response::{
    CurrentLeader, DivergingEpoch, EncodedFetchResponse, FetchAbortedTransaction, FetchPart,
    FetchResponseData, FetchResponsePartition, FetchResponseTopic, encode_fetch_response,
    encode_fetch_response_frame,
};
pub use frame::{SOCKET_REQUEST_MAX_BYTES_DEFAULT, decode_frame, reserve_for_next_read};
pub use header::{RequestFrame, decode_request_header, encode_response_header};
pub use record_batch::{
    BatchIter, CompressionType, RECORD_BATCH_HEADER_BYTES, RecordBatchView, TimestampType,
};
pub use records::{
    BatchRecords, BatchSummary, Record, RecordIter, offset_for_timestamp, validate_batch,
    validate_batch_within,
};
pub use response::{encode_legacy_produce_error, encode_response};

/// kafka-protocol, re-exported so callers use the exact (vendored) version
/// this crate decodes with.
pub use kafka_protocol;
