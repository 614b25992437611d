//! No stored value stops a start: a metadata log written by an older
//! version, holding topic configs today's settings table refuses, is
//! replayed by the real `sluice` binary. The broker starts, warns once per
//! bad key (naming topic and key), serves the topic with the defaults of
//! those keys, and keeps the valid overrides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;

use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::protocol::StrBytes;
use sluice_broker::metadata::{MetadataLog, MetadataRecord};
use support::{TestBroker, produce_request};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

#[test]
fn invalid_stored_topic_configs_fall_back_to_defaults_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What an older version could have written: values outside today's
        // bounds and a key that is no longer served, beside a valid one.
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert!(records.is_empty());
        log.append(&MetadataRecord::TopicCreated {
            name: "legacy".into(),
            topic_id: uuid::Uuid::from_u128(42),
            partitions: 2,
            configs: BTreeMap::from([
                ("segment.bytes".to_string(), "1".to_string()),
                ("segment.ms".to_string(), "0".to_string()),
                ("retired.key".to_string(), "x".to_string()),
                ("retention.ms".to_string(), "3600000".to_string()),
            ]),
            // No assignments: a log from before replica assignment
            // existed, replayed onto this node (MetadataImage::upgrade).
            assignments: Vec::new(),
        })
        .unwrap();
        log.append(&MetadataRecord::TopicConfigChanged {
            name: "legacy".into(),
            changes: BTreeMap::from([("retention.bytes".to_string(), Some("-9".to_string()))]),
        })
        .unwrap();
    }

    let broker =
        TestBroker::start(dir.path()).expect("the broker starts despite invalid stored configs");
    let log = broker.startup_log().join("\n");
    for key in [
        "segment.bytes",
        "segment.ms",
        "retired.key",
        "retention.bytes",
    ] {
        let warned = broker
            .startup_log()
            .iter()
            .filter(|l| l.contains("WARN") && l.contains("legacy") && l.contains(key))
            .count();
        assert_eq!(warned, 1, "one warning naming legacy and {key}:\n{log}");
    }

    let mut client = broker.client().unwrap();
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("legacy")),
    ]);
    let response = client.call(1, &request).unwrap();
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let value = |key: &str| {
        let e = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .unwrap_or_else(|| panic!("{key} described"));
        (e.value.as_ref().map(|v| v.to_string()), e.config_source)
    };
    assert_eq!(value("segment.bytes"), (Some("1073741824".into()), 5));
    assert_eq!(value("segment.ms"), (Some("604800000".into()), 5));
    assert_eq!(value("retention.bytes"), (Some("-1".into()), 5));
    assert_eq!(
        value("retention.ms"),
        (Some("3600000".into()), 1),
        "the valid override is kept"
    );

    // Both partitions serve.
    for partition in 0..2 {
        let request = produce_request("legacy", partition, 3, -1).unwrap();
        let response = client.call(8, &request).unwrap();
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 0,
            "produce to legacy-{partition}: {:?}",
            p.error_message
        );
        assert_eq!(p.base_offset, 0);
    }
    let status = broker.stop().unwrap();
    assert!(status.success(), "clean stop: {status:?}");

    // And again: the next start is as good.
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut client = broker.client().unwrap();
    let response = client.call(1, &request).unwrap();
    assert_eq!(response.results[0].error_code, 0);
    broker.stop().unwrap();
}

/// A broker-wide topic default outside its topic key's bounds fails the
/// start with a message naming the broker setting, instead of failing
/// every topic later.
#[test]
fn an_out_of_range_broker_default_fails_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "\"log.segment.bytes\" = 10\n").unwrap();
    let data = dir.path().join("data");
    let err = TestBroker::start_with(&data, &["--config", config.to_str().unwrap()])
        .err()
        .expect("the broker must refuse log.segment.bytes = 10");
    let text = format!("{err:#}");
    assert!(
        text.contains("log.segment.bytes") && text.contains("1024"),
        "the error names the setting and its bound: {text}"
    );
}
