//! Encoding a Fetch response frame (`encode_fetch_response_frame`): the
//! framing the broker writes around record regions it sends from the
//! segment files, for one partition with one region (a tailing consumer's
//! reply), 100 partitions and 1 000 partitions of one region each (a
//! follower or a consumer of many partitions), at v12 (flexible, what
//! librdkafka 2.x and sluice-client use) and v11. Record bytes are not
//! touched: only their lengths go in.
//!
//! `cargo bench -p sluice-protocol --bench fetch_response`; results in
//! docs/benchmarks.md ("Micro-benchmarks for the hot pieces").

// A benchmark harness: a response that does not encode is a broken benchmark.
#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::fetch_response::{
    FetchResponseData, FetchResponsePartition, FetchResponseTopic, encode_fetch_response_frame,
};

fn response(partitions: usize) -> FetchResponseData {
    FetchResponseData {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 0,
        topics: vec![FetchResponseTopic {
            name: TopicName(StrBytes::from_static_str("messaging")),
            partitions: (0..partitions)
                .map(|p| FetchResponsePartition {
                    partition_index: p as i32,
                    high_watermark: 1_000_000,
                    last_stable_offset: 1_000_000,
                    log_start_offset: 0,
                    record_regions: vec![1 << 20],
                    ..FetchResponsePartition::default()
                })
                .collect(),
        }],
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_fetch_response");
    for partitions in [1usize, 100, 1000] {
        let data = response(partitions);
        group.throughput(Throughput::Elements(partitions as u64));
        for version in [12i16, 11] {
            group.bench_with_input(
                BenchmarkId::new(format!("v{version}"), partitions),
                &data,
                |b, data| {
                    b.iter(|| encode_fetch_response_frame(data, version, 42).expect("encodes"))
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
