//! A topic's effective configuration: its overrides over the broker's
//! defaults over the table's, and what it becomes for storage and produce.
//!
//! ```text
//! per key of TOPIC_SETTINGS:
//!   the topic's override, if it passes the key's rule   DYNAMIC_TOPIC_CONFIG
//!   else the broker's synonym (log.*), if the broker sets it   STATIC_BROKER_CONFIG
//!   else the row's default                             DEFAULT_CONFIG
//! ```
//!
//! # Invariants
//! - Every resolved value passes its key's rule, so [`TopicConfig::log_config`]
//!   always yields a `LogConfig` that `LogConfig::validate` accepts: no
//!   stored value can stop a partition from opening.
//! - An invalid stored override (written by an older version with other
//!   bounds) is ignored, never an error: the key takes its default.
//!   [`invalid_overrides`] lists such values so the broker can warn once,
//!   at start.

use std::collections::BTreeMap;

use sluice_protocol::recompress::Codec;
use sluice_protocol::{CompressionType, TimestampType};
use sluice_storage::LogConfig;

use super::table::{
    BROKER_SETTINGS, LOG_APPEND_TIME, Scope, Setting, TOPIC_SETTINGS, topic_setting,
};
use super::value::{ConfigError, check, parse_long};
use crate::config::BrokerConfig;

/// Where an effective value comes from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    TopicOverride,
    StaticBroker,
    Default,
}

impl Source {
    /// `DescribeConfigsResponse.ConfigSource`.
    pub fn code(self) -> i8 {
        match self {
            Self::TopicOverride => 1,
            Self::StaticBroker => 4,
            Self::Default => 5,
        }
    }
}

/// The broker settings topics fall back to: for each topic key whose
/// broker synonym the operator set to something other than the table's
/// default, that value.
#[derive(Debug, Clone, Default)]
pub struct TopicDefaults {
    /// Topic key → the broker's value for it.
    broker: BTreeMap<&'static str, String>,
}

impl TopicDefaults {
    /// The topic defaults `config` sets. A broker value outside its topic
    /// key's bounds is refused, naming the broker key, so a bad file stops
    /// the start instead of every topic.
    pub fn from_broker(config: &BrokerConfig) -> Result<Self, ConfigError> {
        let mut broker = BTreeMap::new();
        for setting in TOPIC_SETTINGS {
            let Scope::Topic {
                default,
                broker_key,
            } = setting.scope
            else {
                continue;
            };
            let Some(Scope::Broker { value, .. }) = BROKER_SETTINGS
                .iter()
                .find(|b| b.name == broker_key)
                .map(|b| b.scope)
            else {
                continue;
            };
            let Some(value) = value(config) else { continue };
            if value == default.render() {
                continue;
            }
            check(setting, &value).map_err(|e| match e {
                ConfigError::InvalidValue { value, reason, .. } => ConfigError::InvalidValue {
                    key: broker_key.to_string(),
                    value,
                    reason,
                },
                other => other,
            })?;
            broker.insert(setting.name, value);
        }
        Ok(Self { broker })
    }
}

/// How a compacted topic is cleaned (`cleanup.policy` lists `compact`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// `delete.retention.ms`: a tombstone's life after it was written.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty section older than this is cleaned
    /// whatever its ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the dirty share of the cleanable bytes
    /// that starts a cleaning.
    pub min_cleanable_dirty_ratio: f64,
}

/// One key of a topic's effective configuration.
#[derive(Debug, Clone)]
pub struct Entry {
    pub setting: &'static Setting,
    pub value: String,
    pub source: Source,
    /// The broker's value, when it sets this key's synonym.
    pub broker_value: Option<String>,
    /// The table's default.
    pub default_value: String,
}

impl Entry {
    /// Kafka's name of the broker-wide default of this key.
    pub fn broker_key(&self) -> &'static str {
        match self.setting.scope {
            Scope::Topic { broker_key, .. } => broker_key,
            Scope::Broker { .. } => self.setting.name,
        }
    }
}

/// A topic's effective configuration, one entry per key of the table.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    entries: Vec<Entry>,
}

