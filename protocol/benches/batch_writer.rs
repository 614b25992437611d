//! Encoding one RecordBatch: the producer's `BatchWriter` (each record
//! written once into the batch buffer) against `batch_builder` (a
//! kafka-protocol `Record` per record, then kafka-protocol's encoder), for
//! 1 000 records of 100 B and of 1 KiB, uncompressed.
//!
//! `cargo bench -p sluice-protocol --bench batch_writer`; results in
//! docs/benchmarks.md ("Client: record encoding").

// A benchmark harness: a failed encode is a broken benchmark.
#![allow(clippy::expect_used)]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_protocol::batch_builder::{ProducerIdentity, encode_batch, record};
use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
use sluice_protocol::record_batch::CompressionType;

const RECORDS: usize = 1000;
const PRODUCER: ProducerIdentity = ProducerIdentity { id: 7, epoch: 0 };

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_batch");
    for value_bytes in [100usize, 1024] {
        let values: Vec<Bytes> = (0..RECORDS)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes]))
            .collect();
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_with_input(
            BenchmarkId::new("batch_writer", value_bytes),
            &values,
            |b, values| {
                b.iter(|| {
                    let mut w = BatchWriter::new(RECORDS * (value_bytes + 36));
                    for (i, v) in values.iter().enumerate() {
                        let parts = RecordParts {
                            timestamp: 1_700_000_000_000 + i as i64,
                            key: None,
                            value: Some(v),
                            headers: &[],
                        };
                        assert!(w.try_append(&parts));
                    }
                    w.finish(CompressionType::None, PRODUCER, 0)
                        .expect("encodes")
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("batch_builder", value_bytes),
            &values,
            |b, values| {
                b.iter(|| {
                    let mut records: Vec<_> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            record(
                                1_700_000_000_000 + i as i64,
                                None,
                                Some(v.clone()),
                                Vec::new(),
                            )
                        })
                        .collect();
                    encode_batch(&mut records, CompressionType::None, PRODUCER, 0).expect("encodes")
                })
            },
        );
    }
    // The counters scenario's record: an 8-byte key and a 24-byte value.
    let keys: Vec<[u8; 8]> = (0..RECORDS as u64).map(u64::to_be_bytes).collect();
    let value = [b'c'; 24];
    group.bench_function(BenchmarkId::new("batch_writer", "32B_keyed"), |b| {
        b.iter(|| {
            let mut w = BatchWriter::new(RECORDS * 64);
            for (i, key) in keys.iter().enumerate() {
                let parts = RecordParts {
                    timestamp: 1_700_000_000_000 + i as i64,
                    key: Some(key),
                    value: Some(&value),
                    headers: &[],
                };
                assert!(w.try_append(&parts));
            }
            w.finish(CompressionType::None, PRODUCER, 0)
                .expect("encodes")
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
