//! The admin APIs against the real `sluice` binary over TCP: DeleteTopics,
//! CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
//! DeleteRecords, DescribeCluster, OffsetForLeaderEpoch and the Produce
//! v0–2 refusal — each success path and its main errors — and a restart
//! proving the metadata changes and the moved log start offset persist.

// Test harness: a failed unwrap or an out-of-range index is a failed test
// with its location, which is what the helpers below want (clippy exempts
// only #[test] functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, TopicName, alter_configs_request,
    incremental_alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;
use support::{Client, TestBroker, produce_request};

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

// ---- small request helpers ------------------------------------------------

fn create_topic(client: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        );
    let response = client
        .call(
            5,
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(5000),
        )
        .unwrap();
    assert_eq!(
        response.topics[0].error_code, NONE,
        "create {name}: {:?}",
        response.topics[0].error_message
    );
}

/// Produces one batch of `count` records; returns its base offset.
fn produce(client: &mut Client, topic: &str, partition: i32, count: usize) -> i64 {
    let request = produce_request(topic, partition, count, 1).unwrap();
    let response = client.call(8, &request).unwrap();
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        p.error_code, NONE,
        "produce to {topic}-{partition}: {:?}",
        p.error_message
    );
    p.base_offset
}

/// Partition count of `topic`, or the error code Metadata gives.
fn partition_count(client: &mut Client, topic: &str) -> Result<usize, i16> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.call(9, &request).unwrap();
    let t = &response.topics[0];
    if t.error_code == NONE {
        Ok(t.partitions.len())
    } else {
        Err(t.error_code)
    }
}

/// ListOffsets: the earliest (-2) or latest (-1) offset.
fn list_offset(client: &mut Client, topic: &str, partition: i32, timestamp: i64) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = client.call(4, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "list offsets {topic}-{partition}");
    p.offset
}

fn delete_topics(client: &mut Client, version: i16, names: &[&str]) -> Vec<(i16, Option<String>)> {
    let request = DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        .with_timeout_ms(5000);
    let response = client.call(version, &request).unwrap();
    assert_eq!(response.responses.len(), names.len());
    response
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

fn describe(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()));
    let mut request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(true);
    if version >= 3 {
        request = request.with_include_documentation(true);
    }
    let mut response = client.call(version, &request).unwrap();
    assert_eq!(response.results.len(), 1);
    response.results.remove(0)
}

fn entries(result: &DescribeConfigsResult) -> BTreeMap<String, DescribeConfigsResourceResult> {
    result
        .configs
        .iter()
        .map(|c| (c.name.to_string(), c.clone()))
        .collect()
}

/// `(value, config_source)` of `key` on `topic`.
fn topic_config(client: &mut Client, topic: &str, key: &str) -> (String, i8) {
    let result = describe(client, 4, TOPIC, topic, Some(&[key]));
    assert_eq!(result.error_code, NONE, "{:?}", result.error_message);
    let entry = entries(&result)
        .remove(key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (
        entry.value.map(|v| v.to_string()).unwrap_or_default(),
        entry.config_source,
    )
}

fn alter(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let resource = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    alter_configs_request::AlterableConfig::default()
                        .with_name(s(k))
                        .with_value(v.map(s))
                })
                .collect(),
        );
    let request = AlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(validate_only);
    let response = client.call(version, &request).unwrap();
    let r = &response.responses[0];
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name)
    );
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn incremental(
    client: &mut Client,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        );
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(validate_only);
    let response = client.call(1, &request).unwrap();
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn create_partitions(
    client: &mut Client,
    version: i16,
    topic: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let topic_request = CreatePartitionsTopic::default()
        .with_name(topic_name(topic))
        .with_count(count)
        .with_assignments(assignments.map(|list| {
            list.into_iter()
                .map(|ids| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect()
        }));
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![topic_request])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    let response = client.call(version, &request).unwrap();
    let r = &response.results[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// DeleteRecords for one partition: `(error_code, low_watermark)`.
fn delete_records(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ]);
    let response = client.call(version, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    (p.error_code, p.low_watermark)
}

/// OffsetForLeaderEpoch for one partition: `(error, epoch, end offset)`.
fn epoch_end(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
        OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![
                OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current_leader_epoch)
                    .with_leader_epoch(leader_epoch),
            ]),
    ]);
    if version >= 3 {
        request = request.with_replica_id(BrokerId(-1));
    }
    let response = client.call(version, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.partition, partition);
    (p.error_code, p.leader_epoch, p.end_offset)
}

