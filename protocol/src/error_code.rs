//! Kafka error codes with their retriable flag: one table, shared by the
//! broker (which answers with them) and the client (which retries on them).
//!
//! The table itself is kafka-protocol's [`ResponseError`], generated from
//! Kafka's `Errors.java` (code, name, retriable, description); duplicating
//! it here would only let the two drift. [`ErrorCode`] adds what the wire
//! needs and `ResponseError` lacks: a value for "no error" (0), so a
//! response field can hold an `ErrorCode` directly.
//!
//! # Invariants
//! - `ErrorCode::NONE.code() == 0` and `ErrorCode::of(e).code() == e.code()`.
//! - An unknown code round-trips unchanged and is not retriable (the Java
//!   client's rule for codes it does not know).
//!
//! # References
//! Kafka's `org.apache.kafka.common.protocol.Errors`; "Error Codes" in the
//! Kafka protocol guide.

use std::fmt;

pub use kafka_protocol::error::ResponseError;

/// A Kafka error code as sent on the wire: `0` for success, otherwise one
/// of the codes in [`ResponseError`] (or an unknown one from a newer peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorCode(i16);

impl ErrorCode {
    /// No error.
    pub const NONE: Self = Self(0);

    /// The wire code for `error`.
    pub const fn of(error: ResponseError) -> Self {
        Self(error.code())
    }

    /// Any code read from the wire, known or not.
    pub const fn from_code(code: i16) -> Self {
        Self(code)
    }

    /// The `i16` written in a response's `error_code` field.
    pub const fn code(self) -> i16 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The named error, or `None` for success.
    pub const fn error(self) -> Option<ResponseError> {
        ResponseError::try_from_code(self.0)
    }

    /// Whether a client may retry the request unchanged (Kafka's
    /// `RetriableException` subclasses). Success and unknown codes are not.
    pub const fn is_retriable(self) -> bool {
        match self.error() {
            Some(e) => e.is_retriable(),
            None => false,
        }
    }
}

impl From<ResponseError> for ErrorCode {
    fn from(error: ResponseError) -> Self {
        Self::of(error)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            None => write!(f, "NONE (0)"),
            Some(e) => write!(f, "{e} ({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_zero_and_not_retriable() {
        assert_eq!(ErrorCode::NONE.code(), 0);
        assert!(ErrorCode::NONE.is_none());
        assert!(!ErrorCode::NONE.is_retriable());
        assert_eq!(ErrorCode::NONE.error(), None);
    }

    #[test]
    fn codes_and_retriable_flags_match_kafka() {
        let cases = [
            (ResponseError::CorruptMessage, 2, true),
            (ResponseError::NotLeaderOrFollower, 6, true),
            (ResponseError::MessageTooLarge, 10, false),
            (ResponseError::NotEnoughReplicas, 19, true),
            (ResponseError::UnsupportedVersion, 35, false),
            (ResponseError::KafkaStorageError, 56, true),
            (ResponseError::InvalidRecord, 87, false),
        ];
        for (error, code, retriable) in cases {
            let c = ErrorCode::of(error);
            assert_eq!(c.code(), code, "{error:?}");
            assert_eq!(c.is_retriable(), retriable, "{error:?}");
            assert_eq!(ErrorCode::from_code(code).error(), Some(error));
        }
    }

    #[test]
    fn unknown_code_round_trips_and_is_not_retriable() {
        let c = ErrorCode::from_code(9999);
        assert_eq!(c.code(), 9999);
        assert!(!c.is_retriable());
        assert_eq!(c.error(), Some(ResponseError::Unknown(9999)));
    }
}
