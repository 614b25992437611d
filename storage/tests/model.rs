//! Model test: random append / roll / read / truncate / flush / reopen /
//! crash sequences against a `Vec` of batches.
//!
//! Checked after every step: offsets are dense and monotonic, every batch
//! served equals the batch appended (byte for byte, except the
//! partitionLeaderEpoch field, which lies outside the CRC and which no
//! check can protect), and after a crash every flushed batch survives while
//! the log is a prefix of what was appended. A crash drops the log without
//! closing it and then either leaves the files alone (process crash: the
//! page cache survives), cuts one `.log` at a random byte past its flushed
//! length, or flips a random byte past its flushed length.

// A test harness: a panic is the failure report, so the lints that keep
// panics out of library code do not apply to its helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use sluice_protocol::{BatchIter, RecordBatchView};
use sluice_storage::{LeaderEpoch, LogConfig, Offset, PartitionLog};
use std::path::Path;

const EPOCH: i32 = 5;

/// An uncompressed RecordBatch v2 with filler record bytes and a valid CRC.
fn batch(count: i32, ts: i64, payload: usize, fill: u8) -> Vec<u8> {
    let mut b = vec![0u8; 61 + payload];
    let len = i32::try_from(b.len() - 12).unwrap();
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    for (i, x) in b[61..].iter_mut().enumerate() {
        *x = fill.wrapping_add(i as u8);
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(i32, usize, u8)>),
    Roll,
    Read { start: u32, max_bytes: u32 },
    Truncate { at: u32 },
    Flush,
    Reopen,
    Crash { how: u8, file: u32, at: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1i32..6, 0usize..900, any::<u8>()), 1..4).prop_map(Op::Append),
        1 => Just(Op::Roll),
        3 => (any::<u32>(), 1u32..4000).prop_map(|(start, max_bytes)| Op::Read { start, max_bytes }),
        1 => any::<u32>().prop_map(|at| Op::Truncate { at }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (0u8..3, any::<u32>(), any::<u32>()).prop_map(|(how, file, at)| Op::Crash { how, file, at }),
    ]
}

/// What was appended, as stored (base offset assigned).
#[derive(Debug, Clone)]
struct Stored {
    base: i64,
    last: i64,
    bytes: Vec<u8>,
}

struct Model {
    batches: Vec<Stored>,
    /// Batches known fsynced: they must survive any crash.
    flushed: usize,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.last + 1)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 96, // 12 offset entries: index-full rolls happen too
        index_interval_bytes: 256,
        max_message_bytes: 2048,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn same_batch(got: &[u8], want: &Stored) -> bool {
    got.len() == want.bytes.len() && got[..12] == want.bytes[..12] && got[16..] == want.bytes[16..]
}

/// Reads everything and checks it equals a prefix of the model; returns
/// how many batches the log holds.
fn check_prefix(log: &PartitionLog, model: &Model) -> usize {
    let end = log.log_end_offset();
    let r = log.read(Offset(0), u32::MAX, end, true).unwrap();
    let mut n = 0;
    for region in &r.regions {
        let bytes = region.bytes();
        for item in BatchIter::new(&bytes, 1 << 20) {
            let (_, v) = item.unwrap();
            v.verify_crc().unwrap();
            let want = model
                .batches
                .get(n)
                .expect("log holds more batches than appended");
            assert!(
                same_batch(v.as_bytes(), want),
                "batch {n} (offset {}) differs",
                want.base
            );
            n += 1;
        }
    }
    let covered = model
        .batches
        .get(..n)
        .and_then(|b| b.last())
        .map_or(0, |b| b.last + 1);
    assert_eq!(end.0, covered, "log end offset matches the batches served");
    n
}

