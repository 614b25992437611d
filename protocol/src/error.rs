//! The one error type of `sluice-protocol`: what can be wrong with bytes that
//! claim to be a Kafka frame, header, message or record batch, or with a
//! response that cannot be encoded.
//!
//! # Invariants
//! - Every variant carries the numbers that made the decision, so a log line
//!   or a test failure says what was seen, not just that something was wrong.
//! - [`DecodeError::error_code`] is the one mapping from these errors to
//!   Kafka error codes; it is an exhaustive `match` so that a new variant
//!   forces a decision.

use thiserror::Error;

use crate::error_code::ErrorCode;
use crate::record_batch::CompressionType;

/// Why bytes could not be read as what they claim to be (or a response could
/// not be written).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A record batch is shorter than the fixed 61-byte v2 header, or its
    /// `batchLength` claims more bytes than are present.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    BatchTruncated { needed: usize, available: usize },

    /// `batchLength` is below the header size or above the allowed maximum.
    #[error("record batch length {length} out of bounds ({min}..={max})")]
    BatchLengthOutOfBounds { length: i64, min: usize, max: usize },

    /// Only RecordBatch v2 (magic 2) is stored or served.
    #[error("unsupported record batch magic {magic} (only 2 is supported)")]
    UnsupportedMagic { magic: i8 },

    /// The CRC-32C over attributes..end does not match the header's.
    #[error("record batch CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },

    /// A header field holds a value the format forbids (negative record
    /// count, unknown compression codec, and so on).
    #[error("invalid record batch field {field}: {value}")]
    InvalidBatchField { field: &'static str, value: i64 },

    /// A frame's 4-byte size prefix is negative or above the maximum
    /// (`socket.request.max.bytes`). Checked before anything is allocated;
    /// the connection must be closed, since the stream cannot be resynced.
    #[error("frame size {size} out of bounds (max {max})")]
    FrameTooLarge { size: i64, max: usize },

    /// A request frame is too short to hold the fixed part of its header
    /// (api key, api version, correlation id).
    #[error("request header truncated: need {needed} bytes, have {available}")]
    HeaderTruncated { needed: usize, available: usize },

    /// The request names an API key this build of kafka-protocol does not
    /// know. `correlation_id` is set when the frame was long enough to read
    /// it, so the broker can answer before closing.
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id:?})")]
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: Option<i32>,
    },

    /// The request header (or body) does not decode at the version it names.
    #[error("malformed {what} for api key {api_key} v{api_version}: {reason}")]
    Malformed {
        what: &'static str,
        api_key: i16,
        api_version: i16,
        correlation_id: Option<i32>,
        reason: String,
    },

    /// A codec could not decompress (or compress) its input.
    #[error("{codec:?} codec failed: {reason}")]
    Codec {
        codec: CompressionType,
        reason: String,
    },

    /// Decompressing would produce more than the allowed number of bytes.
    /// Refused before the output grows past `max`.
    #[error("{codec:?} output exceeds {max} bytes")]
    DecompressedTooLarge { codec: CompressionType, max: usize },
    /// The caller's budget of bytes being decompressed (shared by every
    /// request) is spent: retry later.
    #[error("{codec:?} decompression refused: the broker's decompression budget is in use")]
    DecompressionBudgetExhausted { codec: CompressionType },

    /// A record inside a batch does not parse: a length runs past the end of
    /// the record or the batch, a varint is overlong, a size is negative.
    #[error("record {index} of batch is malformed: {reason}")]
    MalformedRecord { index: usize, reason: &'static str },

    /// Records parse, but break a rule of the v2 format for produced
    /// batches: count or offset deltas disagree with the header.
    #[error("invalid record batch: {reason} (expected {expected}, found {found})")]
    InvalidRecords {
        reason: &'static str,
        expected: i64,
        found: i64,
    },

    /// A response field does not fit the wire type it must be written as
    /// (a record region above `i32::MAX` bytes, too many array elements).
    #[error("cannot encode {field}: {value} does not fit")]
    EncodeOverflow { field: &'static str, value: u64 },

    /// kafka-protocol refused to encode a message (for example a version
    /// outside the message's range).
    #[error("cannot encode {what} v{api_version}: {reason}")]
    Encode {
        what: &'static str,
        api_version: i16,
        reason: String,
    },
}

impl DecodeError {
    /// The Kafka error code a client should get for a request or batch that
    /// failed with this error.
    ///
    /// Frame and header errors are listed for completeness: the broker
    /// normally closes the connection on those rather than answering.
    /// `CORRUPT_MESSAGE` is for batches that are damaged (CRC, batch
    /// framing, codec); `INVALID_RECORD` for records that do not parse or
    /// break the v2 rules (Kafka's `InvalidRecordException`); an oversized batch or
    /// decompressed payload is `MESSAGE_TOO_LARGE` (non-retriable, so a
    /// client shrinks its batches instead of retrying).
    pub fn error_code(&self) -> ErrorCode {
        use kafka_protocol::error::ResponseError as E;
        match self {
            Self::BatchTruncated { .. }
            | Self::CrcMismatch { .. }
            | Self::InvalidBatchField { .. }
            | Self::Codec { .. } => ErrorCode::of(E::CorruptMessage),
            Self::BatchLengthOutOfBounds { length, max, .. } => {
                // `length` excludes the 12 bytes before it; `max` is whole.
                let whole = u64::try_from(*length).map(|l| l.saturating_add(12));
                if whole.is_ok_and(|w| w > *max as u64) {
                    ErrorCode::of(E::MessageTooLarge)
                } else {
                    ErrorCode::of(E::CorruptMessage)
                }
            }
            Self::UnsupportedMagic { .. } => ErrorCode::of(E::UnsupportedForMessageFormat),
            Self::DecompressedTooLarge { .. } => ErrorCode::of(E::MessageTooLarge),
            // Retriable: nothing was written, and the same batch succeeds
            // once other decompressions finish.
            Self::DecompressionBudgetExhausted { .. } => ErrorCode::of(E::RequestTimedOut),
            // Kafka's `DefaultRecord.readFrom` throws InvalidRecordException
            // for a record whose structure does not parse: non-retriable,
            // unlike CORRUPT_MESSAGE, which suits bytes that will never parse.
            Self::MalformedRecord { .. } | Self::InvalidRecords { .. } => {
                ErrorCode::of(E::InvalidRecord)
            }
            Self::FrameTooLarge { .. } | Self::HeaderTruncated { .. } | Self::Malformed { .. } => {
                ErrorCode::of(E::InvalidRequest)
            }
            Self::UnknownApiKey { .. } => ErrorCode::of(E::UnsupportedVersion),
            Self::EncodeOverflow { .. } | Self::Encode { .. } => {
                ErrorCode::of(E::UnknownServerError)
            }
        }
    }
}

/// `Result` with [`DecodeError`].
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
