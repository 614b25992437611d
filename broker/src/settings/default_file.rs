//! `sluice config defaults` and `sluice config show`: a complete broker
//! config file, one commented key per broker row of the settings table.
//!
//! ```text
//! # <doc>
//! # <TYPE>[, <unit>][, allowed <rule>]; Kafka name <name>; env SLUICE_<KEY>
//! "<file key>" = <value>          (a null value is printed commented out)
//! ```
//!
//! # Invariants
//! - The defaults file, read back as `--config`, yields a configuration
//!   equal to no configuration at all (a test checks it), so it is a safe
//!   starting point to edit.

use std::fmt::Write;

use super::layers::{Origins, env_var};
use super::table::{BROKER_SETTINGS, Rule, Setting, Unit};
use crate::config::BrokerConfig;

/// The file with every broker setting at its built-in default.
pub fn defaults() -> String {
    render(&BrokerConfig::default(), false)
}

/// The file of `config` as loaded; with `origins`, each key set by the
/// operator says where it came from.
pub fn effective(config: &BrokerConfig) -> String {
    render(config, true)
}

fn render(config: &BrokerConfig, show_origins: bool) -> String {
    let mut out = String::from(
        "# Sluice broker configuration: every setting, one commented key each.\n\
         # Precedence, later wins: built-in defaults < this file (--config) <\n\
         # SLUICE_<KEY> environment variables < flags (--set key=value, --listen, ...).\n\
         # Topic configs (retention.ms, segment.bytes, ...) are set per topic with\n\
         # CreateTopics or AlterConfigs; the log.* keys here are their broker defaults.\n",
    );
    // A `BrokerConfig` always serializes to a table (no field is a bare
    // value); an empty table would only lose the values, never panic.
    let values = toml::Table::try_from(config).unwrap_or_default();
    for setting in BROKER_SETTINGS {
        let Some(key) = setting.file_key() else {
            continue;
        };
        out.push('\n');
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# {}", setting.doc);
        let _ = writeln!(out, "# {}", describe(setting, key));
        if show_origins {
            origin_line(&mut out, &config.origins, key);
        }
        let quoted = toml::Value::String(key.to_string()).to_string();
        let shown = if key.contains('.') {
            quoted
        } else {
            key.to_string()
        };
        match values.get(key) {
            Some(value) => {
                let _ = writeln!(out, "{shown} = {value}");
            }
            None => {
                let _ = writeln!(out, "# {shown} = (not set)");
            }
        }
    }
    out
}

fn origin_line(out: &mut String, origins: &Origins, key: &str) {
    if let Some(origin) = origins.get(key) {
        let _ = writeln!(out, "# set by: {origin}");
    }
}

/// `INT, bytes, allowed 1..=2147483647; Kafka name message.max.bytes; env SLUICE_…`.
fn describe(setting: &Setting, key: &str) -> String {
    let mut parts = vec![setting.config_type.name().to_string()];
    match setting.unit {
        Unit::None => {}
        Unit::Bytes => parts.push("bytes".into()),
        Unit::Milliseconds => parts.push("milliseconds".into()),
        Unit::Seconds => parts.push("seconds".into()),
        Unit::Records => parts.push("records".into()),
    }
    match setting.rule {
        Rule::Range { min, max } => parts.push(format!("allowed {min}..={max}")),
        Rule::RangeOr { min, max, or } => parts.push(format!("allowed {min}..={max} or {or}")),
        Rule::Fraction => parts.push("allowed 0..=1".into()),
        Rule::Positive => parts.push("allowed > 0".into()),
        Rule::OneOf(values) | Rule::ListOf(values) => {
            parts.push(format!("one of {}", values.join(", ")))
        }
        Rule::Any => {}
    }
    let mut line = parts.join(", ");
    if setting.name != key {
        let _ = write!(line, "; Kafka name {}", setting.name);
    }
    let _ = write!(line, "; env {}", env_var(key));
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::layers::Layers;

    #[test]
    fn the_defaults_file_read_back_is_no_config_at_all() {
        let text = defaults();
        let mut layers = Layers::new();
        layers.file("defaults.toml", &text).unwrap();
        let loaded = layers.build().unwrap();
        assert_eq!(
            toml::Table::try_from(&loaded).unwrap(),
            toml::Table::try_from(BrokerConfig::default()).unwrap()
        );
    }

    #[test]
    fn every_field_of_the_config_is_a_row_and_every_row_a_field() {
        let config = BrokerConfig {
            advertised: Some("h:1".into()),
            controller_voters: Some("1@127.0.0.1:1".into()),
            controller_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 1))),
            broker_rack: Some("rack-1".into()),
            ..BrokerConfig::default()
        };
        let fields: std::collections::BTreeSet<String> = toml::Table::try_from(&config)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let rows: std::collections::BTreeSet<String> = BROKER_SETTINGS
            .iter()
            .filter_map(|s| s.file_key())
            .map(str::to_string)
            .collect();
        assert_eq!(fields, rows);
        let text = defaults();
        for key in rows {
            assert!(text.contains(&format!("env {}", env_var(&key))), "{key}");
        }
    }
}
