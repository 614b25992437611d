//! How the broker's settings are read at start: layers of `key = value`
//! over the built-in defaults, each checked against the settings table
//! before it is accepted.
//!
//! ```text
//! built-in defaults (BrokerConfig::default)            DEFAULT_CONFIG
//!   < the TOML file (--config / SLUICE_CONFIG)          STATIC_BROKER_CONFIG
//!   < SLUICE_<KEY> environment variables                STATIC_BROKER_CONFIG
//!   < flags (--listen, --data-dir, …, --set key=value)  STATIC_BROKER_CONFIG
//! ```
//!
//! A key is a broker row's `file_key` (`data_dir`, `num.partitions`, …);
//! its environment variable is `SLUICE_` and the key upper-cased with `.`
//! turned into `_` (`SLUICE_NUM_PARTITIONS`, `SLUICE_DATA_DIR`).
//!
//! # Invariants
//! - Every accepted value names a row of `BROKER_SETTINGS`, passes the
//!   row's rule (range, allowed strings) and deserializes into its
//!   `BrokerConfig` field; otherwise the start fails with a [`LoadError`]
//!   naming the key, where it came from and what the row allows.
//! - Later layers replace earlier ones key by key; [`Origins`] records
//!   the layer each operator-set key came from.
//! - Environment variables that start with `SLUICE_` but name no setting
//!   are returned to the caller to warn about (the CLI and the test
//!   harnesses use a few: `SLUICE_BOOTSTRAP`, `SLUICE_BIN`, …), never
//!   an error.

use std::collections::BTreeMap;
use std::fmt;

use super::table::{BROKER_SETTINGS, ConfigType, Rule, Setting};
use super::value::check;
use crate::config::{BrokerConfig, parse_voters};

/// Where an operator-set value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file at this path.
    File(String),
    /// This environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "config file {path}"),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Flag => f.write_str("command line"),
        }
    }
}

/// File key → the layer that set it last. Keys left at their default are
/// absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(BTreeMap<&'static str, Origin>);

impl Origins {
    /// Where `file_key` was set, if the operator set it.
    pub fn get(&self, file_key: &str) -> Option<&Origin> {
        self.0.get(file_key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Origin)> {
        self.0.iter().map(|(k, o)| (*k, o))
    }
}

/// Why the settings cannot start a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("unknown setting {key:?} in {origin} (`sluice config defaults` prints every setting)")]
    UnknownKey { key: String, origin: Origin },
    #[error("invalid value {value} for setting {key} in {origin}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    #[error("{path} is not a TOML file: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{0}")]
    Inconsistent(String),
}

/// The environment variable of a file key.
pub fn env_var(file_key: &str) -> String {
    format!("SLUICE_{}", file_key.to_uppercase().replace('.', "_"))
}

/// Environment variables with the `SLUICE_` prefix that are not settings,
/// so a broker started with them set does not warn about them: the config
/// file path and the log filter of `sluice serve`, the CLI's bootstrap, and
/// those of the test harnesses (the binary under test, simulation seeds)
/// and the benchmarks, which pass their whole environment to the brokers
/// they start.
const NOT_SETTINGS: &[&str] = &[
    "SLUICE_CONFIG",
    "SLUICE_LOG",
    "SLUICE_BOOTSTRAP",
    "SLUICE_BIN",
    "SLUICE_SEED",
    "SLUICE_SIM_SEEDS",
    "SLUICE_TEST_RECORDS",
    "SLUICE_BENCH_BOOTSTRAP",
    "SLUICE_BENCH_DIR",
    "SLUICE_BENCH_MIB",
];

/// Settings being gathered, layer by layer.
#[derive(Debug, Default)]
pub struct Layers {
    values: toml::Table,
    origins: BTreeMap<&'static str, Origin>,
}