// ---- tests --------------------------------------------------------------

#[test]
fn delete_topics_removes_logs_and_refuses_unknown_internal_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "doomed", 2, &[]);
    produce(&mut c, "doomed", 0, 3);
    assert!(
        dir.path().join("doomed-0").exists(),
        "the partition directory is where Kafka puts it"
    );

    assert_eq!(delete_topics(&mut c, 4, &["doomed"]), vec![(NONE, None)]);
    assert_eq!(
        partition_count(&mut c, "doomed"),
        Err(UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert!(!dir.path().join("doomed-0").exists(), "logs deleted");
    assert!(!dir.path().join("doomed-1").exists(), "logs deleted");

    // Gone now: unknown, on every served version.
    for version in 1..=5 {
        let answer = delete_topics(&mut c, version, &["doomed"]);
        assert_eq!(answer[0].0, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        // error_message exists only from v5.
        assert_eq!(answer[0].1.is_some(), version >= 5, "v{version}");
    }
    let internal = delete_topics(&mut c, 5, &["__consumer_offsets"]);
    assert_eq!(internal[0].0, INVALID_TOPIC_EXCEPTION);
    assert!(
        internal[0].1.as_deref().unwrap_or("").contains("internal"),
        "{internal:?}"
    );

    create_topic(&mut c, "twice", 1, &[]);
    let dup = delete_topics(&mut c, 5, &["twice", "twice"]);
    assert_eq!(
        dup.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![INVALID_REQUEST, INVALID_REQUEST]
    );
    assert_eq!(
        partition_count(&mut c, "twice"),
        Ok(1),
        "a refused request deletes nothing"
    );

    // The name can be reused, and the new topic starts empty.
    create_topic(&mut c, "doomed", 1, &[]);
    assert_eq!(list_offset(&mut c, "doomed", 0, -1), 0);
}

#[test]
fn create_partitions_grows_topics_and_refuses_bad_counts_and_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "grow", 1, &[]);

    assert_eq!(create_partitions(&mut c, 0, "grow", 3, None, true).0, NONE);
    assert_eq!(
        partition_count(&mut c, "grow"),
        Ok(1),
        "validate_only changes nothing"
    );

    assert_eq!(
        create_partitions(&mut c, 3, "grow", 3, None, false),
        (NONE, None)
    );
    assert_eq!(partition_count(&mut c, "grow"), Ok(3));
    assert_eq!(
        produce(&mut c, "grow", 2, 2),
        0,
        "the new partition takes writes"
    );

    for (count, what) in [(3, "same count"), (2, "fewer")] {
        let (code, message) = create_partitions(&mut c, 2, "grow", count, None, false);
        assert_eq!(code, INVALID_PARTITIONS, "{what}");
        assert!(message.is_some(), "{what}");
    }
    assert_eq!(
        create_partitions(&mut c, 1, "nope", 4, None, false).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        create_partitions(&mut c, 3, "grow", 4, Some(vec![vec![2]]), false).0,
        INVALID_REPLICA_ASSIGNMENT,
        "another broker"
    );
    assert_eq!(
        create_partitions(&mut c, 3, "grow", 5, Some(vec![vec![1]]), false).0,
        INVALID_REPLICA_ASSIGNMENT,
        "too few assignments"
    );
    assert_eq!(
        partition_count(&mut c, "grow"),
        Ok(3),
        "refusals change nothing"
    );
    assert_eq!(
        create_partitions(&mut c, 3, "grow", 4, Some(vec![vec![1]]), false).0,
        NONE
    );
    assert_eq!(partition_count(&mut c, "grow"), Ok(4));
    assert_eq!(
        create_partitions(&mut c, 3, "__consumer_offsets", 60, None, false).0,
        INVALID_TOPIC_EXCEPTION
    );
}

