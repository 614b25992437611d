//! Parsing and validating one setting value against its row of the table.
//!
//! Every path that may write a topic config to the metadata log
//! (CreateTopics, AlterConfigs, IncrementalAlterConfigs, auto-creation)
//! calls [`validate_topic_value`] first; the answer to a bad value is
//! INVALID_CONFIG with a message naming the key and what it accepts,
//! worded like Kafka's `ConfigException`.
//!
//! # Invariants
//! - A value [`validate_topic_value`] accepts parses with [`parse_long`]
//!   (numeric keys) and lies within the row's bounds, so resolution and
//!   `LogConfig` construction never meet a value they cannot use.
//! - Surrounding whitespace is ignored, as Kafka's `ConfigDef` trims.

use super::table::{Rule, Setting, topic_setting};

/// Why a config value or key was refused (INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a topic config Sluice serves (Kafka: `InvalidConfigurationException`).
    #[error("Unknown topic config name: {0}")]
    UnknownKey(String),
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// APPEND/SUBTRACT on a key whose value is not a list.
    #[error("Config value append/subtract is not allowed for config key {0}: it is not a list")]
    NotAList(String),
    /// A broker setting named where only a client-alterable one may be.
    #[error("{0} cannot be changed by a client")]
    ReadOnly(String),
}

/// Checks one topic config `key=value` against the table.
pub fn validate_topic_value(key: &str, value: &str) -> Result<(), ConfigError> {
    let setting = topic_setting(key).ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    if !setting.alterable {
        return Err(ConfigError::ReadOnly(key.to_string()));
    }
    check(setting, value)
}

/// Checks a whole set of topic config overrides.
pub fn validate_topic_values<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    configs
        .into_iter()
        .try_for_each(|(k, v)| validate_topic_value(k, v))
}

/// Checks `value` against `setting`'s rule.
pub fn check(setting: &Setting, value: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: setting.name.to_string(),
        value: value.to_string(),
        reason,
    };
    let trimmed = value.trim();
    match setting.rule {
        Rule::Range { min, max } => {
            let v = parse_long(trimmed).ok_or_else(|| {
                invalid(format!(
                    "Not a number of type {}",
                    setting.config_type.name()
                ))
            })?;
            if v < min {
                return Err(invalid(format!(
                    "Value must be at least {min} (allowed: {min}..={max})"
                )));
            }
            if v > max {
                return Err(invalid(format!(
                    "Value must be no more than {max} (allowed: {min}..={max})"
                )));
            }
        }
        Rule::RangeOr { min, max, or } => {
            let v = parse_long(trimmed).ok_or_else(|| {
                invalid(format!(
                    "Not a number of type {}",
                    setting.config_type.name()
                ))
            })?;
            if v != or && !(min..=max).contains(&v) {
                return Err(invalid(format!(
                    "Value must be in [{min},...,{max}] or {or}"
                )));
            }
        }
        Rule::Fraction => {
            let v = parse_double(trimmed)
                .ok_or_else(|| invalid("Not a number of type DOUBLE".to_string()))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid("Value must be within 0..=1".to_string()));
            }
        }
        Rule::Positive => {
            let v = parse_double(trimmed)
                .ok_or_else(|| invalid("Not a number of type DOUBLE".to_string()))?;
            if v <= 0.0 {
                return Err(invalid("Value must be above 0".to_string()));
            }
        }
        Rule::OneOf(allowed) => {
            if !allowed.contains(&trimmed) {
                return Err(invalid(format!(
                    "String must be one of: {}",
                    allowed.join(", ")
                )));
            }
        }
        Rule::ListOf(allowed) => {
            let items: Vec<&str> = trimmed.split(',').map(str::trim).collect();
            if items.iter().all(|i| i.is_empty()) {
                return Err(invalid(format!(
                    "must be a non-empty list of: {}",
                    allowed.join(", ")
                )));
            }
            if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
                return Err(invalid(format!(
                    "list item {bad:?} is not one of: {}",
                    allowed.join(", ")
                )));
            }
        }
        Rule::Any => {}
    }
    Ok(())
}

/// A numeric setting's value (trimmed, decimal).
pub fn parse_long(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// A DOUBLE setting's value, finite (`NaN` and infinities are refused).
fn parse_double(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_and_what_it_accepts() {
        assert!(validate_topic_value("retention.ms", "-1").is_ok());
        assert!(validate_topic_value("retention.ms", " 60000 ").is_ok());
        assert!(validate_topic_value("index.interval.bytes", "0").is_ok());
        assert!(validate_topic_value("message.timestamp.type", "LogAppendTime").is_ok());

        let e = validate_topic_value("segment.bytes", "1").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("segment.bytes") && text.contains("1024"),
            "{text}"
        );

        let e = validate_topic_value("retention.ms", "-2").unwrap_err();
        assert!(e.to_string().contains("at least -1"), "{e}");

        let e = validate_topic_value("retention.ms", "soon").unwrap_err();
        assert!(e.to_string().contains("Not a number of type LONG"), "{e}");

        let e = validate_topic_value("segment.bytes", "4294967296").unwrap_err();
        assert!(e.to_string().contains("no more than 2147483647"), "{e}");

        let e = validate_topic_value("cleanup.policy", "bogus").unwrap_err();
        assert!(e.to_string().contains("cleanup.policy") && e.to_string().contains("delete"));
        assert!(validate_topic_value("cleanup.policy", "").is_err());
        assert!(validate_topic_value("cleanup.policy", "delete").is_ok());
        assert!(validate_topic_value("cleanup.policy", "compact,delete").is_ok());

        // Kafka's gzip levels: 1..9 or -1 (0 is refused).
        for ok in ["-1", "1", "9"] {
            assert!(
                validate_topic_value("compression.gzip.level", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["0", "-2", "10"] {
            let e = validate_topic_value("compression.gzip.level", bad).unwrap_err();
            assert!(e.to_string().contains("[1,...,9] or -1"), "{bad}: {e}");
        }

        assert_eq!(
            validate_topic_value("no.such.key", "1"),
            Err(ConfigError::UnknownKey("no.such.key".into()))
        );
        // A broker setting is not a topic config.
        assert!(matches!(
            validate_topic_value("log.retention.ms", "1"),
            Err(ConfigError::UnknownKey(_))
        ));
    }
}