impl Layers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the TOML file `text` read from `path`.
    pub fn file(&mut self, path: &str, text: &str) -> Result<(), LoadError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| LoadError::Syntax {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        for (key, value) in table {
            self.set(&key, value, Origin::File(path.to_string()))?;
        }
        Ok(())
    }

    /// Adds every `SLUICE_<KEY>` variable of `vars` that names a setting;
    /// returns the other `SLUICE_*` names that are not known to anything.
    pub fn env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<String>, LoadError> {
        let mut unknown = Vec::new();
        for (var, text) in vars {
            if !var.starts_with("SLUICE_") || NOT_SETTINGS.contains(&var.as_str()) {
                continue;
            }
            let Some((row, key)) = BROKER_SETTINGS
                .iter()
                .find_map(|s| s.file_key().filter(|k| env_var(k) == var).map(|k| (s, k)))
            else {
                unknown.push(var);
                continue;
            };
            let origin = Origin::Env(var);
            let value = typed(row, key, &text, &origin)?;
            self.set(key, value, origin)?;
        }
        Ok(unknown)
    }

    /// Adds a flag: `key` (a file key) set to `text`, typed by its row.
    pub fn flag(&mut self, key: &str, text: &str) -> Result<(), LoadError> {
        let (row, key) = row_of(key, &Origin::Flag)?;
        let value = typed(row, key, text, &Origin::Flag)?;
        self.set(key, value, Origin::Flag)
    }

    /// Adds `--set key=value`.
    pub fn assignment(&mut self, assignment: &str) -> Result<(), LoadError> {
        let (key, text) = assignment
            .split_once('=')
            .ok_or_else(|| LoadError::InvalidValue {
                key: assignment.to_string(),
                value: String::new(),
                origin: Origin::Flag,
                reason: "--set takes key=value".to_string(),
            })?;
        self.flag(key.trim(), text.trim())
    }

    fn set(&mut self, key: &str, value: toml::Value, origin: Origin) -> Result<(), LoadError> {
        let (row, key) = row_of(key, &origin)?;
        let invalid = |reason: String| LoadError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            origin: origin.clone(),
            reason,
        };
        let rendered = match &value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !matches!(row.rule, Rule::Any) {
            check(row, &rendered).map_err(|e| match e {
                super::ConfigError::InvalidValue { reason, .. } => invalid(reason),
                other => invalid(other.to_string()),
            })?;
        }
        // The field's own type: a socket address, a path, a bool, a number
        // that fits the field.
        let mut one = toml::Table::new();
        one.insert(key.to_string(), value.clone());
        one.try_into::<BrokerConfig>()
            .map_err(|e| invalid(e.message().to_string()))?;
        self.values.insert(key.to_string(), value);
        self.origins.insert(key, origin);
        Ok(())
    }

    /// The configuration the layers describe, checked as a whole.
    pub fn build(self) -> Result<BrokerConfig, LoadError> {
        let mut config: BrokerConfig = self
            .values
            .try_into()
            .map_err(|e: toml::de::Error| LoadError::Inconsistent(e.message().to_string()))?;
        config.origins = Origins(self.origins);
        check_consistent(&config)?;
        Ok(config)
    }
}

/// Relations between settings no single row can check.
fn check_consistent(config: &BrokerConfig) -> Result<(), LoadError> {
    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms {
        return Err(LoadError::Inconsistent(format!(
            "group.min.session.timeout.ms ({}) is above group.max.session.timeout.ms ({})",
            config.group_min_session_timeout_ms, config.group_max_session_timeout_ms
        )));
    }
    if let Some(voters) = &config.controller_voters {
        parse_voters(voters).map_err(|e| {
            LoadError::Inconsistent(format!("setting controller_voters: {e} (id@host:port,…)"))
        })?;
    }
    if config.admin_enabled && config.admin_listen == config.listen && config.listen.port() != 0 {
        return Err(LoadError::Inconsistent(format!(
            "admin.listen and listen are both {}",
            config.listen
        )));
    }
    Ok(())
}

/// The broker row whose file key is `key`.
fn row_of(key: &str, origin: &Origin) -> Result<(&'static Setting, &'static str), LoadError> {
    BROKER_SETTINGS
        .iter()
        .find_map(|s| s.file_key().filter(|k| *k == key).map(|k| (s, k)))
        .ok_or_else(|| LoadError::UnknownKey {
            key: key.to_string(),
            origin: origin.clone(),
        })
}

