//! Topic configuration: the keys Sluice understands, with Kafka's names,
//! defaults and validation, and their translation to a storage `LogConfig`.
//!
//! # Invariants
//! - A stored override always passed [`validate`]: the image never holds a
//!   value that [`TopicConfig::resolve`] cannot parse.
//! - An unknown key is refused with INVALID_CONFIG, never ignored: a Kafka
//!   user setting `retention.ms` wrongly must hear about it.

use std::collections::BTreeMap;

use sluice_storage::LogConfig;

/// How one config key is parsed and bounded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A signed integer within `min..=max`.
    Long { min: i64, max: i64 },
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
}

/// A key Sluice understands: its name, how it is validated, and where its
/// default comes from when the topic has no override.
#[derive(Debug, Clone, Copy)]
struct Key {
    name: &'static str,
    kind: Kind,
}

const I32_MAX: i64 = i32::MAX as i64;

/// Every topic-level key served, in the order DescribeConfigs lists them.
const KEYS: &[Key] = &[
    Key {
        name: "cleanup.policy",
        // Compaction is not written yet (issue 7): refusing "compact" is
        // honest, accepting it and never compacting would not be.
        kind: Kind::OneOf(&["delete"]),
    },
    Key {
        name: "retention.ms",
        kind: Kind::Long {
            min: -1,
            max: i64::MAX,
        },
    },
    Key {
        name: "retention.bytes",
        kind: Kind::Long {
            min: -1,
            max: i64::MAX,
        },
    },
    Key {
        name: "segment.bytes",
        kind: Kind::Long {
            min: 1024,
            max: I32_MAX,
        },
    },
    Key {
        name: "segment.ms",
        kind: Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    },
    Key {
        name: "segment.index.bytes",
        kind: Kind::Long {
            min: 4096,
            max: I32_MAX,
        },
    },
    Key {
        name: "index.interval.bytes",
        kind: Kind::Long {
            min: 0,
            max: I32_MAX,
        },
    },
    Key {
        name: "max.message.bytes",
        kind: Kind::Long {
            min: 0,
            max: I32_MAX,
        },
    },
    Key {
        name: "flush.messages",
        kind: Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    },
    Key {
        name: "flush.ms",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Key {
        name: "min.insync.replicas",
        kind: Kind::Long {
            min: 1,
            max: I32_MAX,
        },
    },
    Key {
        name: "message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime"]),
    },
    Key {
        name: "compression.type",
        kind: Kind::OneOf(&["producer"]),
    },
];

/// Why a config change was refused (INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown topic config {0}")]
    UnknownKey(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// Checks one override against the table.
pub fn validate(key: &str, value: &str) -> Result<(), ConfigError> {
    let spec = KEYS
        .iter()
        .find(|k| k.name == key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    match spec.kind {
        Kind::Long { min, max } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not an integer".into()))?;
            if v < min || v > max {
                return Err(invalid(format!("must be within {min}..={max}")));
            }
        }
        Kind::OneOf(allowed) => {
            if !allowed.contains(&value) {
                return Err(invalid(format!("Sluice accepts only {allowed:?}")));
            }
        }
    }
    Ok(())
}

/// Checks a whole set of overrides.
pub fn validate_all<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    configs.into_iter().try_for_each(|(k, v)| validate(k, v))
}

/// Broker-wide defaults a topic falls back to for keys it does not override.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub segment_bytes: u64,
    pub retention_ms: i64,
    pub max_message_bytes: usize,
}

/// A topic's effective configuration: its overrides over the defaults.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    values: BTreeMap<&'static str, (String, bool)>,
}

impl TopicConfig {
    /// Effective values for every served key; the flag says whether the
    /// value is the topic's own override (false: a default).
    pub fn resolve(overrides: &BTreeMap<String, String>, defaults: &TopicDefaults) -> Self {
        let storage = LogConfig::default();
        let mut values = BTreeMap::new();
        for key in KEYS {
            let entry = match overrides.get(key.name) {
                Some(v) => (v.clone(), true),
                None => (default_value(key.name, defaults, &storage), false),
            };
            values.insert(key.name, entry);
        }
        Self { values }
    }