#[test]
fn describe_configs_shows_topic_overrides_defaults_and_broker_settings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "cfg", 1, &[("retention.ms", "60000")]);

    for version in 1..=4 {
        let result = describe(&mut c, version, TOPIC, "cfg", None);
        assert_eq!(
            result.error_code, NONE,
            "v{version}: {:?}",
            result.error_message
        );
        let all = entries(&result);
        assert!(
            all.len() >= 10,
            "v{version}: every served key, got {:?}",
            all.keys()
        );
        let retention = &all["retention.ms"];
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC);
        assert!(!retention.read_only);
        let synonyms: Vec<_> = retention
            .synonyms
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.value.as_ref().map(|v| v.to_string()),
                    s.source,
                )
            })
            .collect();
        assert_eq!(
            synonyms,
            vec![
                (
                    "retention.ms".into(),
                    Some("60000".into()),
                    SOURCE_DYNAMIC_TOPIC
                ),
                (
                    "log.retention.ms".into(),
                    Some("604800000".into()),
                    SOURCE_DEFAULT
                ),
            ],
            "v{version}"
        );
        let cleanup = &all["cleanup.policy"];
        assert_eq!(cleanup.value.as_deref(), Some("delete"));
        assert_eq!(cleanup.config_source, SOURCE_DEFAULT);
        if version >= 3 {
            assert_eq!(cleanup.config_type, 7, "LIST");
            assert!(cleanup.documentation.is_some());
        }
    }

    let filtered = describe(
        &mut c,
        4,
        TOPIC,
        "cfg",
        Some(&["segment.bytes", "no.such.key"]),
    );
    assert_eq!(
        entries(&filtered).keys().collect::<Vec<_>>(),
        vec!["segment.bytes"]
    );

    for name in ["1", ""] {
        let result = describe(&mut c, 4, BROKER, name, None);
        assert_eq!(
            result.error_code, NONE,
            "broker {name:?}: {:?}",
            result.error_message
        );
        let all = entries(&result);
        let partitions = &all["num.partitions"];
        assert_eq!(partitions.value.as_deref(), Some("1"));
        assert!(partitions.read_only);
        assert_eq!(
            all["auto.create.topics.enable"].value.as_deref(),
            Some("true")
        );
        assert!(all.contains_key("message.max.bytes") && all.contains_key("log.segment.bytes"));
        // Port 0 asks for any free port: the answer names the one bound,
        // the address clients can actually use.
        assert_eq!(
            all["listeners"].value.as_deref(),
            Some(format!("PLAINTEXT://127.0.0.1:{}", broker.port).as_str())
        );
        assert_eq!(
            all["listeners"].config_source, 4,
            "STATIC_BROKER_CONFIG: set on the command line"
        );
    }

    assert_eq!(
        describe(&mut c, 4, BROKER, "7", None).error_code,
        INVALID_REQUEST
    );
    assert_eq!(
        describe(&mut c, 2, TOPIC, "absent", None).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let logger = describe(&mut c, 4, 8, "1", None);
    assert_eq!(logger.error_code, INVALID_REQUEST);
    assert!(logger.configs.is_empty());
}

