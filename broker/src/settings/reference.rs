//! The configuration reference in `docs/operations.md`, generated from the
//! settings table so the doc cannot drift from the code (a test compares
//! them).

use std::fmt::Write;

use super::layers::env_var;
use super::table::{BROKER_SETTINGS, Rule, Scope, Setting, TOPIC_SETTINGS, Unit};
use crate::config::BrokerConfig;

/// The topic and broker setting tables as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "### Topic configs\n\n\
         | key | type | unit | default | allowed | broker default key | description |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for s in TOPIC_SETTINGS {
        let Scope::Topic {
            default,
            broker_key,
        } = s.scope
        else {
            continue;
        };
        row(&mut out, s, &default.render(), &format!("`{broker_key}`"));
    }
    out.push_str(
        "\n### Broker settings (static: read from the config file, environment and flags at start)\n\n\
         The key is Kafka's name, as DescribeConfigs reports it; the file key\n\
         sets it in the TOML file, in `--set key=value`, and upper-cased with\n\
         `SLUICE_` in front and `.` as `_` in the environment.\n\n\
         | key | type | unit | default | allowed | file key (environment) | description |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let defaults = BrokerConfig::default();
    for s in BROKER_SETTINGS {
        let Scope::Broker { value, file_key } = s.scope else {
            continue;
        };
        let default = value(&defaults).unwrap_or_else(|| "null".into());
        let file = file_key.map_or_else(
            || "(derived)".to_string(),
            |k| format!("`{k}` (`{}`)", env_var(k)),
        );
        row(&mut out, s, &default, &file);
    }
    out
}

fn row(out: &mut String, s: &Setting, default: &str, broker_key: &str) {
    let allowed = match s.rule {
        Rule::Range { min, max } => format!("{min}..={max}"),
        Rule::RangeOr { min, max, or } => format!("{min}..={max} or {or}"),
        Rule::Fraction => "0..=1".to_string(),
        Rule::Positive => "> 0".to_string(),
        Rule::OneOf(values) => values.join(", "),
        Rule::ListOf(values) => format!("list of: {}", values.join(", ")),
        Rule::Any => String::new(),
    };
    let unit = match s.unit {
        Unit::None => "",
        Unit::Bytes => "bytes",
        Unit::Milliseconds => "ms",
        Unit::Seconds => "s",
        Unit::Records => "records",
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "| `{}` | {} | {unit} | `{default}` | {allowed} | {broker_key} | {} |",
        s.name,
        s.config_type.name(),
        s.doc.replace('|', "\\|"),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn operations_doc_holds_the_generated_reference() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .expect("docs/operations.md exists");
        let reference = super::markdown();
        assert!(
            doc.contains(&reference),
            "docs/operations.md is out of date; its configuration reference must read:\n{reference}"
        );
    }
}
