//! The produce path's checks on one batch, as the broker runs them
//! (`validate_single_batch` in broker/src/handlers/produce.rs): parse the
//! header (`RecordBatchView::parse`), then `records::validate_batch` —
//! CRC-32C over the batch, the count against `lastOffsetDelta`, and every
//! record parsed (after decompression for a compressed batch). The CRC
//! alone is measured beside it, so the share of the record walk shows.
//!
//! Batches as the benchmarks produce them: 1 000 records of 100 B and of
//! 1 KiB, and 1 000 records of 32 B (the counters scenario), uncompressed;
//! 1 000 × 100 B zstd.
//!
//! `cargo bench -p sluice-protocol --bench batch_validation`; results in
//! docs/benchmarks.md ("Micro-benchmarks for the hot pieces").

// A benchmark harness: a batch that does not build is a broken benchmark.
#![allow(clippy::expect_used)]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_protocol::RecordBatchView;
use sluice_protocol::batch_builder::ProducerIdentity;
use sluice_protocol::batch_writer::{BatchWriter, RecordParts};
use sluice_protocol::record_batch::CompressionType;
use sluice_protocol::records::validate_batch;

const RECORDS: usize = 1000;

/// A batch of `RECORDS` values of `value_bytes`, keyed when `keyed` (8 B
/// keys, as counters), encoded by the producer's writer with `codec`.
fn batch(value_bytes: usize, keyed: bool, codec: CompressionType) -> Bytes {
    let mut w = BatchWriter::new(RECORDS * (value_bytes + 64));
    for i in 0..RECORDS {
        let value: Vec<u8> = (0..value_bytes)
            .map(|j| b'a' + ((i + j) % 26) as u8)
            .collect();
        let key = (i as u64).to_be_bytes();
        let parts = RecordParts {
            timestamp: 1_700_000_000_000 + i as i64,
            key: keyed.then_some(&key[..]),
            value: Some(&value),
            headers: &[],
        };
        assert!(w.try_append(&parts), "room for every record");
    }
    w.finish(codec, ProducerIdentity { id: 7, epoch: 0 }, 0)
        .expect("encodes")
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_batch");
    let cases = [
        ("32B_keyed", batch(24, true, CompressionType::None)),
        ("100B", batch(100, false, CompressionType::None)),
        ("1KiB", batch(1024, false, CompressionType::None)),
        ("100B_zstd", batch(100, false, CompressionType::Zstd)),
    ];
    for (name, bytes) in &cases {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("full", name), bytes, |b, bytes| {
            b.iter(|| {
                let view = RecordBatchView::parse(bytes, 1 << 24).expect("parses");
                validate_batch(&view, 1 << 24).expect("valid")
            })
        });
        group.bench_with_input(BenchmarkId::new("crc_only", name), bytes, |b, bytes| {
            b.iter(|| {
                let view = RecordBatchView::parse(bytes, 1 << 24).expect("parses");
                view.verify_crc().expect("crc")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
