//! `max_request_size` against a real broker: a producer holding batches of
//! many partitions at once sends them in several Produce requests of at
//! most the cap, and every record arrives once, in its partition's order;
//! a record too large for a request fails at `send`.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Offset, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use support::TestBroker;

const PARTITIONS: i32 = 48;
const ROUNDS: usize = 4;
const RECORDS_PER_PARTITION_PER_ROUND: usize = 6;
const VALUE_BYTES: usize = 500;
const CAP: usize = 16 * 1024;

fn value(partition: i32, n: usize) -> Vec<u8> {
    let mut v = format!("p{partition:03}-n{n:06}-").into_bytes();
    v.resize(VALUE_BYTES, b'.');
    v
}

/// A broker with `topic` of `partitions`, and a producer with a cap of
/// [`CAP`], batches of `batch_size`, and a linger far longer than the
/// test: its batches are sealed only when full or flushed.
async fn start(
    topic: &str,
    partitions: i32,
    batch_size: usize,
) -> anyhow::Result<(TestBroker, Producer)> {
    let broker = TestBroker::start()?;
    let client = ClientConfig::new(&broker.bootstrap());
    Admin::connect(client.clone())
        .await?
        .create_topic(&NewTopic::new(topic, partitions))
        .await?;
    let producer = Producer::connect(
        ProducerConfig::new(client)
            .with_linger(Duration::from_secs(60))
            .with_batch_size(batch_size)
            .with_max_request_size(CAP),
    )
    .await?;
    Ok((broker, producer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_many_partitions_go_in_requests_of_at_most_the_cap_in_order() {
    // Each flush drains one ~3.3 KiB batch of every partition at once
    // (~160 KiB for the one leader). Without the cap that is one request
    // per round; with it, at least ten. Batches (8 KiB at most, header
    // included) are below the cap, so every request is within it.
    let (broker, producer) = start("split", PARTITIONS, 8 * 1024).await.unwrap();
    let produce_requests = || broker.counter_sum("sluice_requests_total", "api=\"Produce\"");
    let before = produce_requests().unwrap();
    let topic: Arc<str> = Arc::from("split");
    let mut handles = Vec::new();
    for round in 0..ROUNDS {
        for p in 0..PARTITIONS {
            for i in 0..RECORDS_PER_PARTITION_PER_ROUND {
                let n = round * RECORDS_PER_PARTITION_PER_ROUND + i;
                let record = ProducerRecord::new(Arc::clone(&topic), value(p, n)).with_partition(p);
                handles.push((p, n, producer.send(record).await.unwrap()));
            }
        }
        producer.flush().await.unwrap();
    }
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, n, handle) in handles {
        let (partition, offset) = handle.await.unwrap();
        assert_eq!(partition, p);
        offsets.entry(p).or_default().push(offset);
        assert_eq!(offsets[&p].len(), n + 1);
    }
    for (p, o) in &offsets {
        let expected: Vec<i64> = (0..o.len() as i64).collect();
        assert_eq!(
            o, &expected,
            "partition {p}: one offset per record, in send order"
        );
    }

    let requests = produce_requests().unwrap() - before;
    let bytes_in = broker
        .counter_sum("sluice_topic_bytes_in_total", "topic=\"split\"")
        .unwrap();
    let per_round = bytes_in / ROUNDS as u64;
    assert!(
        per_round > 8 * CAP as u64,
        "each round's batches ({per_round} bytes) need many requests"
    );
    // Every request holds at most CAP bytes of batches, so there are at
    // least bytes_in / CAP of them (one per round without the cap).
    assert!(
        requests >= bytes_in.div_ceil(CAP as u64),
        "{requests} Produce requests for {bytes_in} bytes of batches under a cap of {CAP}"
    );
    assert!(
        requests <= 4 * bytes_in.div_ceil(CAP as u64),
        "{requests} Produce requests for {bytes_in} bytes: packed far below the cap"
    );

    // Read everything back: each partition's records once, in send order.
    let client = ClientConfig::new(&broker.bootstrap());
    let mut consumer = Consumer::connect(ConsumerConfig::new(client))
        .await
        .unwrap();
    let all: Vec<i32> = (0..PARTITIONS).collect();
    consumer.assign("split", &all).await.unwrap();
    for p in 0..PARTITIONS {
        consumer.seek("split", p, Offset::Beginning).await.unwrap();
    }
    let total = PARTITIONS as usize * ROUNDS * RECORDS_PER_PARTITION_PER_ROUND;
    let mut read: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < total && Instant::now() < deadline {
        for r in consumer.poll().await.unwrap() {
            let v = r.value.map(|v| v.to_vec()).unwrap_or_default();
            read.entry(r.partition).or_default().push((r.offset, v));
            count += 1;
        }
    }
    assert_eq!(count, total, "every record read back");
    for p in 0..PARTITIONS {
        let got = &read[&p];
        let expected: Vec<(i64, Vec<u8>)> = (0..ROUNDS * RECORDS_PER_PARTITION_PER_ROUND)
            .map(|n| (n as i64, value(p, n)))
            .collect();
        assert!(
            got == &expected,
            "partition {p}: records out of order or lost"
        );
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_the_cap_fails_at_send_and_a_larger_batch_goes_alone() {
    // batch_size above the cap: a batch of several records that each fit
    // a request is larger than the cap, and must still be sent (alone).
    let (broker, producer) = start("large", 4, 64 * 1024).await.unwrap();
    let too_large = match producer
        .send(ProducerRecord::new("large", vec![b'x'; CAP]).with_partition(0))
        .await
    {
        Ok(_) => panic!("a record of the cap's size (plus framing) is accepted by send"),
        Err(e) => e,
    };
    assert_eq!(
        too_large.code(),
        Some(ErrorCode::of(ResponseError::MessageTooLarge)),
        "{too_large}"
    );
    assert!(!too_large.is_retriable());
    assert!(
        too_large.to_string().contains("max_request_size"),
        "{too_large}"
    );

    // Partition 0: five 6 KiB records in one batch (~30 KiB > the cap);
    // partitions 1..3: one small record each, drained with it.
    let big = vec![b'b'; 6 * 1024];
    let mut handles = Vec::new();
    for _ in 0..5 {
        let record = ProducerRecord::new("large", big.clone()).with_partition(0);
        handles.push(producer.send(record).await.unwrap());
    }
    for p in 1..4 {
        let record = ProducerRecord::new("large", b"small".to_vec()).with_partition(p);
        handles.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    let read = support::read_all(&broker.bootstrap(), "large", 0, 5)
        .await
        .unwrap();
    assert_eq!(read.len(), 5, "the oversized batch was written once");
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, (o, v))| *o == i as i64 && v == &big)
    );
    producer.close().await.unwrap();
}
