//! `Producer::send_batch_ref` against a real broker: a batch send queues
//! records in order as one-by-one sends would; it stops where the buffer
//! is full (the next call waits for room) and before a record that cannot
//! be sent (a call starting with it returns its error, queueing nothing);
//! every queued record arrives once, on its key's partition, in order,
//! at the offset its future gave.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_client::producer::partitioner::partition_for_key;
use sluice_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecordRef};
use sluice_protocol::error_code::{ErrorCode, ResponseError};
use support::{TestBroker, read_all};

const PARTITIONS: i32 = 4;
const RECORDS: usize = 600;
/// This record's value alone fills the buffer: MESSAGE_TOO_LARGE.
const TOO_LARGE_AT: usize = 250;
const BUFFER_BYTES: usize = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_send_stops_at_a_full_buffer_and_before_a_refused_record() {
    let broker = TestBroker::start().unwrap();
    let client =
        ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(30));
    Admin::connect(client.clone())
        .await
        .unwrap()
        .create_topic(&NewTopic::new("batched", PARTITIONS))
        .await
        .unwrap();
    let producer = Producer::connect(
        ProducerConfig::new(client)
            .with_buffer_bytes(BUFFER_BYTES)
            .with_linger(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    let topic: Arc<str> = Arc::from("batched");
    let keys: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    let values: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| match i {
            TOO_LARGE_AT => vec![b'x'; BUFFER_BYTES],
            _ => format!("value-{i:04}").into_bytes(),
        })
        .collect();
    let records: Vec<ProducerRecordRef<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| ProducerRecordRef {
            topic: &topic,
            partition: None,
            key: Some(key),
            value: Some(value),
            headers: &[],
            timestamp: None,
        })
        .collect();

    assert_eq!(
        producer.send_batch_ref(&[], &mut Vec::new()).await.unwrap(),
        0
    );
    let mut deliveries = Vec::new();
    // The index of each queued record, in the order it was queued.
    let mut queued = Vec::new();
    let mut refused = Vec::new();
    let mut stopped_at_full_buffer = 0;
    let mut next = 0;
    while next < RECORDS {
        let before = deliveries.len();
        match producer
            .send_batch_ref(&records[next..], &mut deliveries)
            .await
        {
            Ok(n) => {
                assert!(n > 0, "a call with records queues at least one");
                assert_eq!(deliveries.len() - before, n);
                queued.extend(next..next + n);
                next += n;
                if next < RECORDS && next != TOO_LARGE_AT {
                    stopped_at_full_buffer += 1;
                }
            }
            Err(e) => {
                assert_eq!(deliveries.len(), before, "a refused call queues nothing");
                assert_eq!(
                    e.code(),
                    Some(ErrorCode::of(ResponseError::MessageTooLarge)),
                    "{e}"
                );
                refused.push(next);
                next += 1;
            }
        }
    }
    assert_eq!(refused, vec![TOO_LARGE_AT]);
    assert_eq!(queued.len(), RECORDS - 1);
    // ~70 bytes a record: a 4 KiB buffer holds a fraction of them, so
    // calls stopped at a full buffer and the next ones waited for room.
    assert!(
        stopped_at_full_buffer >= 5,
        "{stopped_at_full_buffer} calls stopped at a full buffer"
    );

    // Each future resolves on its key's murmur2 partition, at the next
    // offset of that partition in the order the records were queued.
    let mut expected_offsets = BTreeMap::<i32, i64>::new();
    let mut expected_values = BTreeMap::<i32, Vec<Vec<u8>>>::new();
    for (&i, delivery) in queued.iter().zip(deliveries) {
        let (partition, offset) = delivery.await.unwrap();
        assert_eq!(
            partition,
            partition_for_key(&keys[i], PARTITIONS),
            "record {i}"
        );
        let expected = expected_offsets.entry(partition).or_insert(0);
        assert_eq!(offset, *expected, "record {i}");
        *expected += 1;
        expected_values
            .entry(partition)
            .or_default()
            .push(values[i].clone());
    }

    // Read back: each partition holds its queued records once, in order.
    let mut got = BTreeMap::<i32, Vec<Vec<u8>>>::new();
    for (&partition, values) in &expected_values {
        let read = read_all(&broker.bootstrap(), "batched", partition, values.len())
            .await
            .unwrap();
        got.insert(
            partition,
            read.into_iter().map(|(_, value)| value).collect(),
        );
    }
    assert_eq!(got, expected_values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_batch_is_queued_whole_across_several_holds_of_the_lock() {
    let broker = TestBroker::start().unwrap();
    let client =
        ClientConfig::new(&broker.bootstrap()).with_request_timeout(Duration::from_secs(30));
    let producer = Producer::connect(ProducerConfig::new(client))
        .await
        .unwrap();
    let topic: Arc<str> = Arc::from("long-batch");
    // More records than one hold of the lock takes
    // (`limits::RECORDS_PER_LOCK_MAX`, 256), all fitting the buffer.
    let values: Vec<Vec<u8>> = (0..1_000).map(|i| format!("v{i}").into_bytes()).collect();
    let records: Vec<ProducerRecordRef<'_>> = values
        .iter()
        .map(|value| ProducerRecordRef {
            topic: &topic,
            partition: Some(0),
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: None,
        })
        .collect();
    let mut deliveries = Vec::new();
    assert_eq!(
        producer
            .send_batch_ref(&records, &mut deliveries)
            .await
            .unwrap(),
        records.len()
    );
    for (i, delivery) in deliveries.into_iter().enumerate() {
        assert_eq!(delivery.await.unwrap(), (0, i as i64));
    }
}
