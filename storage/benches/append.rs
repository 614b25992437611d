//! Append throughput of `PartitionLog` against a plain sequential `write`
//! of the same bytes to a file in the same directory, in the same run; and
//! reading a region back (`FileRegion::bytes`, no copy) against `read`.
//!
//! 1 MiB batches of 1024 records of 1 KiB (the record bytes are filler:
//! storage never looks inside a batch), `LogConfig::default()` (1 GiB
//! segments, so the run crosses segment rolls). No fsync on either side:
//! this measures the append path (validation with CRC-32C, one copy into
//! the mapping, index upkeep, rolls), the page cache being the same for
//! both. Run: `cargo bench -p sluice-storage --bench append`.
//! `SLUICE_BENCH_DIR` picks the directory (default: the system temp dir);
//! `SLUICE_BENCH_MIB` the MiB per round (default 512: well below the
//! dirty-page limit, so writeback throttling does not dominate);
//! `SLUICE_BENCH_RECORDS` and `SLUICE_BENCH_RECORD_BYTES` the batch's shape
//! (default 1024 of 1024 B; the metrics scenario's small batches are about
//! `1` of `500`: then the system calls per batch dominate). Nine rounds,
//! alternating which side goes first; medians are reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_storage::{LeaderEpoch, LogConfig, Offset, PartitionLog};

mod common;
use common::{batch, env_or};

const ROUNDS: usize = 9;

/// CPU time of this thread (user + system, page faults included): less
/// disturbed than wall time by other processes on a shared machine.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn gib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / f64::from(1u32 << 30)
}

/// Wall time and this thread's CPU time since `start`.
struct Timer(Instant, Duration);

impl Timer {
    fn start() -> Self {
        Timer(Instant::now(), thread_cpu())
    }
    fn stop(&self) -> Times {
        Times {
            wall: self.0.elapsed(),
            cpu: thread_cpu() - self.1,
        }
    }
}

#[derive(Clone, Copy)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

fn plain_write(dir: &Path, batch: &[u8], n: usize) -> Times {
    let path = dir.join("plain.bin");
    let start = Timer::start();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..n {
        f.write_all(black_box(batch)).unwrap();
    }
    let d = start.stop();
    // Untimed: write the dirty pages back so the next phase starts from
    // the same page-cache state.
    f.sync_all().unwrap();
    d
}

fn log_append(dir: &Path, batch: &[u8], n: usize) -> (Times, PartitionLog) {
    // 256 MiB segments: a round crosses rolls (preallocation, trim),
    // which the measurement includes (the `roll` bench times them
    // alone). Opening the log (one checkpoint fsync) is set-up, as
    // creating the plain file is.
    let config = LogConfig {
        segment_bytes: 256 << 20,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&dir.join("bench-0"), config).unwrap();
    let start = Timer::start();
    for _ in 0..n {
        log.append_as_leader(black_box(batch), LeaderEpoch(1), 0)
            .unwrap();
    }
    let d = start.stop();
    // Untimed, as for the plain file.
    log.flush().unwrap();
    (d, log)
}

fn log_read(log: &PartitionLog) -> (Duration, u64) {
    let start = Instant::now();
    let end = log.log_end_offset();
    let mut next = Offset(0);
    let mut sum = 0u64;
    let mut bytes = 0u64;
    while next < end {
        let r = log.read(next, 64 << 20, end, true).unwrap();
        for region in &r.regions {
            let b = region.bytes();
            sum = sum.wrapping_add(u64::from(crc32c::crc32c(&b)));
            bytes += b.len() as u64;
        }
        next = r.next_offset;
    }
    black_box(sum);
    (start.elapsed(), bytes)
}

fn plain_read(dir: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let mut f = std::fs::File::open(dir.join("plain.bin")).unwrap();
    let mut buf = vec![0u8; 64 << 20];
    let (mut sum, mut bytes) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sum = sum.wrapping_add(u64::from(crc32c::crc32c(&buf[..n])));
        bytes += n as u64;
    }
    black_box(sum);
    (start.elapsed(), bytes)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        // `cargo test --benches` / `cargo bench --no-run` compatibility.
        return;
    }
    let base = std::env::var_os("SLUICE_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let mib = env_or("SLUICE_BENCH_MIB", 512);
    let records = i32::try_from(env_or("SLUICE_BENCH_RECORDS", 1024)).unwrap();
    let record = env_or("SLUICE_BENCH_RECORD_BYTES", 1024);
    let batch = batch(records, record);
    let n = (mib << 20) / batch.len();
    let total = (batch.len() * n) as u64;
    println!(
        "append: {n} batches of {} bytes ({records} records of {record} B) per round, {ROUNDS} rounds, dir {}",
        batch.len(),
        base.display()
    );
    let (mut plain_rates, mut log_rates, mut read_rates, mut pread_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut plain_cpu, mut log_cpu) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir_in(&base).unwrap();
        // Alternate which goes first, so neither always meets the other's
        // writeback or a busy neighbour.
        let (plain, (append, log)) = if round % 2 == 0 {
            let p = plain_write(dir.path(), &batch, n);
            (p, log_append(dir.path(), &batch, n))
        } else {
            let l = log_append(dir.path(), &batch, n);
            (plain_write(dir.path(), &batch, n), l)
        };
        let (read, read_bytes) = log_read(&log);
        let (pread, pread_bytes) = plain_read(dir.path());
        plain_rates.push(gib_per_s(total, plain.wall));
        log_rates.push(gib_per_s(total, append.wall));
        plain_cpu.push(gib_per_s(total, plain.cpu));
        log_cpu.push(gib_per_s(total, append.cpu));
        read_rates.push(gib_per_s(read_bytes, read));
        pread_rates.push(gib_per_s(pread_bytes, pread));
        println!(
            "round {round}: plain write {:.2} GiB/s (per cpu-s {:.2}) | log append {:.2} GiB/s (per cpu-s {:.2}) | log read {:.2} GiB/s | plain read {:.2} GiB/s | segments {}",
            plain_rates[round],
            plain_cpu[round],
            log_rates[round],
            log_cpu[round],
            read_rates[round],
            pread_rates[round],
            log.segment_count()
        );
    }
    let (p, l) = (median(&mut plain_rates), median(&mut log_rates));
    let (pc, lc) = (median(&mut plain_cpu), median(&mut log_cpu));
    println!(
        "median per CPU-second of the writing thread: plain write {pc:.2} GiB/s, log append {lc:.2} GiB/s, ratio {:.2}",
        lc / pc
    );
    println!(
        "median: plain write {p:.2} GiB/s, log append {l:.2} GiB/s, ratio {:.2}; log read (FileRegion::bytes + crc32c) {:.2} GiB/s, plain read (read + crc32c) {:.2} GiB/s",
        l / p,
        median(&mut read_rates),
        median(&mut pread_rates)
    );
}