#[test]
fn alter_configs_replaces_the_whole_override_set() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(
        &mut c,
        "alt",
        1,
        &[("retention.ms", "1000"), ("segment.ms", "5000")],
    );

    assert_eq!(
        alter(
            &mut c,
            0,
            TOPIC,
            "alt",
            &[("retention.ms", Some("2000"))],
            false
        ),
        (NONE, None)
    );
    assert_eq!(
        topic_config(&mut c, "alt", "retention.ms"),
        ("2000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    let (_, source) = topic_config(&mut c, "alt", "segment.ms");
    assert_eq!(
        source, SOURCE_DEFAULT,
        "a key not named goes back to its default"
    );

    let (code, message) = alter(
        &mut c,
        1,
        TOPIC,
        "alt",
        &[("retention.ms", Some("soon"))],
        true,
    );
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.unwrap_or_default().contains("retention.ms"));
    assert_eq!(
        alter(
            &mut c,
            2,
            TOPIC,
            "alt",
            &[("segment.bytes", Some("10"))],
            false
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        alter(
            &mut c,
            2,
            TOPIC,
            "alt",
            &[("no.such.key", Some("1"))],
            false
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        topic_config(&mut c, "alt", "retention.ms").0,
        "2000",
        "refusals change nothing"
    );

    assert_eq!(
        alter(&mut c, 2, TOPIC, "alt", &[("flush.ms", Some("100"))], true).0,
        NONE
    );
    assert_eq!(
        topic_config(&mut c, "alt", "flush.ms").1,
        SOURCE_DEFAULT,
        "validate_only changes nothing"
    );

    assert_eq!(
        alter(&mut c, 2, TOPIC, "absent", &[], false).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let (code, message) = alter(
        &mut c,
        2,
        BROKER,
        "1",
        &[("num.partitions", Some("3"))],
        false,
    );
    assert_eq!(code, INVALID_REQUEST);
    assert!(message.unwrap_or_default().contains("static"));

    // An empty set removes every override.
    assert_eq!(alter(&mut c, 2, TOPIC, "alt", &[], false).0, NONE);
    assert_eq!(
        topic_config(&mut c, "alt", "retention.ms"),
        ("604800000".into(), SOURCE_DEFAULT)
    );
}

#[test]
fn incremental_alter_configs_changes_only_the_named_keys() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "inc", 1, &[("retention.ms", "1000")]);

    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("segment.ms", SET, Some("7000"))],
            false
        ),
        (NONE, None)
    );
    assert_eq!(
        topic_config(&mut c, "inc", "segment.ms"),
        ("7000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        topic_config(&mut c, "inc", "retention.ms"),
        ("1000".into(), SOURCE_DYNAMIC_TOPIC),
        "untouched"
    );

    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("retention.ms", DELETE, None)],
            false
        )
        .0,
        NONE
    );
    assert_eq!(
        topic_config(&mut c, "inc", "retention.ms").1,
        SOURCE_DEFAULT
    );

    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("cleanup.policy", APPEND, Some("delete"))],
            false
        )
        .0,
        NONE
    );
    assert_eq!(topic_config(&mut c, "inc", "cleanup.policy").0, "delete");
    let (code, message) = incremental(
        &mut c,
        TOPIC,
        "inc",
        &[("cleanup.policy", APPEND, Some("compact"))],
        false,
    );
    assert_eq!(code, NONE, "compaction is served: {message:?}");
    assert_eq!(
        topic_config(&mut c, "inc", "cleanup.policy").0,
        "delete,compact"
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("retention.ms", APPEND, Some("1"))],
            false
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("retention.ms", 9, Some("1"))],
            false
        )
        .0,
        INVALID_REQUEST
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "inc", &[("retention.ms", SET, None)], false).0,
        INVALID_REQUEST
    );

    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "inc",
            &[("segment.ms", SET, Some("1"))],
            true
        )
        .0,
        NONE
    );
    assert_eq!(
        topic_config(&mut c, "inc", "segment.ms").0,
        "7000",
        "validate_only changes nothing"
    );

    assert_eq!(
        incremental(&mut c, TOPIC, "absent", &[], false).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        incremental(
            &mut c,
            BROKER,
            "",
            &[("num.partitions", SET, Some("2"))],
            false
        )
        .0,
        INVALID_REQUEST
    );
}

#[test]
fn delete_records_advances_the_log_start_up_to_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "dr", 1, &[]);
    for _ in 0..3 {
        produce(&mut c, "dr", 0, 5);
    }
    assert_eq!(list_offset(&mut c, "dr", 0, -1), 15);

    assert_eq!(delete_records(&mut c, 2, "dr", 0, 7), (NONE, 7));
    assert_eq!(
        list_offset(&mut c, "dr", 0, -2),
        7,
        "earliest follows the log start"
    );
    assert_eq!(
        delete_records(&mut c, 0, "dr", 0, 3),
        (NONE, 7),
        "below the log start: no-op"
    );
    assert_eq!(
        delete_records(&mut c, 1, "dr", 0, 16).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_records(&mut c, 1, "dr", 0, -5).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_records(&mut c, 2, "dr", 1, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        delete_records(&mut c, 2, "absent", 0, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        delete_records(&mut c, 2, "dr", 0, -1),
        (NONE, 15),
        "-1 means the high watermark"
    );
    assert_eq!(list_offset(&mut c, "dr", 0, -2), 15);
    assert_eq!(
        produce(&mut c, "dr", 0, 1),
        15,
        "appends go on after the deleted range"
    );
}

#[test]
fn describe_cluster_names_this_node_as_broker_and_controller() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    for version in 0..=1 {
        let response = c
            .call(
                version,
                &DescribeClusterRequest::default().with_endpoint_type(1),
            )
            .unwrap();
        assert_eq!(response.error_code, NONE, "v{version}");
        assert_eq!(response.controller_id, BrokerId(1));
        assert_eq!(response.cluster_id.len(), 32, "a uuid in simple form");
        assert_eq!(response.brokers.len(), 1);
        let b = &response.brokers[0];
        assert_eq!(
            (b.broker_id, b.host.as_str(), b.port),
            (BrokerId(1), "127.0.0.1", i32::from(broker.port))
        );
        if version >= 1 {
            assert_eq!(response.endpoint_type, 1);
        }
    }
    let controllers = c
        .call(1, &DescribeClusterRequest::default().with_endpoint_type(2))
        .unwrap();
    assert_eq!(controllers.error_code, MISMATCHED_ENDPOINT_TYPE);
    assert!(controllers.brokers.is_empty());
}