impl TopicConfig {
    /// Effective values for every topic key. Stored overrides that fail
    /// their key's rule, and unknown keys, are ignored (see the module doc).
    pub fn resolve(overrides: &BTreeMap<String, String>, defaults: &TopicDefaults) -> Self {
        let entries = TOPIC_SETTINGS
            .iter()
            .filter_map(|setting| {
                let Scope::Topic { default, .. } = setting.scope else {
                    return None;
                };
                let default_value = default.render();
                let broker_value = defaults.broker.get(setting.name).cloned();
                let own = overrides
                    .get(setting.name)
                    .filter(|v| check(setting, v).is_ok());
                let (value, source) = match (own, &broker_value) {
                    (Some(v), _) => (v.trim().to_string(), Source::TopicOverride),
                    (None, Some(b)) => (b.clone(), Source::StaticBroker),
                    (None, None) => (default_value.clone(), Source::Default),
                };
                Some(Entry {
                    setting,
                    value,
                    source,
                    broker_value,
                    default_value,
                })
            })
            .collect();
        Self { entries }
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.setting.name == key)
    }

    /// The effective value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    fn long(&self, key: &str) -> Option<i64> {
        self.value(key).and_then(parse_long)
    }

    /// The largest record batch this topic accepts: `max.message.bytes`.
    ///
    /// Not capped at `segment.bytes`. Kafka refuses an append larger than
    /// `segment.bytes` (RECORD_LIST_TOO_LARGE); Sluice writes such a batch
    /// alone into a segment grown for it (`sluice_storage`'s
    /// `Segment::fits`), so a batch up to this size is always accepted
    /// whatever `segment.bytes` is (issue 13; docs/compatibility.md).
    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes")
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0)
    }

    /// `min.insync.replicas`: the ISR size an acks=all write needs.
    pub fn min_insync_replicas(&self) -> usize {
        self.long("min.insync.replicas")
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(1)
            .max(1)
    }

    /// The storage configuration of this topic's partition logs.
    pub fn log_config(&self) -> LogConfig {
        let mut c = LogConfig::default();
        let positive = |v: i64| u64::try_from(v).ok();
        // Long.MAX is Kafka's "never" for the flush thresholds.
        let unless_never = |v: i64| if v == i64::MAX { None } else { positive(v) };
        if let Some(v) = self.long("segment.bytes").and_then(positive) {
            c.segment_bytes = v;
        }
        if let Some(v) = self.long("segment.ms").and_then(positive) {
            c.segment_ms = v;
        }
        // A compacted topic's active segment rolls by max.compaction.lag.ms,
        // so its records become cleanable in time (Kafka's `maxSegmentMs`).
        if let Some(lag) = self
            .compaction()
            .and_then(|k| positive(k.max_compaction_lag_ms))
        {
            c.segment_ms = c.segment_ms.min(lag);
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
        // Kafka applies retention.ms/bytes only when the policy lists delete.
        let delete = self.cleanup_policy_has("delete");
        c.retention_ms = self
            .long("retention.ms")
            .and_then(positive)
            .filter(|_| delete);
        c.retention_bytes = self
            .long("retention.bytes")
            .and_then(positive)
            .filter(|_| delete);
        c.flush_messages = self.long("flush.messages").and_then(unless_never);
        c.flush_ms = self.long("flush.ms").and_then(unless_never);
        c.max_message_bytes = u32::try_from(self.max_message_bytes()).unwrap_or(u32::MAX);
        c
    }

    /// Whether `cleanup.policy` lists `policy`.
    pub fn cleanup_policy_has(&self, policy: &str) -> bool {
        self.value("cleanup.policy")
            .is_some_and(|v| v.split(',').any(|p| p.trim() == policy))
    }

    /// The compaction settings, when `cleanup.policy` lists `compact`.
    pub fn compaction(&self) -> Option<Compaction> {
        if !self.cleanup_policy_has("compact") {
            return None;
        }
        Some(Compaction {
            delete_retention_ms: self.long("delete.retention.ms").unwrap_or(86_400_000),
            min_compaction_lag_ms: self.long("min.compaction.lag.ms").unwrap_or(0),
            max_compaction_lag_ms: self.long("max.compaction.lag.ms").unwrap_or(i64::MAX),
            min_cleanable_dirty_ratio: self
                .value("min.cleanable.dirty.ratio")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| (0.0..=1.0).contains(v))
                .unwrap_or(0.5),
        })
    }

    /// The codec and level batches are stored with (`compression.type`
    /// and its KIP-390 level); `None` for `producer` (stored as produced).
    pub fn codec(&self) -> Option<Codec> {
        let level = |key: &str| self.long(key).and_then(|v| i32::try_from(v).ok());
        let (compression, level) = match self.value("compression.type")? {
            "uncompressed" => (CompressionType::None, None),
            // -1 is zlib's default level (0 is refused, as in Kafka).
            "gzip" => (
                CompressionType::Gzip,
                level("compression.gzip.level").filter(|l| *l > 0),
            ),
            "snappy" => (CompressionType::Snappy, None),
            "lz4" => (CompressionType::Lz4, level("compression.lz4.level")),
            "zstd" => (CompressionType::Zstd, level("compression.zstd.level")),
            _ => return None,
        };
        Some(Codec { compression, level })
    }

    /// `message.timestamp.type`.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.value("message.timestamp.type") == Some(LOG_APPEND_TIME) {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// `(before, after)`: how far a CreateTime record's timestamp may lie
    /// behind and ahead of the broker's clock. A bound the topic (or broker)
    /// does not set falls back to the deprecated
    /// `message.timestamp.difference.max.ms`, as Kafka 3.6+ does.
    pub fn timestamp_bounds_ms(&self) -> (i64, i64) {
        let difference = self
            .entry("message.timestamp.difference.max.ms")
            .filter(|e| e.source != Source::Default)
            .and_then(|e| parse_long(&e.value));
        let bound = |key: &str| {
            self.entry(key)
                .filter(|e| e.source != Source::Default)
                .and_then(|e| parse_long(&e.value))
                .or(difference)
                .unwrap_or(i64::MAX)
        };
        (
            bound("message.timestamp.before.max.ms"),
            bound("message.timestamp.after.max.ms"),
        )
    }
}

