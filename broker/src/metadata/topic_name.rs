//! Kafka's rules for topic names.
//!
//! # Invariants
//! - A valid name is 1..=249 bytes of `[a-zA-Z0-9._-]`, and not `.` or `..`,
//!   so `<topic>-<partition>` is always a safe single path component.

/// Longest topic name Kafka allows (the partition directory name must fit
/// 255 bytes with a `-<partition>` suffix).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Kafka's internal topics (`Topic.isInternal`): the group coordinator's
/// committed offsets and the transaction coordinator's state. Clients may
/// not produce to, grow or delete them.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Whether `name` is one of Kafka's internal topics.
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Why `name` is not a legal topic name, or `None` if it is.
pub fn invalid_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("topic name is empty");
    }
    if name == "." || name == ".." {
        return Some("topic name cannot be '.' or '..'");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Some("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("topic name may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_naming_rules() {
        assert_eq!(invalid_reason("orders.v1_eu-west"), None);
        assert!(invalid_reason("").is_some());
        assert!(invalid_reason("..").is_some());
        assert!(invalid_reason("a/b").is_some());
        assert!(invalid_reason("ü").is_some());
        assert!(invalid_reason(&"x".repeat(250)).is_some());
        assert_eq!(invalid_reason(&"x".repeat(249)), None);
    }
}
