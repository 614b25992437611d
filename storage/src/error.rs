//! The one error type of `sluice-storage`.
//!
//! Every variant carries the context that made the decision (path, position,
//! offsets, `io::ErrorKind`), so the single log line written where the error
//! is handled says what was seen.
//!
//! How the broker maps them to Kafka error codes:
//!
//! | variant | Kafka error |
//! |---|---|
//! | `Io`, `NoSpace`, `Poisoned` | `KAFKA_STORAGE_ERROR` |
//! | `OffsetOutOfRange` | `OFFSET_OUT_OF_RANGE` |
//! | `InvalidBatch`, `EmptyAppend` | `CORRUPT_MESSAGE` |
//! | `BatchTooLarge` | `MESSAGE_TOO_LARGE` |
//! | `OffsetMismatch` | follower append out of order: `UNKNOWN_SERVER_ERROR` (the replica fetcher truncates and retries) |
//! | `InvalidConfig` | `INVALID_CONFIG` |
//!
//! # Invariants
//! - `Io` and `NoSpace` are returned once, by the call that met them; when
//!   the failure may have left the files and the in-memory state apart (any
//!   fsync failure, or a write failure after a file was changed), the log
//!   directory is poisoned and every later call returns `Poisoned`.

use std::io;
use std::path::PathBuf;

use sluice_protocol::DecodeError;
use thiserror::Error;

use crate::offset::Offset;

/// What went wrong in the partition log.
#[derive(Debug, Error)]
pub enum Error {
    /// A system call on a log file failed.
    #[error("{op} {path}: {source} ({kind:?})")]
    Io {
        op: &'static str,
        path: PathBuf,
        kind: io::ErrorKind,
        #[source]
        source: io::Error,
    },

    /// The disk could not reserve the blocks of a new segment or index
    /// (`ENOSPC` from `fallocate`). Nothing was changed: the append that
    /// needed the roll can be retried once space is freed.
    #[error("no space left to preallocate {requested} bytes for {path}")]
    NoSpace { path: PathBuf, requested: u64 },

    /// An earlier fsync or write failure in this log directory: its files
    /// can no longer be trusted to match memory. Never retried; the broker
    /// answers `KAFKA_STORAGE_ERROR` and reports the directory offline.
    #[error("log directory {dir} is offline after an earlier I/O failure")]
    Poisoned { dir: PathBuf },

    /// A read or a log-start move named an offset outside the log.
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },

    /// A batch handed to an append is not a well-formed RecordBatch v2
    /// (framing, magic, CRC-32C, or a header field).
    #[error("invalid record batch at byte {position} of the append: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: DecodeError,
    },

    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: u64, max: u64 },

    /// An append with no batches in it.
    #[error("append of zero batches")]
    EmptyAppend,

    /// A follower append does not start at the log end offset (a gap or an
    /// overlap), or its batches are not consecutive.
    #[error("follower append starts at offset {found}, log end offset is {expected}")]
    OffsetMismatch { expected: Offset, found: Offset },

    /// A `LogConfig` value outside its bounds.
    #[error("invalid log config {key}={value}: {reason}")]
    InvalidConfig {
        key: &'static str,
        value: String,
        reason: &'static str,
    },

    /// A stored file does not hold what the in-memory state says it does.
    /// Recovery truncates such tails at open; this is returned only when a
    /// file is damaged under a running log, and the bytes are not served.
    #[error("corrupt {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`] from a failed call on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            kind: source.kind(),
            source,
        }
    }

    /// Whether the broker should answer `KAFKA_STORAGE_ERROR` for this error.
    pub fn is_storage_error(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::NoSpace { .. } | Error::Poisoned { .. }
        )
    }
}

/// `Result` with the storage [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