/// Stored overrides the table refuses (unknown key or value out of its
/// bounds), with why: the broker logs each once at start and uses the
/// default for that key.
pub fn invalid_overrides(
    overrides: &BTreeMap<String, String>,
) -> impl Iterator<Item = ConfigError> + '_ {
    overrides
        .iter()
        .filter_map(|(key, value)| match topic_setting(key) {
            None => Some(ConfigError::UnknownKey(key.clone())),
            Some(setting) => check(setting, value).err(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compaction_knobs_resolve_and_max_lag_rolls_the_active_segment() {
        let defaults = TopicDefaults::default();
        let plain = TopicConfig::resolve(&overrides(&[("cleanup.policy", "compact")]), &defaults);
        let k = plain.compaction().unwrap();
        assert_eq!(k.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(k.max_compaction_lag_ms, i64::MAX);
        let segment_ms = plain.log_config().segment_ms;
        let lagged = TopicConfig::resolve(
            &overrides(&[
                ("cleanup.policy", "compact"),
                ("max.compaction.lag.ms", "1500"),
                ("min.cleanable.dirty.ratio", "0.25"),
            ]),
            &defaults,
        );
        assert_eq!(lagged.log_config().segment_ms, 1500.min(segment_ms));
        assert_eq!(lagged.compaction().unwrap().min_cleanable_dirty_ratio, 0.25);
        // Not compacted: max.compaction.lag.ms does not roll anything.
        let deleted =
            TopicConfig::resolve(&overrides(&[("max.compaction.lag.ms", "1500")]), &defaults);
        assert_eq!(deleted.log_config().segment_ms, segment_ms);
        // The ratio is a DOUBLE within 0..=1.
        let bad = |v: &str| {
            invalid_overrides(&overrides(&[("min.cleanable.dirty.ratio", v)]))
                .next()
                .is_some()
        };
        assert!(bad("1.5") && bad("-0.1") && bad("half") && bad("NaN"));
        assert!(!bad("0") && !bad("0.5") && !bad("1"));
        assert!(
            invalid_overrides(&overrides(&[("max.compaction.lag.ms", "0")]))
                .next()
                .is_some()
        );
    }

    #[test]
    fn overrides_win_over_defaults_and_reach_the_log_config() {
        let o = overrides(&[("retention.ms", "60000"), ("segment.bytes", "1048576")]);
        let c = TopicConfig::resolve(&o, &TopicDefaults::default());
        let lc = c.log_config();
        assert_eq!(lc.retention_ms, Some(60_000));
        assert_eq!(lc.segment_bytes, 1_048_576);
        assert_eq!(lc.flush_messages, None);
        // Not capped at segment.bytes (1 MiB here): Kafka's default.
        assert_eq!(c.max_message_bytes(), 1_048_588);
        let retention = c.entry("retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("60000", Source::TopicOverride)
        );
        let cleanup = c.entry("cleanup.policy").unwrap();
        assert_eq!(
            (cleanup.value.as_str(), cleanup.source),
            ("delete", Source::Default)
        );
    }

    #[test]
    fn invalid_stored_values_fall_back_to_defaults_and_still_open_a_log() {
        let o = overrides(&[
            ("segment.bytes", "1"),
            ("retention.ms", "-7"),
            ("gone.key", "x"),
            ("flush.ms", "1000"),
        ]);
        let c = TopicConfig::resolve(&o, &TopicDefaults::default());
        assert_eq!(c.value("segment.bytes"), Some("1073741824"));
        assert_eq!(c.entry("segment.bytes").unwrap().source, Source::Default);
        assert_eq!(c.value("flush.ms"), Some("1000"));
        c.log_config().validate().unwrap();
        let mut bad: Vec<String> = invalid_overrides(&o).map(|e| e.to_string()).collect();
        bad.sort();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad.iter().any(|e| e.contains("gone.key")));
    }

    #[test]
    fn every_accepted_extreme_opens_a_log() {
        for setting in TOPIC_SETTINGS {
            if let super::super::table::Rule::Range { min, max } = setting.rule {
                for v in [min, max] {
                    let o = overrides(&[(setting.name, &v.to_string())]);
                    let c = TopicConfig::resolve(&o, &TopicDefaults::default());
                    assert_eq!(c.entry(setting.name).unwrap().source, Source::TopicOverride);
                    c.log_config()
                        .validate()
                        .unwrap_or_else(|e| panic!("{}={v}: {e}", setting.name));
                }
            }
        }
    }

    #[test]
    fn broker_settings_become_topic_defaults() {
        let config = BrokerConfig {
            log_retention_ms: 1000,
            ..BrokerConfig::default()
        };
        let d = TopicDefaults::from_broker(&config).unwrap();
        let c = TopicConfig::resolve(&BTreeMap::new(), &d);
        let e = c.entry("retention.ms").unwrap();
        assert_eq!((e.value.as_str(), e.source), ("1000", Source::StaticBroker));
        assert_eq!(e.broker_key(), "log.retention.ms");
        assert_eq!(
            c.entry("segment.bytes").unwrap().source,
            Source::Default,
            "an unchanged broker default is DEFAULT_CONFIG"
        );
        let bad = BrokerConfig {
            log_segment_bytes: 10,
            ..BrokerConfig::default()
        };
        let e = TopicDefaults::from_broker(&bad).unwrap_err();
        assert!(e.to_string().contains("log.segment.bytes"), "{e}");
    }

    #[test]
    fn timestamp_settings() {
        let c = TopicConfig::resolve(&BTreeMap::new(), &TopicDefaults::default());
        assert_eq!(c.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(c.timestamp_bounds_ms(), (i64::MAX, i64::MAX));
        let o = overrides(&[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.difference.max.ms", "500"),
            ("message.timestamp.after.max.ms", "100"),
        ]);
        let c = TopicConfig::resolve(&o, &TopicDefaults::default());
        assert_eq!(c.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(c.timestamp_bounds_ms(), (500, 100));
    }
}