fn crash(log: PartitionLog, dir: &Path, how: u8, file: u32, at: u32) {
    let unflushed = log.simulate_crash();
    if how == 0 || unflushed.is_empty() {
        return;
    }
    let f = &unflushed[file as usize % unflushed.len()];
    let span = f.written_len - f.flushed_len;
    if how == 1 {
        let cut = f.flushed_len + u64::from(at) % (span + 1);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f.path)
            .unwrap()
            .set_len(cut)
            .unwrap();
    } else if span > 0 {
        let pos = (f.flushed_len + u64::from(at) % span) as usize;
        let mut bytes = std::fs::read(&f.path).unwrap();
        bytes[pos] ^= 1 << (at % 8);
        std::fs::write(&f.path, &bytes).unwrap();
    }
    let _ = dir;
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let mut model = Model {
        batches: Vec::new(),
        flushed: 0,
    };
    let mut ts = 1_700_000_000_000i64;
    for op in ops {
        match op {
            Op::Append(specs) => {
                let mut buf = Vec::new();
                let mut next = model.end();
                let mut appended = Vec::new();
                for (count, payload, fill) in specs {
                    ts += 1;
                    let mut b = batch(count, ts, payload, fill);
                    buf.extend_from_slice(&b);
                    b[..8].copy_from_slice(&next.to_be_bytes());
                    b[12..16].copy_from_slice(&EPOCH.to_be_bytes());
                    let last = next + i64::from(count) - 1;
                    appended.push(Stored {
                        base: next,
                        last,
                        bytes: b,
                    });
                    next = last + 1;
                }
                let info = log.append_as_leader(&buf, LeaderEpoch(EPOCH), ts).unwrap();
                assert_eq!(info.base_offset.0, model.end(), "offsets are dense");
                assert_eq!(info.last_offset.0, next - 1);
                model.batches.extend(appended);
            }
            Op::Roll => log.roll(ts).unwrap(),
            Op::Read { start, max_bytes } => {
                let end = model.end();
                let start = i64::from(start) % (end + 1);
                let r = log
                    .read(Offset(start), max_bytes, Offset(end), false)
                    .unwrap();
                let first = model.batches.iter().position(|b| b.last >= start);
                let mut i = first.unwrap_or(model.batches.len());
                let mut total = 0u64;
                for region in &r.regions {
                    let bytes = region.bytes();
                    for item in BatchIter::new(&bytes, 1 << 20) {
                        let (_, v) = item.unwrap();
                        assert!(
                            same_batch(v.as_bytes(), &model.batches[i]),
                            "read batch {i} differs"
                        );
                        total += v.size() as u64;
                        i += 1;
                    }
                }
                assert!(total <= u64::from(max_bytes), "max_bytes respected");
                if let (Some(next), Some(_)) = (model.batches.get(i), first) {
                    let fits = total + next.bytes.len() as u64 <= u64::from(max_bytes);
                    assert!(!fits, "read stopped early");
                }
            }
            Op::Truncate { at } => {
                let end = model.end();
                let at = i64::from(at) % (end + 1);
                let new_end = log.truncate_to(Offset(at)).unwrap();
                model.batches.retain(|b| b.last < at);
                model.flushed = model.flushed.min(model.batches.len());
                assert_eq!(new_end.0, model.end());
            }
            Op::Flush => {
                log.flush().unwrap();
                model.flushed = model.batches.len();
            }
            Op::Reopen => {
                log.close().unwrap();
                log = PartitionLog::open(dir.path(), config()).unwrap();
                model.flushed = model.batches.len();
                assert_eq!(
                    check_prefix(&log, &model),
                    model.batches.len(),
                    "clean reopen loses nothing"
                );
            }
            Op::Crash { how, file, at } => {
                crash(log, dir.path(), how, file, at);
                log = PartitionLog::open(dir.path(), config()).unwrap();
                let kept = check_prefix(&log, &model);
                assert!(
                    kept >= model.flushed,
                    "flushed batches lost: kept {kept} of {} flushed",
                    model.flushed
                );
                if how == 0 {
                    assert_eq!(
                        kept,
                        model.batches.len(),
                        "a process crash keeps the page cache"
                    );
                }
                model.batches.truncate(kept);
                // Recovery fsyncs what it keeps.
                model.flushed = kept;
            }
        }
        assert_eq!(log.log_end_offset().0, model.end());
    }
    check_prefix(&log, &model);
    let _ = RecordBatchView::parse;
}

proptest! {
    // 96 cases by default (about a second in release); PROPTEST_CASES=N for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
