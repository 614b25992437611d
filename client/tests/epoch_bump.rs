//! KIP-360 in the idempotent producer, against a real broker: after a
//! batch fails for good (MESSAGE_TOO_LARGE under the topic's
//! `max.message.bytes`, refused before the broker looks at its sequence),
//! the broker answers the next batches OUT_OF_ORDER_SEQUENCE_NUMBER — their
//! sequences skip the refused batch. The producer bumps its epoch,
//! renumbers what is waiting and sends it again: every other record is
//! delivered once, in send order, at the offset its handle reports.
//!
//! Sluice's broker forgets a producer (expiry, DeleteRecords) by accepting
//! its next batch at any sequence, so a lost sequence on a live producer is
//! the case a real broker produces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use sluice_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use sluice_protocol::error_code::ResponseError;
use support::{TestBroker, read_all};

/// The topic's batch limit; a record of `BIG` bytes never fits.
const MAX_MESSAGE_BYTES: usize = 4096;
const BIG: usize = 8 * 1024;

async fn topic(broker: &TestBroker, name: &str) -> ClientConfig {
    let mut config =
        ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(30));
    config.retry_backoff = Duration::from_millis(20);
    Admin::connect(config.clone())
        .await
        .unwrap()
        .create_topic(
            &NewTopic::new(name, 1).with_config("max.message.bytes", MAX_MESSAGE_BYTES.to_string()),
        )
        .await
        .unwrap();
    config
}

fn is_too_large(e: &sluice_client::Error) -> bool {
    e.code()
        .and_then(sluice_protocol::ErrorCode::error)
        .is_some_and(|c| c == ResponseError::MessageTooLarge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_a_batch_refused_for_good_are_delivered_under_a_new_epoch() {
    let broker = TestBroker::start().unwrap();
    let config = topic(&broker, "bump").await;
    let producer = Producer::connect(ProducerConfig::new(config))
        .await
        .unwrap();
    let topic: Arc<str> = Arc::from("bump");
    let send_small = |from: usize, to: usize| {
        let producer = producer.clone();
        let topic = Arc::clone(&topic);
        async move {
            let mut handles = Vec::new();
            for i in from..to {
                let record = ProducerRecord::new(Arc::clone(&topic), format!("r{i:04}"));
                handles.push(producer.send(record).await.unwrap());
            }
            producer.flush().await.unwrap();
            let mut offsets = Vec::new();
            for (i, h) in (from..to).zip(handles) {
                let (_, offset) = h.await.unwrap_or_else(|e| panic!("record r{i:04}: {e}"));
                offsets.push(offset);
            }
            offsets
        }
    };
    // The broker knows the producer (sequences 0..=9) ...
    assert_eq!(send_small(0, 10).await, (0..10).collect::<Vec<i64>>());
    // ... refuses the next batch for its size, so sequence 10 never lands ...
    let big = producer
        .send(ProducerRecord::new(Arc::clone(&topic), vec![b'x'; BIG]))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let refused = big.await.expect_err("a batch over max.message.bytes");
    assert!(is_too_large(&refused), "refused with {refused}");
    // ... and answers the batch after it OUT_OF_ORDER_SEQUENCE_NUMBER,
    // which the producer answers with an epoch bump: these land.
    assert_eq!(send_small(10, 20).await, (10..20).collect::<Vec<i64>>());
    assert_eq!(send_small(20, 30).await, (20..30).collect::<Vec<i64>>());

    let read = read_all(&broker.bootstrap(), "bump", 0, 30).await.unwrap();
    let values: Vec<String> = read
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let want: Vec<String> = (0..30).map(|i| format!("r{i:04}")).collect();
    assert_eq!(values, want, "every small record once, in order");
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_stream_keeps_its_order_through_several_epoch_bumps() {
    const RECORDS: usize = 6_000;
    // Every BIG_EVERY-th record is too large: its batch is refused while
    // up to four later batches are in flight behind it.
    const BIG_EVERY: usize = 1_000;
    let broker = TestBroker::start().unwrap();
    let config = topic(&broker, "pipelined").await;
    let producer = Producer::connect(
        ProducerConfig::new(config)
            .with_batch_size(1024)
            .with_linger(Duration::ZERO)
            .with_max_in_flight_per_partition(5),
    )
    .await
    .unwrap();
    let topic: Arc<str> = Arc::from("pipelined");
    let value = |i: usize| -> Vec<u8> {
        if i % BIG_EVERY == BIG_EVERY / 2 {
            let mut v = format!("r{i:05}").into_bytes();
            v.resize(BIG, b'x');
            v
        } else {
            format!("r{i:05}").into_bytes()
        }
    };
    let mut handles = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(Arc::clone(&topic), value(i));
        handles.push(producer.send(record).await.unwrap());
    }
    tokio::time::timeout(Duration::from_secs(60), producer.flush())
        .await
        .expect("flushed in time")
        .unwrap();
    // The big records fail (with whatever shared their batch); everything
    // else is acknowledged, at offsets that rise in send order.
    let mut delivered: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut failed = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.await {
            Ok((_, offset)) => delivered.push((offset, value(i))),
            Err(e) => {
                assert!(is_too_large(&e), "record {i} failed with {e}");
                failed.push(i);
            }
        }
    }
    let bigs: Vec<usize> = (0..RECORDS)
        .filter(|i| i % BIG_EVERY == BIG_EVERY / 2)
        .collect();
    assert!(
        bigs.iter().all(|b| failed.contains(b)),
        "every big record failed: {failed:?}"
    );
    // A refused batch holds the big record alone (it overflows any batch
    // it joins) or a handful of small ones sealed with it.
    assert!(
        failed.len() <= bigs.len() * 10,
        "only the refused batches failed: {} records",
        failed.len()
    );
    for (n, w) in delivered.windows(2).enumerate() {
        assert_eq!(w[1].0, w[0].0 + 1, "offsets dense in send order at {n}");
    }
    assert_eq!(delivered.first().map(|d| d.0), Some(0));

    let read = read_all(&broker.bootstrap(), "pipelined", 0, delivered.len())
        .await
        .unwrap();
    assert_eq!(
        read, delivered,
        "the log holds exactly the acknowledged records, once each, in order"
    );
    producer.close().await.unwrap();
}
