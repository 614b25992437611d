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
//! | `Io`, `Poisoned` | `KAFKA_STORAGE_ERROR` (the log directory is offline) |
//! | `Damaged` | `KAFKA_STORAGE_ERROR` (this partition only, until repaired) |
//! | `NoSpace`, `Resource` | `KAFKA_STORAGE_ERROR` (retriable; this call only, nothing goes offline) |
//! | `OffsetOutOfRange` | `OFFSET_OUT_OF_RANGE` |
//! | `InvalidBatch`, `EmptyAppend` | `CORRUPT_MESSAGE` |
//! | `BatchTooLarge` | `MESSAGE_TOO_LARGE` |
//! | `OffsetMismatch` | follower append out of order: `UNKNOWN_SERVER_ERROR` (the replica fetcher truncates and retries) |
//! | `InvalidConfig` | `INVALID_CONFIG` |
//!
//! # Which failures take a log directory offline
//! Only a failure that may have left the files and the in-memory state
//! apart: an error from a write, truncate or fsync of a segment, an index
//! or a checkpoint (`Io`), or a stored file found damaged under a running
//! log (`Corrupt`). Kafka's `LogDirFailureChannel` does the same.
//!
//! A refused resource is not such a failure: the call that needed it
//! changed nothing (or put back what it changed), so it fails alone and a
//! later call succeeds once the resource returns. [`Error::io`] sorts every
//! system-call error into one of the two by its errno:
//! `EMFILE`/`ENFILE` (descriptors), `ENOMEM` (memory, or mappings when
//! `vm.max_map_count` is reached) and `EAGAIN` become [`Error::Resource`];
//! `ENOSPC` from `fallocate` is [`Error::NoSpace`].
//!
//! # Invariants
//! - `Io`, `Resource` and `NoSpace` are returned once, by the call that met
//!   them; after an `Io` (see above) the log directory is poisoned and every
//!   later call returns `Poisoned`. `Resource` and `NoSpace` never poison.

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

    /// The system refused a resource, not the disk: a descriptor
    /// (`EMFILE`, `ENFILE`), memory or a mapping (`ENOMEM`, e.g. at
    /// `vm.max_map_count`), or asked to try again (`EAGAIN`). Nothing on
    /// disk is in doubt; the call can be retried once the resource returns.
    #[error("{op} {path}: {source} (a resource limit: retriable)")]
    Resource {
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

    /// Recovery found bytes below the partition's recovery point (fsynced
    /// earlier, so not a torn write) that no longer read back as the
    /// batches they were: the disk lost or changed them. Nothing was cut
    /// or deleted; every call on this partition fails with this until an
    /// operator repairs it and restarts (`docs/durability.md`). Other
    /// partitions and the log directory are not affected.
    #[error("partition damaged below its recovery point: {path} at byte {position}: {reason}")]
    Damaged {
        path: PathBuf,
        position: u64,
        reason: String,
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
    /// Builds the error for a failed system call `op` on `path`:
    /// [`Error::Resource`] when the errno names a refused resource (see the
    /// module docs), else [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        let kind = source.kind();
        if is_resource_errno(&source) {
            Error::Resource {
                op,
                path,
                kind,
                source,
            }
        } else {
            Error::Io {
                op,
                path,
                kind,
                source,
            }
        }
    }

    /// Whether the broker should answer `KAFKA_STORAGE_ERROR` for this error.
    pub fn is_storage_error(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Resource { .. }
                | Error::NoSpace { .. }
                | Error::Poisoned { .. }
                | Error::Damaged { .. }
        )
    }

    /// Whether this failure may have left files and memory apart, so the
    /// log directory must go offline (see the module docs).
    pub fn takes_log_dir_offline(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::Corrupt { .. })
    }

    /// Whether the same call may succeed later without anyone repairing
    /// the disk: a refused resource or a full disk.
    pub fn is_retriable_resource(&self) -> bool {
        matches!(self, Error::Resource { .. } | Error::NoSpace { .. })
    }
}

/// Whether `e` is a refused resource rather than a disk failure.
fn is_resource_errno(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(raw) = e.raw_os_error() else {
        return e.kind() == io::ErrorKind::OutOfMemory;
    };
    [Errno::MFILE, Errno::NFILE, Errno::NOMEM, Errno::AGAIN]
        .iter()
        .any(|errno| errno.raw_os_error() == raw)
}

/// `Result` with the storage [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_decides_between_resource_and_io() {
        let of = |errno: rustix::io::Errno| {
            Error::io(
                "open",
                "/x",
                io::Error::from_raw_os_error(errno.raw_os_error()),
            )
        };
        for errno in [
            rustix::io::Errno::MFILE,
            rustix::io::Errno::NFILE,
            rustix::io::Errno::NOMEM,
        ] {
            let e = of(errno);
            assert!(matches!(e, Error::Resource { .. }), "{errno:?}: {e}");
            assert!(
                !e.takes_log_dir_offline() && e.is_retriable_resource() && e.is_storage_error()
            );
        }
        for errno in [
            rustix::io::Errno::IO,
            rustix::io::Errno::ROFS,
            rustix::io::Errno::NOENT,
        ] {
            let e = of(errno);
            assert!(matches!(e, Error::Io { .. }), "{errno:?}: {e}");
            assert!(e.takes_log_dir_offline() && !e.is_retriable_resource());
        }
    }
}
