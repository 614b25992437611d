//! The producer's per-record path without the network: `Accumulator::append`
//! (record written into the open batch, its handle made), sealing full
//! batches (header, CRC-32C), draining them, resolving each batch once and
//! reading every record's result from its handle — for 100 B and 1 KiB
//! values into one partition with Kafka's default 16 KiB and the bench's
//! 1 MiB batches.
//!
//! `cargo bench -p sluice-client --bench accumulator`; results in
//! docs/benchmarks.md ("Client: record encoding").

// A benchmark harness: a failed append is a broken benchmark.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_client::Compression;
use sluice_client::producer::accumulator::{Accumulator, BatchOptions};
use sluice_protocol::batch_builder::ProducerIdentity;
use sluice_protocol::batch_writer::RecordParts;

const RECORDS: usize = 10_000;

fn append_seal_drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("accumulator");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (value_bytes, batch_size) in [(100usize, 16 * 1024), (100, 1 << 20), (1024, 1 << 20)] {
        let value = Bytes::from(vec![b'x'; value_bytes]);
        let options = BatchOptions {
            batch_size,
            linger: Duration::ZERO,
            compression: Compression::None,
            producer: ProducerIdentity { id: 1, epoch: 0 },
            idempotent: true,
            in_flight_max: usize::MAX,
        };
        let id = BenchmarkId::new(format!("{value_bytes}B"), format!("batch {batch_size}"));
        let topic: Arc<str> = Arc::from("bench");
        group.bench_function(id, |b| {
            b.iter(|| {
                let mut acc = Accumulator::new(options);
                let mut handles = Vec::with_capacity(RECORDS);
                for i in 0..RECORDS {
                    let parts = RecordParts {
                        timestamp: 1_700_000_000_000 + i as i64,
                        key: None,
                        value: Some(&value),
                        headers: &[],
                    };
                    // As `Producer::send` does: the topic found by its `Arc`.
                    let t = acc.topic(&topic);
                    let (handle, _) = acc
                        .append(t, 0, 1, &parts, value_bytes + 36)
                        .map_err(|(_, e)| e)
                        .expect("appends");
                    handles.push(handle);
                }
                let drained = acc.drain(Instant::now(), true);
                for (n, batch) in drained.ready.into_iter().enumerate() {
                    batch.resolve_for_bench(Ok((0, n as i64 * 1000)));
                }
                handles
                    .iter()
                    .filter(|h| h.try_result().is_some_and(|r| r.is_ok()))
                    .count()
            })
        });
    }
    group.finish();
}

/// Batches of the metrics scenario: one ~500 B JSON record per zstd
/// batch, 12 partitions, the scenario's 64 KiB `batch_size`: sealing
/// (compression, the batch's buffers) dominates, not the append.
fn small_zstd_batches(c: &mut Criterion) {
    const PARTITIONS: i32 = 12;
    const BATCHES: usize = 1200;
    let mut group = c.benchmark_group("accumulator");
    group.throughput(Throughput::Elements(BATCHES as u64));
    let options = BatchOptions {
        batch_size: 64 * 1024,
        linger: Duration::ZERO,
        compression: Compression::Zstd,
        producer: ProducerIdentity { id: 1, epoch: 0 },
        idempotent: true,
        in_flight_max: usize::MAX,
    };
    let values: Vec<Vec<u8>> = (0..BATCHES)
        .map(|i| {
            let mut v = format!(
                "{{\"host\":\"host-{:05}\",\"metric\":\"cpu.user\",\"ts\":{},\"tags\":{{\"dc\":\"eu-{}\",\"rack\":\"r{}\"}},\"values\":[",
                i * 7919 % 10_000,
                1_700_000_000_000u64 + i as u64,
                i % 3,
                i % 40
            );
            let mut k = 0;
            while v.len() < 490 {
                v.push_str(&format!("{:.3},", (i * 31 + k * 17) as f64 / 7.0));
                k += 1;
            }
            v.push_str("0]}");
            v.into_bytes()
        })
        .collect();
    let topic: Arc<str> = Arc::from("bench");
    group.bench_function("1 record per zstd batch, 500B", |b| {
        let mut acc = Accumulator::new(options);
        b.iter(|| {
            let mut acked = 0;
            for (i, value) in values.iter().enumerate() {
                let parts = RecordParts {
                    timestamp: 1_700_000_000_000 + i as i64,
                    key: None,
                    value: Some(value),
                    headers: &[],
                };
                let t = acc.topic(&topic);
                let partition = i as i32 % PARTITIONS;
                acc.append(t, partition, PARTITIONS, &parts, value.len() + 36)
                    .map_err(|(_, e)| e)
                    .expect("appends");
                if partition == PARTITIONS - 1 {
                    for batch in acc.drain(Instant::now(), true).ready {
                        batch.resolve_for_bench(Ok((batch.tp.partition, 0)));
                        acked += batch.records;
                    }
                }
            }
            acked
        })
    });
    group.finish();
}

criterion_group!(benches, append_seal_drain, small_zstd_batches);
criterion_main!(benches);
