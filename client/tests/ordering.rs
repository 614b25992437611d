//! The producer's delivery guarantees against a real broker that is
//! crashed and frozen mid-stream: with idempotence and five batches in
//! flight per partition, every record is written exactly once and in send
//! order; every record's handle gets its own offset from its batch's one
//! acknowledgement.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use support::{TestBroker, read_all};

fn client(broker: &TestBroker, request_timeout: Duration) -> ClientConfig {
    let mut c = ClientConfig::new(&broker.bootstrap()).with_request_timeout(request_timeout);
    c.retry_backoff = Duration::from_millis(50);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_stream_survives_crashes_and_freezes_in_order_without_duplicates() {
    const RECORDS: u64 = 30_000;
    let broker = TestBroker::start().unwrap();
    Admin::connect(client(&broker, Duration::from_secs(30)))
        .await
        .unwrap()
        .create_topic(&NewTopic::new("ordered", 1))
        .await
        .unwrap();
    // Small batches and a short request timeout: many batches in flight
    // when the broker dies, and a freeze outlasts the timeout, so requests
    // the frozen broker still holds are retried on a new connection (and
    // then arrive twice).
    let producer = Producer::connect(
        ProducerConfig::new(client(&broker, Duration::from_secs(1)))
            .with_batch_size(2048)
            .with_linger(Duration::from_millis(1))
            .with_max_in_flight_per_partition(5),
    )
    .await
    .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let sending = {
        let sent = Arc::clone(&sent);
        let producer = producer.clone();
        tokio::spawn(async move {
            let topic: Arc<str> = Arc::from("ordered");
            let mut handles = Vec::with_capacity(RECORDS as usize);
            for i in 0..RECORDS {
                let record = ProducerRecord::new(Arc::clone(&topic), format!("{i:08}"));
                handles.push(producer.send(record).await.unwrap());
                sent.store(i + 1, Ordering::Release);
                if i % 64 == 0 {
                    // Let the stream spread over the faults below.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            handles
        })
    };
    let wait_for = |n: u64| {
        let sent = Arc::clone(&sent);
        async move {
            while sent.load(Ordering::Acquire) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let signal = |pid: u32, sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };

    wait_for(RECORDS / 4).await;
    let broker = broker.restart().unwrap(); // SIGKILL + restart
    wait_for(RECORDS / 2).await;
    signal(broker.pid(), "-STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(broker.pid(), "-CONT");
    wait_for(3 * RECORDS / 4).await;
    let broker = broker.restart().unwrap();

    let handles = tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("sending finished")
        .unwrap();
    producer.flush().await.unwrap();
    // Exactly once, in order, in one partition: record i is at offset i.
    for (i, h) in handles.into_iter().enumerate() {
        let (partition, offset) = h.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        assert_eq!((partition, offset), (0, i as i64), "record {i}");
    }
    let read = read_all(&broker.bootstrap(), "ordered", 0, RECORDS as usize)
        .await
        .unwrap();
    assert_eq!(read.len(), RECORDS as usize, "records in the log");
    for (i, (offset, value)) in read.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, format!("{i:08}").as_bytes(), "value at offset {i}");
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_a_batch_resolves_to_its_own_offset() {
    const RECORDS: usize = 20_000;
    let broker = TestBroker::start().unwrap();
    let config = client(&broker, Duration::from_secs(30));
    Admin::connect(config.clone())
        .await
        .unwrap()
        .create_topic(&NewTopic::new("handles", 3))
        .await
        .unwrap();
    let producer = Producer::connect(
        ProducerConfig::new(config)
            .with_batch_size(16 * 1024)
            .with_linger(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    let topic: Arc<str> = Arc::from("handles");
    let mut handles = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = ProducerRecord::new(Arc::clone(&topic), format!("v{i}"))
            .with_key(format!("k{}", i % 97))
            .with_header("i", i.to_string());
        handles.push(producer.send(record).await.unwrap());
    }
    // Nothing is lost or shared: within a partition the offsets are
    // exactly 0, 1, 2, … in send order.
    let mut next = [0i64; 3];
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (i, h) in handles.into_iter().enumerate() {
        let (partition, offset) = h.await.unwrap();
        let p = usize::try_from(partition).unwrap();
        assert_eq!(offset, next[p], "record {i} in partition {partition}");
        next[p] += 1;
        sent[p].push(format!("v{i}"));
    }
    assert!(next.iter().all(|&n| n > 0), "all partitions used: {next:?}");
    for (p, values) in sent.iter().enumerate() {
        let read = read_all(&broker.bootstrap(), "handles", p as i32, values.len())
            .await
            .unwrap();
        let got: Vec<_> = read.iter().map(|(_, v)| v.as_slice()).collect();
        let want: Vec<_> = values.iter().map(String::as_bytes).collect();
        assert_eq!(got, want, "partition {p}");
    }
}
