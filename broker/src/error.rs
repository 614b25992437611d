//! `BrokerError` and the one mapping from broker errors to Kafka error codes.
//!
//! [`BrokerError::error_code`] is an exhaustive `match` with no catch-all
//! arm (nor do the matches it delegates to have one): a new variant forces
//! a decision about what clients are told.
//!
//! # Invariants
//! - A server fault is never INVALID_REQUEST: I/O on the data directory is
//!   KAFKA_STORAGE_ERROR, an internal fault (a poisoned lock, a failed
//!   task, a record the broker built wrong) is UNKNOWN_SERVER_ERROR, and
//!   each keeps its source error rather than a string of it.

use std::path::PathBuf;

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
    #[error(
        "record timestamp {timestamp} is out of range: it must lie within [{earliest}, {latest}] \
         (message.timestamp.before.max.ms / message.timestamp.after.max.ms)"
    )]
    InvalidTimestamp {
        timestamp: i64,
        earliest: i64,
        latest: i64,
    },
    #[error("acks must be -1, 0 or 1, got {0}")]
    InvalidRequiredAcks(i16),
    #[error("request timed out after {0} ms")]
    RequestTimedOut(i64),
    #[error(
        "{topic}-{partition} has {isr} in-sync replicas; acks=all needs min.insync.replicas={min_insync}"
    )]
    NotEnoughReplicas {
        topic: String,
        partition: i32,
        isr: usize,
        min_insync: usize,
    },
    #[error(
        "{topic}-{partition} was written, but its ISR fell below min.insync.replicas={min_insync} before the write was replicated"
    )]
    NotEnoughReplicasAfterAppend {
        topic: String,
        partition: i32,
        min_insync: usize,
    },
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
    /// A file of the data directory outside any partition log
    /// (`meta.properties`, `partition.metadata`, the directory itself)
    /// could not be read or written.
    #[error("{op} {path}: {source}")]
    DataDirIo {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task a request waited on panicked or was cancelled.
    #[error("{task} task failed: {source}")]
    TaskFailed {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error(transparent)]
    Metadata(#[from] ProposeError),
    /// A committed change this node could not apply to its replicas (the
    /// reconciler's error for the change's topic, shared with every
    /// request that waited for it).
    #[error(transparent)]
    Reconcile(std::sync::Arc<BrokerError>),
    /// The controller could not start (startup only, never a reply).
    #[error(transparent)]
    ControllerStart(#[from] crate::controller::driver::ControllerError),
    /// This node's cluster id and the metadata log's disagree (startup
    /// only, never a reply).
    #[error("cluster id: {0}")]
    ClusterId(String),
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
    #[error(transparent)]
    InvalidConfig(#[from] crate::settings::ConfigError),
    #[error("this node does not lead {topic}-{partition} (leader {leader}, epoch {leader_epoch})")]
    NotLeaderOrFollower {
        topic: String,
        partition: i32,
        /// The leader the image names, or -1.
        leader: i32,
        leader_epoch: i32,
    },
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("this endpoint serves brokers (endpoint type 1), not endpoint type {0}")]
    MismatchedEndpointType(i8),
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
    /// A request the broker's policy refuses (Kafka's PolicyViolation),
    /// e.g. partitions beyond the partition budget.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    #[error(transparent)]
    Placement(#[from] crate::metadata::placement::PlacementError),
}

impl BrokerError {
    /// The Kafka error this is reported as; inside a request, the answer
    /// is also noted in the rate-limited client-error log.
    pub fn error_code(&self) -> ResponseError {
        let code = self.kafka_error();
        crate::client_errors::answered(self, &code);
        code
    }

    fn kafka_error(&self) -> ResponseError {
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
            Self::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
            Self::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            Self::RequestTimedOut(_) => ResponseError::RequestTimedOut,
            Self::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            Self::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            Self::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            Self::Storage { source, .. } => storage_error_code(source),
            Self::StorageFailed => ResponseError::KafkaStorageError,
            // Closing for shutdown or deletion: the client should refresh
            // metadata and retry elsewhere or later.
            Self::PartitionClosed { .. } => ResponseError::NotLeaderOrFollower,
            Self::StatePoisoned => ResponseError::UnknownServerError,
            Self::DataDirIo { .. } => ResponseError::KafkaStorageError,
            Self::TaskFailed { .. } => ResponseError::UnknownServerError,
            Self::Reconcile(e) => e.error_code(),
            Self::Metadata(ProposeError::Rejected(e)) => apply_error_code(e),
            Self::Metadata(ProposeError::NotController | ProposeError::LeaderChanged) => {
                ResponseError::NotController
            }
            Self::Metadata(ProposeError::TimedOut | ProposeError::Busy) => {
                ResponseError::RequestTimedOut
            }
            Self::Metadata(ProposeError::Stopped)
            | Self::ControllerStart(_)
            | Self::ClusterId(_) => ResponseError::KafkaStorageError,
            Self::InvalidRequest(_) => ResponseError::InvalidRequest,
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Self::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            Self::Unsupported(_) => ResponseError::UnsupportedVersion,
            Self::InvalidConfig(_) => ResponseError::InvalidConfig,
            Self::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
            Self::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            Self::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            Self::MismatchedEndpointType(_) => ResponseError::MismatchedEndpointType,
            Self::Group(e) => e.error_code(),
            Self::PolicyViolation(_) => ResponseError::PolicyViolation,
            Self::Placement(e) => {
                use crate::metadata::placement::PlacementError as P;
                match e {
                    P::ReplicationFactorTooLarge { .. } | P::ReplicationFactorInvalid(_) => {
                        ResponseError::InvalidReplicationFactor
                    }
                    P::InvalidAssignment(_) => ResponseError::InvalidReplicaAssignment,
                }
            }
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
        // Handlers check client input before they propose, so a record the
        // image refuses for its shape (no partitions, producer ids going
        // backwards) was built wrong by the broker itself.
        ApplyError::Invalid(_) => ResponseError::UnknownServerError,
        ApplyError::UnknownPartition { .. } => ResponseError::UnknownTopicOrPartition,
        ApplyError::UnknownBroker(_) => ResponseError::BrokerNotAvailable,
        ApplyError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        // Placement chose a broker fenced meanwhile; a retry places anew.
        ApplyError::FencedLeader { .. } => ResponseError::LeaderNotAvailable,
        // Only the start-up path assigns the cluster id, and it expects
        // this answer when another node was first.
        ApplyError::ClusterIdAssigned(_) => ResponseError::UnknownServerError,
        ApplyError::IsrChangeRefused { .. } => ResponseError::InvalidUpdateVersion,
    }
}

/// Storage's errors, as the table in `sluice_storage::error` maps them.
fn storage_error_code(e: &sluice_storage::Error) -> ResponseError {
    use sluice_storage::Error as E;
    match e {
        E::Io { .. }
        | E::NoSpace { .. }
        | E::Resource { .. }
        | E::Poisoned { .. }
        | E::Damaged { .. }
        | E::Corrupt { .. } => ResponseError::KafkaStorageError,
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        E::InvalidBatch { source, .. } => source
            .error_code()
            .error()
            .unwrap_or(ResponseError::CorruptMessage),
        E::EmptyAppend => ResponseError::CorruptMessage,
        // A follower append out of order: the replica fetcher truncates
        // and retries; never a client's doing.
        E::OffsetMismatch { .. } => ResponseError::UnknownServerError,
        // The settings table keeps every resolved LogConfig valid, so this
        // is reached only by a broker bug; INVALID_CONFIG still names it.
        E::InvalidConfig { .. } => ResponseError::InvalidConfig,
    }
}
