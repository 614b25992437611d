//! The one error type of `sluice-protocol`: what can be wrong with bytes that
//! claim to be a Kafka frame, header, message or record batch.

use thiserror::Error;

/// Why bytes could not be read as what they claim to be.
///
/// Every variant carries the numbers that made the decision, so a log line or
/// a test failure says what was seen, not just that something was wrong.
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
}

/// `Result` with [`DecodeError`].
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
