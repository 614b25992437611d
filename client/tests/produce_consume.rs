//! Producer and consumer against a real broker: every codec round-trips a
//! large number of records in order; keys land where murmur2 says;
//! seeks by offset, beginning, end and timestamp.
//!
//! `SLUICE_TEST_RECORDS` sets the records per codec (default 1 000 000,
//! the figure; a debug build takes a while).

mod support;

use std::time::{Duration, Instant};

use sluice_client::producer::partitioner::partition_for_key;
use sluice_client::{
    Acks, Admin, ClientConfig, Compression, Consumer, ConsumerConfig, NewTopic, Offset, Producer,
    ProducerConfig, ProducerRecord,
};
use support::TestBroker;

fn config(broker: &TestBroker) -> ClientConfig {
    ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(30))
}

fn records_per_codec() -> usize {
    std::env::var("SLUICE_TEST_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_all_records_in_order() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    let n = records_per_codec();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{codec:?}").to_lowercase();
        admin.create_topic(&NewTopic::new(&topic, 1)).await.unwrap();
        let producer = Producer::connect(
            ProducerConfig::new(config(&broker))
                .with_compression(codec)
                .with_batch_size(256 * 1024),
        )
        .await
        .unwrap();
        let started = Instant::now();
        let mut last = None;
        for i in 0..n {
            let d = producer
                .send(
                    ProducerRecord::new(topic.as_str(), format!("value-{i}"))
                        .with_key(format!("k{i}")),
                )
                .await
                .unwrap();
            if i + 1 == n {
                last = Some(d);
            }
        }
        producer.flush().await.unwrap();
        let (partition, offset) = last.unwrap().await.unwrap();
        assert_eq!((partition, offset), (0, n as i64 - 1), "{codec:?}");
        let produced = started.elapsed();

        let mut consumer = Consumer::connect(ConsumerConfig::new(config(&broker)))
            .await
            .unwrap();
        consumer.assign(&topic, &[0]).await.unwrap();
        consumer.seek(&topic, 0, Offset::Beginning).await.unwrap();
        let started = Instant::now();
        let mut next = 0usize;
        while next < n {
            let records = consumer.poll().await.unwrap();
            for r in records {
                assert_eq!(r.offset, next as i64, "{codec:?}");
                assert_eq!(
                    r.value.as_deref(),
                    Some(format!("value-{next}").as_bytes()),
                    "{codec:?}"
                );
                assert_eq!(
                    r.key.as_deref(),
                    Some(format!("k{next}").as_bytes()),
                    "{codec:?}"
                );
                next += 1;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{codec:?}: stuck at {next}"
            );
        }
        eprintln!(
            "{codec:?}: {n} records produced in {produced:?}, consumed in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn keyed_records_land_on_the_murmur2_partition_and_seeks_work() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    admin.create_topic(&NewTopic::new("keys", 6)).await.unwrap();
    let producer = Producer::connect(ProducerConfig::new(config(&broker)).with_acks(Acks::Leader))
        .await
        .unwrap();
    let mut futures = Vec::new();
    for i in 0..200 {
        let key = format!("user-{i}");
        let d = producer
            .send(
                ProducerRecord::new("keys", format!("v{i}"))
                    .with_key(key.clone())
                    .with_header("h", "x")
                    .with_timestamp(1_000_000 + i),
            )
            .await
            .unwrap();
        futures.push((key, d));
    }
    for (key, d) in futures {
        let (partition, _) = d.await.unwrap();
        assert_eq!(partition, partition_for_key(key.as_bytes(), 6), "{key}");
    }

    let mut consumer = Consumer::connect(ConsumerConfig::new(config(&broker)))
        .await
        .unwrap();
    assert_eq!(consumer.assign_all("keys").await.unwrap(), 6);
    consumer.seek_all(Offset::Beginning).await.unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 200 && started.elapsed() < Duration::from_secs(30) {
        seen.extend(consumer.poll().await.unwrap());
    }
    assert_eq!(seen.len(), 200);
    for r in &seen {
        let key = r.key.as_deref().unwrap();
        assert_eq!(r.partition, partition_for_key(key, 6));
        assert_eq!(
            r.headers,
            vec![("h".to_owned(), Some(bytes::Bytes::from_static(b"x")))]
        );
    }

    // Timestamp seek: the first record at or after ts 1_000_150 on the
    // partition of user-150.
    let p = partition_for_key(b"user-150", 6);
    consumer.unassign();
    consumer.assign("keys", &[p]).await.unwrap();
    consumer
        .seek("keys", p, Offset::Timestamp(1_000_150))
        .await
        .unwrap();
    let first = loop {
        if let Some(r) = consumer.poll().await.unwrap().into_iter().next() {
            break r;
        }
    };
    assert!(first.timestamp >= 1_000_150, "{first:?}");
    assert_eq!(first.key.as_deref(), Some(&b"user-150"[..]));

    // End: nothing until something new is produced.
    consumer.seek("keys", p, Offset::End).await.unwrap();
    let end = consumer.position("keys", p).unwrap();
    producer
        .send(ProducerRecord::new("keys", "late").with_partition(p))
        .await
        .unwrap()
        .await
        .unwrap();
    let late = loop {
        if let Some(r) = consumer.poll().await.unwrap().into_iter().next() {
            break r;
        }
    };
    assert_eq!(late.offset, end);
    assert_eq!(late.value.as_deref(), Some(&b"late"[..]));
}

#[tokio::test]
async fn acks_zero_and_unknown_topic() {
    let broker = TestBroker::start().unwrap();
    let producer = Producer::connect(ProducerConfig::new(config(&broker)).with_acks(Acks::None))
        .await
        .unwrap();
    let d = producer
        .send(ProducerRecord::new("auto", "x"))
        .await
        .unwrap();
    assert_eq!(d.await.unwrap().1, -1, "acks=0 has no offset");
    producer.flush().await.unwrap();

    let mut consumer = Consumer::connect(ConsumerConfig::new(config(&broker)))
        .await
        .unwrap();
    let err = consumer.assign("missing-topic", &[0]).await.unwrap_err();
    assert!(
        err.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_reconnect_after_a_broker_restart() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("restart", 2))
        .await
        .unwrap();
    let producer = Producer::connect(ProducerConfig::new(config(&broker)))
        .await
        .unwrap();
    for i in 0..100 {
        producer
            .send(ProducerRecord::new("restart", format!("a{i}")).with_key(format!("k{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let mut consumer = Consumer::connect(ConsumerConfig::new(config(&broker)))
        .await
        .unwrap();
    consumer.assign_all("restart").await.unwrap();
    consumer.seek_all(Offset::Beginning).await.unwrap();

    // Crash and restart the broker under both clients.
    let broker = broker.restart().unwrap();
    let started = Instant::now();
    let mut futures = Vec::new();
    for i in 0..100 {
        futures.push(
            producer
                .send(ProducerRecord::new("restart", format!("b{i}")).with_key(format!("k{i}")))
                .await
                .unwrap(),
        );
    }
    for f in futures {
        f.await.unwrap();
    }
    let mut seen = 0;
    while seen < 200 {
        seen += consumer.poll().await.unwrap().len();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{seen} of 200 after restart"
        );
    }
    assert_eq!(seen, 200);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_while_the_buffer_is_full() {
    let broker = TestBroker::start().unwrap();
    let admin = Admin::connect(config(&broker)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("pressure", 1))
        .await
        .unwrap();
    let producer = Producer::connect(
        ProducerConfig::new(config(&broker))
            .with_buffer_bytes(4096)
            .with_linger(Duration::ZERO),
    )
    .await
    .unwrap();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    let value = vec![b'x'; 100];
    // Warm up: metadata and the connection are in place before the freeze.
    producer
        .send(ProducerRecord::new("pressure", value.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    // A frozen broker acknowledges nothing: the buffer fills, then `send`
    // must wait instead of queueing without bound.
    signal("-STOP");
    let mut accepted = 0;
    let blocked = loop {
        let send = producer.send(ProducerRecord::new("pressure", value.clone()));
        match tokio::time::timeout(Duration::from_millis(500), send).await {
            Ok(d) => {
                drop(d.unwrap());
                accepted += 1;
                assert!(
                    accepted <= 4096 / 100,
                    "{accepted} records of ~136 B in a 4 KiB buffer"
                );
            }
            Err(_) => break accepted,
        }
    };
    assert!(
        blocked >= 4096 / 136 - 1,
        "only {blocked} accepted before blocking"
    );
    signal("-CONT");
    let d = tokio::time::timeout(
        Duration::from_secs(30),
        producer.send(ProducerRecord::new("pressure", value.clone())),
    )
    .await
    .expect("send still blocked after the broker resumed")
    .unwrap();
    producer.flush().await.unwrap();
    let (_, offset) = d.await.unwrap();
    assert_eq!(
        offset,
        i64::from(blocked) + 1,
        "every record acknowledged once, in order"
    );
}
