//! How long an append that rolls the segment takes, as the broker's
//! partition lock sees it, and what closing the sealed segment's files
//! costs after the lock.
//!
//! The broker appends under the partition's lock; a roll inside an append
//! seals the active segment and opens the next, reusing a removed
//! segment's file when retention left one. Here one log takes 1 MiB
//! batches (1024 records of 1 KiB) into 64 MiB segments while a reader
//! reads each batch back through the log and touches every page of it, as
//! a tailing consumer's fetch does (which populates the segment's
//! mapping), and DeleteRecords keeps four sealed segments behind the
//! active one, so rolls after the first few reuse removed files. Per
//! append it times the append plus `take_sealed_files` (what the lock
//! covers), and per roll the drop of the sealed files (after the lock).
//! Each append is flushed (fdatasync) outside the timed part, as the
//! broker's flusher does beside the appends: unflushed, gigabytes of
//! dirty pages bring write-back throttling into every append.
//!
//! Run: `cargo bench -p sluice-storage --bench roll`. `SLUICE_BENCH_DIR`
//! picks the directory (default: the system temp dir),
//! `SLUICE_BENCH_SEGMENT_MIB` the segment size (default 64),
//! `SLUICE_BENCH_ROLLS` how many rolls (default 60).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_storage::{LeaderEpoch, LogConfig, Offset, PartitionLog};

mod common;
use common::{batch, env_or};

/// Sealed segments DeleteRecords leaves behind the active one.
const KEPT_SEGMENTS: usize = 4;

/// Reads the batch at `offset` back and touches one byte of every page.
fn read_back(log: &PartitionLog, offset: Offset) -> u64 {
    let r = log
        .read(offset, 2 << 20, log.log_end_offset(), true)
        .unwrap();
    let mut sum = 0u64;
    for region in &r.regions {
        let bytes = region.bytes();
        for page in bytes.chunks(4096) {
            sum = sum.wrapping_add(u64::from(page[0]));
        }
    }
    sum
}

/// Removed `.log` files kept for reuse in `dir`.
fn spare_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log.deleted"))
        })
        .count()
}

/// "median p90 max" in µs, and how many.
fn summary(mut times: Vec<Duration>) -> String {
    if times.is_empty() {
        return "none".into();
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_micros();
    format!(
        "median {} µs, p90 {} µs, max {} µs ({} of them)",
        at(0.5),
        at(0.9),
        at(1.0),
        times.len()
    )
}

fn main() {
    let segment_mib = env_or("SLUICE_BENCH_SEGMENT_MIB", 64);
    let rolls = env_or("SLUICE_BENCH_ROLLS", 60);
    let base = std::env::var_os("SLUICE_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let config = LogConfig {
        segment_bytes: (segment_mib as u64) << 20,
        ..LogConfig::default()
    };
    let log_dir = dir.path().join("roll-0");
    let mut log = PartitionLog::open(&log_dir, config).unwrap();
    let batch = batch(1024, 1024);

    let (mut plain, mut new_file, mut reused, mut dropped) = (vec![], vec![], vec![], vec![]);
    let mut checksum = 0u64;
    let mut rolled = 0;
    // Removed `.log`s waiting to be reused (`*.log.deleted`).
    let mut spares = 0;
    while rolled < rolls {
        let start = Instant::now();
        let info = log
            .append_as_leader(black_box(&batch), LeaderEpoch(1), 0)
            .unwrap();
        let sealed = log.take_sealed_files();
        let held = start.elapsed();
        if sealed.is_empty() {
            plain.push(held);
        } else {
            rolled += 1;
            // The roll reused a removed file if one fewer waits now.
            let rolls_of_kind = if spare_files(&log_dir) < spares {
                &mut reused
            } else {
                &mut new_file
            };
            rolls_of_kind.push(held);
            let start = Instant::now();
            drop(sealed);
            dropped.push(start.elapsed());
            let bases = log.segment_base_offsets();
            if bases.len() > KEPT_SEGMENTS + 1 {
                let start = bases[bases.len() - KEPT_SEGMENTS - 1];
                drop(log.advance_log_start_offset(start).unwrap());
            }
            spares = spare_files(&log_dir);
        }
        checksum = checksum.wrapping_add(read_back(&log, info.base_offset));
        log.flush().unwrap();
    }
    black_box(checksum);
    println!(
        "{rolls} rolls of {segment_mib} MiB segments, 1 MiB batches, read back through the log"
    );
    println!("append, no roll:                     {}", summary(plain));
    println!("append rolling into a new file:      {}", summary(new_file));
    println!("append rolling into a removed file:  {}", summary(reused));
    println!("sealed files closed after the lock:  {}", summary(dropped));
}
