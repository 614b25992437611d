//! `GroupError`: why the coordinator refused a group request, one variant
//! per Kafka error a group API can answer with.
//!
//! The mapping to wire codes is [`GroupError::error_code`], an exhaustive
//! match; `BrokerError::Group` delegates to it, so the broker keeps one
//! mapping table per error enum and no `_ =>` arm anywhere.

use kafka_protocol::error::ResponseError;

/// A refused group request. Client input only ever produces these; the
/// coordinator never panics on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("member {0:?} is not a member of the group")]
    UnknownMemberId(String),
    #[error("generation {requested} is not the group's current generation {current}")]
    IllegalGeneration { requested: i32, current: i32 },
    #[error("the group is rebalancing; rejoin")]
    RebalanceInProgress,
    #[error("group.instance.id {instance_id:?} is held by another member id")]
    FencedInstanceId { instance_id: String },
    #[error("protocol type or protocols are incompatible with the group")]
    InconsistentGroupProtocol,
    #[error("the group already has its maximum of {max} members")]
    GroupMaxSizeReached { max: usize },
    /// JoinGroup v4+: the new member must rejoin with this id.
    #[error("a member id is required; rejoin with {0:?}")]
    MemberIdRequired(String),
    #[error("session timeout {requested} ms is outside [{min}, {max}] ms")]
    InvalidSessionTimeout { requested: i32, min: i32, max: i32 },
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    /// The group is being deleted, or the coordinator is shutting down.
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the group coordinator is still loading __consumer_offsets")]
    CoordinatorLoadInProgress,
    /// This node does not lead the group's `__consumer_offsets` partition.
    #[error("this node is not the group's coordinator")]
    NotCoordinator,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("group {0:?} does not exist")]
    GroupIdNotFound(String),
    #[error("the group is subscribed to topic {0:?}")]
    GroupSubscribedToTopic(String),
    #[error("offset metadata of {size} bytes exceeds {max}")]
    OffsetMetadataTooLarge { size: usize, max: usize },
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// Beyond a bound that protects the broker (groups per broker, bytes of
    /// member metadata, offsets per group).
    #[error("{0}")]
    LimitExceeded(String),
    #[error("committed offsets could not be made durable: {0}")]
    Storage(#[from] OffsetsStorageFault),
    #[error("the commit timed out waiting for durability")]
    RequestTimedOut,
}

/// Why group records could not be written to `__consumer_offsets`: a
/// server fault, kept typed down to the Kafka error it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsStorageFault {
    /// The offsets partition's log directory failed (write or fsync error)
    /// before the records were durable.
    #[error("the offsets partition's log failed before the records were durable")]
    PartitionFailed,
    /// The coordinator's own records did not encode as one batch: a broker
    /// bug, never client input.
    #[error("offsets records do not encode as one batch: {0}")]
    Encode(String),
    /// The append was refused; `code` is the Kafka error the broker's own
    /// error maps to (KAFKA_STORAGE_ERROR for a failed or full disk).
    #[error("append to the offsets partition failed ({code:?}): {message}")]
    Append {
        code: ResponseError,
        message: String,
    },
}

impl OffsetsStorageFault {
    /// The append's own error, or KAFKA_STORAGE_ERROR.
    pub fn error_code(&self) -> ResponseError {
        match self {
            Self::PartitionFailed | Self::Encode(_) => ResponseError::KafkaStorageError,
            Self::Append { code, .. } => *code,
        }
    }

    /// The typed fault of a failed append.
    pub fn append(e: &crate::error::BrokerError) -> Self {
        Self::Append {
            code: e.error_code(),
            message: e.to_string(),
        }
    }
}

impl GroupError {
    /// The Kafka error this is reported as.
    pub fn error_code(&self) -> ResponseError {
        match self {
            Self::UnknownMemberId(_) => ResponseError::UnknownMemberId,
            Self::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
            Self::RebalanceInProgress => ResponseError::RebalanceInProgress,
            Self::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
            Self::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            Self::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
            Self::MemberIdRequired(_) => ResponseError::MemberIdRequired,
            Self::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
            Self::InvalidGroupId(_) => ResponseError::InvalidGroupId,
            Self::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            Self::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            Self::NotCoordinator => ResponseError::NotCoordinator,
            Self::NonEmptyGroup => ResponseError::NonEmptyGroup,
            Self::GroupIdNotFound(_) => ResponseError::GroupIdNotFound,
            Self::GroupSubscribedToTopic(_) => ResponseError::GroupSubscribedToTopic,
            Self::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            Self::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            // Kafka answers an oversized request field with INVALID_REQUEST.
            Self::LimitExceeded(_) => ResponseError::InvalidRequest,
            Self::Storage(fault) => fault.error_code(),
            Self::RequestTimedOut => ResponseError::RequestTimedOut,
        }
    }

    /// The Kafka error code as sent on the wire.
    pub fn code(&self) -> i16 {
        self.error_code().code()
    }
}