/// A text value (environment, flag) as the TOML value its row's type takes.
fn typed(row: &Setting, key: &str, text: &str, origin: &Origin) -> Result<toml::Value, LoadError> {
    let text = text.trim();
    let invalid = |reason: &str| LoadError::InvalidValue {
        key: key.to_string(),
        value: text.to_string(),
        origin: origin.clone(),
        reason: reason.to_string(),
    };
    match row.config_type {
        ConfigType::Int | ConfigType::Long => text
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| invalid(&format!("Not a number of type {}", row.config_type.name()))),
        ConfigType::Double => text
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| invalid("Not a number of type DOUBLE")),
        ConfigType::Boolean => match text {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err(invalid("Expected value to be either true or false")),
        },
        ConfigType::String | ConfigType::List => Ok(toml::Value::String(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn later_layers_win_key_by_key_and_origins_say_where() {
        let mut layers = Layers::new();
        layers
            .file(
                "a.toml",
                "\"num.partitions\" = 3\n\"group.max.size\" = 7\ndata_dir = \"/f\"\n",
            )
            .unwrap();
        let unknown = layers
            .env(env(&[
                ("SLUICE_NUM_PARTITIONS", "4"),
                ("SLUICE_DATA_DIR", "/e"),
                ("SLUICE_BIN", "/x"),
                ("SLUICE_LOG", "info"),
                ("SLUICE_NO_SUCH_KEY", "1"),
                ("PATH", "/bin"),
            ]))
            .unwrap();
        // The harness's binary path and the log filter are known, not
        // settings; only a real typo is reported.
        assert_eq!(unknown, ["SLUICE_NO_SUCH_KEY"]);
        layers.flag("data_dir", "/flag").unwrap();
        layers.assignment("log.format=json").unwrap();
        let c = layers.build().unwrap();
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.group_max_size, 7);
        assert_eq!(c.data_dir.to_str(), Some("/flag"));
        assert_eq!(c.log_format, crate::config::LogFormat::Json);
        assert_eq!(
            c.origins.get("group.max.size"),
            Some(&Origin::File("a.toml".into()))
        );
        assert_eq!(
            c.origins.get("num.partitions"),
            Some(&Origin::Env("SLUICE_NUM_PARTITIONS".into()))
        );
        assert_eq!(c.origins.get("data_dir"), Some(&Origin::Flag));
        assert_eq!(c.origins.get("listen"), None);
    }

    #[test]
    fn bad_settings_are_refused_naming_key_origin_and_range() {
        let err = |f: &dyn Fn(&mut Layers) -> Result<(), LoadError>| {
            let mut l = Layers::new();
            f(&mut l)
                .and_then(|()| l.build().map(drop))
                .unwrap_err()
                .to_string()
        };
        let e = err(&|l| l.file("s.toml", "\"num.partitions\" = 0\n"));
        assert!(
            e.contains("num.partitions") && e.contains("s.toml") && e.contains("1..=2147483647"),
            "{e}"
        );
        let e = err(&|l| l.file("s.toml", "no_such = 1\n"));
        assert!(e.contains("unknown setting \"no_such\""), "{e}");
        let e = err(&|l| l.env(env(&[("SLUICE_LOG_SEGMENT_BYTES", "12")])).map(drop));
        assert!(
            e.contains("log.segment.bytes")
                && e.contains("SLUICE_LOG_SEGMENT_BYTES")
                && e.contains("1024"),
            "{e}"
        );
        let e = err(&|l| l.env(env(&[("SLUICE_MAX_CONNECTIONS", "lots")])).map(drop));
        assert!(e.contains("Not a number of type INT"), "{e}");
        let e = err(&|l| l.flag("listen", "nowhere"));
        assert!(e.contains("listen") && e.contains("command line"), "{e}");
        let e = err(&|l| l.flag("durability", "sometimes"));
        assert!(e.contains("fsync, page_cache"), "{e}");
        let e = err(&|l| l.assignment("group.min.session.timeout.ms=9000000"));
        assert!(e.contains("is above group.max.session.timeout.ms"), "{e}");
        let e = err(&|l| l.file("s.toml", "this is = not toml"));
        assert!(e.contains("s.toml is not a TOML file"), "{e}");
        let e = err(&|l| l.flag("controller_voters", "1@nowhere"));
        assert!(e.contains("controller_voters"), "{e}");
        // The cleaner's rate is a DOUBLE above 0 (0 would stop cleaning).
        let rate = "log.cleaner.io.max.bytes.per.second";
        for bad in ["0", "-1", "-0.5", "NaN", "inf"] {
            let e = err(&|l| l.flag(rate, bad));
            assert!(
                e.contains(rate) && e.contains("DOUBLE") || e.contains("above 0"),
                "{bad}: {e}"
            );
        }
        let e = err(&|l| l.file("s.toml", &format!("\"{rate}\" = 0.0\n")));
        assert!(e.contains("above 0"), "{e}");
        let mut ok = Layers::new();
        ok.flag(rate, "1048576.5").unwrap();
        assert_eq!(
            ok.build().unwrap().log_cleaner_io_max_bytes_per_second,
            1048576.5
        );
    }

    #[test]
    fn no_layers_is_the_default_config() {
        let built = Layers::new().build().unwrap();
        assert_eq!(
            toml::Table::try_from(&built).unwrap(),
            toml::Table::try_from(BrokerConfig::default()).unwrap()
        );
        assert_eq!(built.origins, Origins::default());
    }
}
