//! How settings are shown to clients: DescribeConfigs entries (with
//! synonyms, type and documentation as the version allows) and the
//! configs a CreateTopics v5+ response carries, both from the table.
//!
//! | field | topic key | broker setting |
//! |---|---|---|
//! | `read_only` | `!alterable` (false for every topic key) | true: broker settings are static |
//! | `config_source` | DYNAMIC_TOPIC_CONFIG (1), STATIC_BROKER_CONFIG (4) or DEFAULT_CONFIG (5) | STATIC_BROKER_CONFIG if the operator set it (file, environment or flag, even to its default value) or it differs from the default, else DEFAULT_CONFIG |
//! | `is_sensitive` | false | false (Sluice has no secrets in its settings yet) |
//! | synonyms | the override, the broker's `log.*` value if set, the default under the broker key | the setting itself |
//!
//! # References
//! KIP-133 (DescribeConfigs), KIP-226 (sources and synonyms), KIP-569
//! (config type and documentation); Kafka's `ConfigHelper`.

use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;

use super::table::{BROKER_SETTINGS, Scope, Setting};
use super::topic::{Entry, Source, TopicConfig};
use crate::config::BrokerConfig;

/// What the DescribeConfigs request asked to see beyond values.
#[derive(Debug, Clone, Copy)]
pub struct DescribeOptions {
    pub version: i16,
    pub synonyms: bool,
    pub documentation: bool,
}

/// DescribeConfigs entries of a topic's keys that `wanted` selects.
pub fn describe_topic(
    config: &TopicConfig,
    options: DescribeOptions,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    config
        .entries()
        .filter(|e| wanted(e.setting.name))
        .map(|e| {
            let synonyms = options.synonyms.then(|| topic_synonyms(e));
            result(
                e.setting,
                Some(e.value.clone()),
                e.source,
                synonyms,
                options,
            )
        })
        .collect()
}

/// Most specific first: the override, the broker's value, the default.
fn topic_synonyms(e: &Entry) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::with_capacity(3);
    if e.source == Source::TopicOverride {
        out.push(synonym(
            e.setting.name,
            Some(e.value.clone()),
            Source::TopicOverride,
        ));
    }
    if let Some(b) = &e.broker_value {
        out.push(synonym(
            e.broker_key(),
            Some(b.clone()),
            Source::StaticBroker,
        ));
    }
    out.push(synonym(
        e.broker_key(),
        Some(e.default_value.clone()),
        Source::Default,
    ));
    out
}

/// DescribeConfigs entries of this broker's settings that `wanted` selects.
pub fn describe_broker(
    config: &BrokerConfig,
    options: DescribeOptions,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    BROKER_SETTINGS
        .iter()
        .filter(|s| wanted(s.name))
        .filter_map(|s| {
            let (value, source) = broker_value(s, config)?;
            let synonyms = options
                .synonyms
                .then(|| vec![synonym(s.name, value.clone(), source)]);
            Some(result(s, value, source, synonyms, options))
        })
        .collect()
}

/// A broker setting's value and whether the operator changed it.
fn broker_value(s: &Setting, config: &BrokerConfig) -> Option<(Option<String>, Source)> {
    let Scope::Broker { value, .. } = s.scope else {
        return None;
    };
    let current = value(config);
    // Kafka reports a key present in server.properties as static even when
    // it equals the default; a config built in code has no origins, so a
    // changed value counts as set.
    let set_by_operator = s
        .file_key()
        .is_some_and(|k| config.origins.get(k).is_some());
    let source = if set_by_operator || current != value(&BrokerConfig::default()) {
        Source::StaticBroker
    } else {
        Source::Default
    };
    Some((current, source))
}

fn result(
    s: &Setting,
    value: Option<String>,
    source: Source,
    synonyms: Option<Vec<DescribeConfigsSynonym>>,
    options: DescribeOptions,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(s.name))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(!s.alterable)
        .with_config_source(source.code())
        .with_is_sensitive(false);
    if let Some(synonyms) = synonyms {
        out = out.with_synonyms(synonyms);
    }
    if options.version >= 3 {
        let doc = options
            .documentation
            .then(|| StrBytes::from_static_str(s.doc));
        out = out
            .with_config_type(s.config_type.code())
            .with_documentation(doc);
    }
    out
}

fn synonym(name: &'static str, value: Option<String>, source: Source) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(value.map(StrBytes::from_string))
        .with_source(source.code())
}

/// The configs of a created topic, as CreateTopics v5+ returns them.
pub fn created_topic_configs(config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    config
        .entries()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(e.setting.name))
                .with_value(Some(StrBytes::from_string(e.value.clone())))
                .with_read_only(!e.setting.alterable)
                .with_config_source(e.source.code())
                .with_is_sensitive(false)
        })
        .collect()
}

/// Whether the operator set the broker setting `name` to something other
/// than the built-in default.
pub fn broker_changed(config: &BrokerConfig, name: &str) -> bool {
    super::table::broker_setting(name)
        .and_then(|s| broker_value(s, config))
        .is_some_and(|(_, source)| source == Source::StaticBroker)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::settings::TopicDefaults;

    const ALL: DescribeOptions = DescribeOptions {
        version: 4,
        synonyms: true,
        documentation: true,
    };

    #[test]
    fn broker_entries_flag_what_the_operator_changed() {
        let mut c = BrokerConfig::default();
        let all = describe_broker(&c, ALL, |_| true);
        assert_eq!(all.len(), BROKER_SETTINGS.len());
        assert!(all.iter().all(|e| e.config_source == 5 && e.read_only));
        c.log_retention_ms = 1000;
        assert!(broker_changed(&c, "log.retention.ms"));
        assert!(!broker_changed(&c, "num.partitions"));
        let retention = describe_broker(&c, ALL, |n| n == "log.retention.ms");
        assert_eq!(retention.len(), 1);
        assert_eq!(retention[0].value.as_deref(), Some("1000"));
        assert_eq!(retention[0].config_source, 4);
    }

    #[test]
    fn topic_entries_carry_source_synonyms_type_and_doc() {
        let broker = BrokerConfig {
            log_retention_ms: 5000,
            ..BrokerConfig::default()
        };
        let defaults = TopicDefaults::from_broker(&broker).unwrap();
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "2048".to_string())]);
        let config = TopicConfig::resolve(&overrides, &defaults);
        let out = describe_topic(&config, ALL, |_| true);
        let find = |n: &str| out.iter().find(|e| e.name.as_str() == n).unwrap();
        let segment = find("segment.bytes");
        assert_eq!(segment.config_source, 1);
        assert_eq!(segment.config_type, 3);
        assert!(segment.documentation.is_some());
        let names: Vec<_> = segment.synonyms.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["segment.bytes", "log.segment.bytes"]);
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("5000"));
        assert_eq!(retention.config_source, 4);
        let sources: Vec<_> = retention.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(sources, [4, 5]);
        let v1 = describe_topic(
            &config,
            DescribeOptions {
                version: 1,
                synonyms: false,
                documentation: false,
            },
            |n| n == "retention.ms",
        );
        assert_eq!(v1.len(), 1);
        assert!(v1[0].synonyms.is_empty(), "v1 without include_synonyms");
    }
}
