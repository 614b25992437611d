//! Every served version of the data-path APIs answers with a response that
//! decodes, against the real `sluice` binary.
//!
//! kafka-protocol refuses to encode a response that sets a field its version
//! lacks; a handler that does so closes the client's connection. Walking
//! every version with a real topic, partition and batch catches that class
//! of bug for all of them at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::api::served_range;
use support::{TestBroker, produce_request};

const TOPIC: &str = "every-version";

fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = served_range(api).unwrap();
    min..=max
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

#[test]
fn every_served_version_of_the_data_path_apis_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let mut client = broker.client().unwrap();

    for v in versions(ApiKey::ApiVersions) {
        let r = client.call(v, &ApiVersionsRequest::default()).unwrap();
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
        assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    }

    let create = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name())
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(5000);
    let created = client.call(7, &create).unwrap();
    assert_eq!(created.topics[0].error_code, 0, "CreateTopics: {created:?}");

    for v in versions(ApiKey::Metadata) {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name())),
        ]));
        let r = client.call(v, &request).unwrap();
        assert_eq!(r.topics.len(), 1, "Metadata v{v}");
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(r.topics[0].partitions.len(), 1, "Metadata v{v}");
    }

    for v in versions(ApiKey::InitProducerId) {
        let r = client
            .call(
                v,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            )
            .unwrap();
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert!(r.producer_id.0 >= 0, "InitProducerId v{v}");
    }

    let mut produced = 0i64;
    for v in versions(ApiKey::Produce) {
        let request = produce_request(TOPIC, 0, 3, -1).unwrap();
        let r = client.call(v, &request).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{v}: {p:?}");
        assert_eq!(p.base_offset, produced, "Produce v{v}");
        produced += 3;
    }

    for v in versions(ApiKey::Fetch) {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let r = client.call(v, &request).unwrap();
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, produced, "Fetch v{v}");
        let records = p.records.as_ref().expect("records");
        assert!(
            records.len() > 61,
            "Fetch v{v} returned {} bytes",
            records.len()
        );
    }

    for v in versions(ApiKey::ListOffsets) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let r = client.call(v, &request).unwrap();
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, produced), "ListOffsets v{v}");
    }
}
