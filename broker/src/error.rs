//! `BrokerError` and the one mapping from broker errors to Kafka error codes.
//!
//! [`BrokerError::error_code`] is an exhaustive `match` with no catch-all
//! arm: a new variant forces a decision about what clients are told.

use kafka_protocol::error::ResponseError;
use sluice_protocol::DecodeError;

use crate::metadata::{ApplyError, ProposeError};

/// Everything a request can fail with, each carrying what a log line or a
/// client's error message needs.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("bad record batch: {0}")]
    Batch(DecodeError),
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    #[error("producer {producer_id} epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: expected sequence {expected}, received {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("acks must be -1, 0 or 1, got {0}")]
    InvalidRequiredAcks(i16),
    #[error("request timed out after {0} ms")]
    RequestTimedOut(i64),
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("storage of {topic}-{partition}: {source}")]
    Storage {
        topic: String,
        partition: i32,
        #[source]
        source: sluice_storage::Error,
    },
    #[error("the partition's log directory has failed")]
    StorageFailed,
    #[error("partition {topic}-{partition} is closed")]
    PartitionClosed { topic: String, partition: i32 },
    #[error("a broker lock was poisoned by a panic")]
    StatePoisoned,
    #[error(transparent)]
    Metadata(#[from] ProposeError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("{0} is not supported by Sluice")]
    Unsupported(&'static str),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("this endpoint serves brokers (endpoint type 1), not endpoint type {0}")]
    MismatchedEndpointType(i8),
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
}

impl BrokerError {
    /// The Kafka error this is reported as.
    pub fn error_code(&self) -> ResponseError {
        match self {
            Self::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            Self::InvalidTopic { .. } => ResponseError::InvalidTopicException,
            Self::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            Self::Batch(e) => e
                .error_code()
                .error()
                .unwrap_or(ResponseError::CorruptMessage),
            Self::InvalidRecord(_) => ResponseError::InvalidRecord,
            Self::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            Self::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            Self::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            Self::RequestTimedOut(_) => ResponseError::RequestTimedOut,
            Self::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            Self::Storage { source, .. } => storage_error_code(source),
            Self::StorageFailed => ResponseError::KafkaStorageError,
            // Closing for shutdown or deletion: the client should refresh
            // metadata and retry elsewhere or later.
            Self::PartitionClosed { .. } => ResponseError::NotLeaderOrFollower,
            Self::StatePoisoned => ResponseError::UnknownServerError,
            Self::Metadata(ProposeError::Rejected(e)) => apply_error_code(e),
            Self::Metadata(ProposeError::Log(_) | ProposeError::Task(_)) => {
                ResponseError::KafkaStorageError
            }
            Self::InvalidRequest(_) => ResponseError::InvalidRequest,
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Self::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            Self::Unsupported(_) => ResponseError::UnsupportedVersion,
            Self::InvalidConfig(_) => ResponseError::InvalidConfig,
            Self::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            Self::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            Self::MismatchedEndpointType(_) => ResponseError::MismatchedEndpointType,
            Self::Group(e) => e.error_code(),
        }
    }

    /// The Kafka error code as sent on the wire.
    pub fn code(&self) -> i16 {
        self.error_code().code()
    }
}

fn apply_error_code(e: &ApplyError) -> ResponseError {
    match e {
        ApplyError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        ApplyError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        ApplyError::PartitionCountNotIncreased { .. } => ResponseError::InvalidPartitions,
        ApplyError::InvalidConfig(_) => ResponseError::InvalidConfig,
        ApplyError::Invalid(_) => ResponseError::InvalidRequest,
    }
}

fn storage_error_code(e: &sluice_storage::Error) -> ResponseError {
    use sluice_storage::Error as E;
    match e {
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        E::InvalidBatch { source, .. } => source
            .error_code()
            .error()
            .unwrap_or(ResponseError::CorruptMessage),
        _ => ResponseError::KafkaStorageError,
    }
}