    /// `(key, value, is_override)` for every served key.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &str, bool)> {
        self.values.iter().map(|(k, (v, o))| (*k, v.as_str(), *o))
    }

    fn long(&self, key: &str) -> Option<i64> {
        self.values.get(key).and_then(|(v, _)| v.parse().ok())
    }

    /// The largest record batch this topic accepts.
    ///
    /// `max.message.bytes` capped at `segment.bytes`: Kafka accepts a
    /// larger setting but refuses any batch that would not fit a segment
    /// (RecordBatchTooLargeException), so the cap is the same promise.
    pub fn max_message_bytes(&self) -> usize {
        let to_usize = |v: i64| usize::try_from(v).ok();
        let max = self
            .long("max.message.bytes")
            .and_then(to_usize)
            .unwrap_or(0);
        let segment = self
            .long("segment.bytes")
            .and_then(to_usize)
            .unwrap_or(usize::MAX);
        max.min(segment)
    }

    /// The storage configuration of this topic's partition logs.
    pub fn log_config(&self) -> LogConfig {
        let mut c = LogConfig::default();
        let positive = |v: i64| u64::try_from(v).ok();
        if let Some(v) = self.long("segment.bytes").and_then(positive) {
            c.segment_bytes = v;
        }
        if let Some(v) = self.long("segment.ms").and_then(positive) {
            c.segment_ms = v;
        }
        if let Some(v) = self.long("segment.index.bytes").and_then(positive) {
            c.segment_index_bytes = v;
        }
        if let Some(v) = self
            .long("index.interval.bytes")
            .and_then(|v| u32::try_from(v).ok())
        {
            c.index_interval_bytes = v;
        }
        c.retention_ms = self.long("retention.ms").and_then(positive);
        c.retention_bytes = self.long("retention.bytes").and_then(positive);
        c.flush_messages = self.long("flush.messages").and_then(positive);
        c.flush_ms = self.long("flush.ms").and_then(positive);
        c.max_message_bytes = u32::try_from(self.max_message_bytes()).unwrap_or(u32::MAX);
        c
    }
}

fn default_value(key: &str, defaults: &TopicDefaults, storage: &LogConfig) -> String {
    let or_never = |v: Option<u64>| v.map_or_else(|| i64::MAX.to_string(), |v| v.to_string());
    match key {
        "cleanup.policy" => "delete".into(),
        "retention.ms" => defaults.retention_ms.to_string(),
        "retention.bytes" => "-1".into(),
        "segment.bytes" => defaults.segment_bytes.to_string(),
        "segment.ms" => storage.segment_ms.to_string(),
        "segment.index.bytes" => storage.segment_index_bytes.to_string(),
        "index.interval.bytes" => storage.index_interval_bytes.to_string(),
        "max.message.bytes" => defaults.max_message_bytes.to_string(),
        "flush.messages" => or_never(storage.flush_messages),
        "flush.ms" => or_never(storage.flush_ms),
        "min.insync.replicas" => "1".into(),
        "message.timestamp.type" => "CreateTime".into(),
        "compression.type" => "producer".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            segment_bytes: 1 << 30,
            retention_ms: 604_800_000,
            max_message_bytes: 1_048_588,
        }
    }

    #[test]
    fn validation_names_the_key_and_the_bound() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("segment.bytes", "1048576").is_ok());
        assert!(matches!(
            validate("segment.bytes", "10"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            validate("retention.ms", "soon"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert_eq!(
            validate("no.such.key", "1"),
            Err(ConfigError::UnknownKey("no.such.key".into()))
        );
    }

    #[test]
    fn overrides_win_over_defaults_and_reach_the_log_config() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "60000".to_string());
        o.insert("segment.bytes".to_string(), "1048576".to_string());
        let c = TopicConfig::resolve(&o, &defaults());
        let lc = c.log_config();
        assert_eq!(lc.retention_ms, Some(60_000));
        assert_eq!(lc.segment_bytes, 1_048_576);
        // Capped at segment.bytes (1 MiB here).
        assert_eq!(c.max_message_bytes(), 1_048_576);
        let retention = c.entries().find(|e| e.0 == "retention.ms").unwrap();
        assert_eq!(retention, ("retention.ms", "60000", true));
        let cleanup = c.entries().find(|e| e.0 == "cleanup.policy").unwrap();
        assert_eq!(cleanup, ("cleanup.policy", "delete", false));
    }
}