#[test]
fn offset_for_leader_epoch_answers_epoch_zero_with_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "ofle", 1, &[]);
    produce(&mut c, "ofle", 0, 4);
    for version in 2..=4 {
        assert_eq!(
            epoch_end(&mut c, version, "ofle", 0, -1, 0),
            (NONE, 0, 4),
            "v{version}"
        );
        assert_eq!(
            epoch_end(&mut c, version, "ofle", 0, 0, 0),
            (NONE, 0, 4),
            "v{version}"
        );
    }
    assert_eq!(
        epoch_end(&mut c, 4, "ofle", 0, 1, 0).0,
        UNKNOWN_LEADER_EPOCH,
        "client is ahead"
    );
    assert_eq!(
        epoch_end(&mut c, 4, "ofle", 0, -1, 5),
        (NONE, -1, -1),
        "unknown epoch: undefined, as Kafka"
    );
    assert_eq!(
        epoch_end(&mut c, 4, "ofle", 3, -1, 0),
        (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
    );
    assert_eq!(
        epoch_end(&mut c, 4, "absent", 0, -1, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn legacy_produce_gets_unsupported_version_and_the_connection_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    // acks, timeout, [topic "old", [partition 0 with 4 opaque bytes, partition 1 null]]
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(b"old");
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&4i32.to_be_bytes());
    body.extend_from_slice(b"abcd");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    for version in 0..=2i16 {
        let response = c.call_raw(ApiKey::Produce, version, &body).unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(b"old");
        expected.extend_from_slice(&2i32.to_be_bytes());
        for index in [0i32, 1] {
            expected.extend_from_slice(&index.to_be_bytes());
            expected.extend_from_slice(&UNSUPPORTED_VERSION.to_be_bytes());
            expected.extend_from_slice(&(-1i64).to_be_bytes());
            if version >= 2 {
                expected.extend_from_slice(&(-1i64).to_be_bytes());
            }
        }
        if version >= 1 {
            expected.extend_from_slice(&0i32.to_be_bytes());
        }
        assert_eq!(response.as_ref(), expected.as_slice(), "v{version}");
    }
    // Still in step: a normal request on the same connection works.
    let cluster = c.call(0, &DescribeClusterRequest::default()).unwrap();
    assert_eq!(cluster.error_code, NONE);

    // A legacy body that does not decode closes the connection.
    let mut bad = broker.client().unwrap();
    assert!(bad.call_raw(ApiKey::Produce, 1, &[0, 1, 0]).is_err());
    assert!(bad.is_closed_by_peer());
}

#[test]
fn admin_changes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    create_topic(&mut c, "keep", 2, &[("retention.ms", "1000")]);
    create_topic(&mut c, "gone", 1, &[]);
    assert_eq!(create_partitions(&mut c, 3, "keep", 4, None, false).0, NONE);
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "keep",
            &[("segment.ms", SET, Some("9000"))],
            false
        )
        .0,
        NONE
    );
    assert_eq!(delete_topics(&mut c, 5, &["gone"])[0].0, NONE);
    produce(&mut c, "keep", 0, 5);
    assert_eq!(delete_records(&mut c, 2, "keep", 0, 2), (NONE, 2));
    drop(c);
    let status = broker.stop().unwrap();
    assert!(status.success(), "clean shutdown on SIGTERM: {status}");

    let broker = TestBroker::start(dir.path()).unwrap();
    let mut c = broker.client().unwrap();
    assert_eq!(partition_count(&mut c, "keep"), Ok(4));
    assert_eq!(
        partition_count(&mut c, "gone"),
        Err(UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        topic_config(&mut c, "keep", "retention.ms"),
        ("1000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        topic_config(&mut c, "keep", "segment.ms"),
        ("9000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        list_offset(&mut c, "keep", 0, -2),
        2,
        "the log start offset persisted"
    );
    assert_eq!(list_offset(&mut c, "keep", 0, -1), 5);
    assert_eq!(
        produce(&mut c, "keep", 3, 1),
        0,
        "an added partition is open after restart"
    );
}
