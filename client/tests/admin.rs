//! The admin client against a real broker: topics, configs, offsets,
//! cluster metadata, and the error paths (unknown topic, broker down).

mod support;

use std::time::Duration;

use sluice_client::{
    Admin, ClientConfig, ConfigChange, Error, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_testkit::dead_address;
use support::TestBroker;

fn config(broker: &TestBroker) -> ClientConfig {
    ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn topic_lifecycle_configs_and_offsets() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();

    let meta = admin.cluster_metadata().await.unwrap();
    assert_eq!(meta.brokers.len(), 1, "{meta:?}");
    assert!(meta.controller_id >= 0);

    admin
        .create_topic(&NewTopic::new("orders", 3).with_config("retention.ms", "3600000"))
        .await
        .unwrap();
    let err = admin
        .create_topic(&NewTopic::new("orders", 3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TOPIC_ALREADY_EXISTS"), "{err}");

    let topics = admin.list_topics().await.unwrap();
    assert!(
        topics
            .iter()
            .any(|t| t.name == "orders" && t.partition_count() == 3),
        "{topics:?}"
    );

    let described = admin.describe_topic("orders").await.unwrap();
    assert_eq!(described.topic.partitions.len(), 3);
    assert!(described.topic.partitions.iter().all(|p| p.leader >= 0));
    let retention = described
        .configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default);

    admin
        .alter_topic_configs(
            "orders",
            &[ConfigChange::Set("retention.ms".into(), "7200000".into())],
        )
        .await
        .unwrap();
    let configs = admin.describe_topic_configs("orders").await.unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("7200000"));

    // Offsets: 5 records into partition 1 only.
    let producer = Producer::connect(ProducerConfig::new(config(&broker)))
        .await
        .unwrap();
    for i in 0..5 {
        producer
            .send(ProducerRecord::new("orders", format!("v{i}")).with_partition(1))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let latest = admin
        .list_offsets("orders", OffsetSpec::Latest)
        .await
        .unwrap();
    let ends: Vec<i64> = latest.iter().map(|p| p.offset).collect();
    assert_eq!(ends, vec![0, 5, 0]);
    let earliest = admin
        .list_offsets("orders", OffsetSpec::Earliest)
        .await
        .unwrap();
    assert!(earliest.iter().all(|p| p.offset == 0));

    admin.delete_topics(&["orders".into()]).await.unwrap();
    let err = admin.describe_topic("orders").await.unwrap_err();
    assert!(
        err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_topic_is_a_named_kafka_error() {
    let broker = TestBroker::start_with(&[]).unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    let err = admin
        .list_offsets("nope", OffsetSpec::Latest)
        .await
        .unwrap_err();
    match &err {
        Error::Kafka { code, .. } => assert_eq!(code.code(), 3, "{err}"),
        other => panic!("expected a Kafka error, got {other:?}"),
    }
    let err = admin.delete_topics(&["nope".into()]).await.unwrap_err();
    assert!(
        err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
}

#[tokio::test]
async fn broker_down_fails_fast_with_a_clear_error() {
    let addr = dead_address().unwrap();
    let config = ClientConfig::new(&addr).with_connect_timeout(Duration::from_secs(2));
    let err = match Admin::connect(config).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::NoBrokerAvailable { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");
}
