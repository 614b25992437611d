//! The client's one error type, and the mapping from Kafka error codes.
//!
//! A Kafka error code from a response becomes [`Error::Kafka`] with the
//! code, its Kafka name (`UNKNOWN_TOPIC_OR_PARTITION`) and what the request
//! was about; whether it may be retried comes from the shared table in
//! `sluice_protocol::error_code` ([`ErrorCode::is_retriable`]), so the broker
//! and the client can never disagree about it.
//!
//! Transport failures (connect refused, connection closed, timeouts) are
//! retriable: the request may be sent again on a fresh connection.

use std::fmt;
use std::time::Duration;

use sluice_protocol::error_code::ErrorCode;

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error, Clone)]
pub enum Error {
    /// The broker answered with a Kafka error code.
    #[error("{context}: {} ({}){}", kafka_name(*.code), .code.code(), message_suffix(.message))]
    Kafka {
        code: ErrorCode,
        /// What the request was about: `topic 'orders' partition 3`.
        context: String,
        /// The broker's `error_message`, when it sent one.
        message: Option<String>,
    },
    /// No TCP connection could be made.
    #[error("cannot connect to broker {broker}: {reason}")]
    Connect { broker: String, reason: String },
    /// The connection broke (reset, closed by the peer) while a request was
    /// in flight or about to be sent.
    #[error("connection to broker {broker} lost: {reason}")]
    Disconnected { broker: String, reason: String },
    /// No response within the request timeout.
    #[error("{api} request to broker {broker} timed out after {after:?}")]
    Timeout {
        api: &'static str,
        broker: String,
        after: Duration,
    },
    /// The broker serves no version of `api` this client speaks.
    #[error("broker {broker} does not support {api} in any version this client speaks")]
    UnsupportedVersion { api: &'static str, broker: String },
    /// Bytes from the broker that do not decode, or a request that does
    /// not encode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Bad client configuration or arguments.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// None of the bootstrap servers answered.
    #[error("no broker reachable (tried {tried}): {last}")]
    NoBrokerAvailable { tried: String, last: String },
    /// The producer or consumer was closed.
    #[error("the {0} is closed")]
    Closed(&'static str),
}

impl Error {
    /// A Kafka error for `code` (which must not be NONE) about `context`.
    pub fn kafka(code: ErrorCode, context: impl Into<String>, message: Option<String>) -> Self {
        Self::Kafka {
            code,
            context: context.into(),
            message: message.filter(|m| !m.is_empty()),
        }
    }

    /// `Err(Error::Kafka)` when `code` is non-zero.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<()> {
        let code = ErrorCode::from_code(code);
        if code.is_none() {
            Ok(())
        } else {
            Err(Self::kafka(code, context(), None))
        }
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Kafka { code, .. } => code.is_retriable(),
            Self::Connect { .. }
            | Self::Disconnected { .. }
            | Self::Timeout { .. }
            | Self::NoBrokerAvailable { .. } => true,
            Self::UnsupportedVersion { .. }
            | Self::Protocol(_)
            | Self::Config(_)
            | Self::Closed(_) => false,
        }
    }

    /// The Kafka error code, for [`Error::Kafka`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this error means the client's metadata is stale (leader
    /// moved, topic unknown to this broker): refresh before retrying.
    pub fn invalidates_metadata(&self) -> bool {
        use sluice_protocol::error_code::ResponseError as E;
        match self {
            Self::Kafka { code, .. } => matches!(
                code.error(),
                Some(
                    E::NotLeaderOrFollower
                        | E::LeaderNotAvailable
                        | E::UnknownTopicOrPartition
                        | E::FencedLeaderEpoch
                        | E::UnknownLeaderEpoch
                        | E::NotCoordinator
                        | E::CoordinatorNotAvailable
                )
            ),
            Self::Connect { .. } | Self::Disconnected { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Kafka's own name for `code`: `NOT_LEADER_OR_FOLLOWER`, as in Kafka's
/// `Errors` enum and every client's logs (kafka-protocol's names are the
/// CamelCase form of the same words).
pub fn kafka_name(code: ErrorCode) -> String {
    match code.error() {
        None => "NONE".to_owned(),
        Some(sluice_protocol::error_code::ResponseError::Unknown(c)) => format!("UNKNOWN_CODE_{c}"),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(": {m}"),
        None => String::new(),
    }
}

impl From<sluice_protocol::DecodeError> for Error {
    fn from(e: sluice_protocol::DecodeError) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// The context string for one partition.
pub(crate) fn partition_context(topic: &str, partition: i32) -> String {
    format!("topic '{topic}' partition {partition}")
}

/// Wraps a displayable as a protocol error.
pub(crate) fn protocol(what: impl fmt::Display) -> Error {
    Error::Protocol(what.to_string())
}

#[cfg(test)]
mod tests {
    use sluice_protocol::error_code::ResponseError;

    use super::*;

    #[test]
    fn kafka_names_are_screaming_snake_case() {
        assert_eq!(
            kafka_name(ErrorCode::of(ResponseError::UnknownTopicOrPartition)),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            kafka_name(ErrorCode::of(ResponseError::NotLeaderOrFollower)),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(kafka_name(ErrorCode::from_code(9999)), "UNKNOWN_CODE_9999");
    }

    #[test]
    fn display_names_the_error_and_context_and_retriable_follows_the_table() {
        let e = Error::kafka(
            ErrorCode::of(ResponseError::UnknownTopicOrPartition),
            partition_context("orders", 3),
            Some("no such topic".into()),
        );
        assert_eq!(
            e.to_string(),
            "topic 'orders' partition 3: UNKNOWN_TOPIC_OR_PARTITION (3): no such topic"
        );
        assert!(e.is_retriable());
        assert!(e.invalidates_metadata());
        let e = Error::kafka(ErrorCode::of(ResponseError::MessageTooLarge), "x", None);
        assert!(!e.is_retriable());
        assert_eq!(e.to_string(), "x: MESSAGE_TOO_LARGE (10)");
    }
}
