//! The machine's ceiling, measured in the same invocation as a scenario so
//! results can be stated as a fraction of it:
//!
//! - **loopback**: one TCP stream on 127.0.0.1 between a sender thread
//!   writing 256 KiB buffers and a receiver thread reading them — what one
//!   producer connection or one consumer connection could move at best;
//! - **disk**: sequential 1 MiB writes to a temp file followed by one
//!   `fdatasync`, timed together (bytes reach the device, not just the
//!   page cache);
//! - **fdatasync**: 64 KiB write + `fdatasync` rounds, the cost a broker
//!   that fsyncs every acknowledged batch pays per batch.
//!
//! Each part is bounded in bytes and in time and removes its file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::latency::Latency;

/// Largest file the disk part writes.
const DISK_BYTES_MAX: u64 = 1024 * 1024 * 1024;
const DISK_CHUNK: usize = 1024 * 1024;
const LOOPBACK_CHUNK: usize = 256 * 1024;
const SYNC_CHUNK: usize = 64 * 1024;
const SYNC_ROUNDS_MAX: u32 = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceiling {
    pub loopback_mib_per_s: f64,
    pub loopback_seconds: f64,
    pub disk_dir: PathBuf,
    pub disk_write_mib_per_s: f64,
    pub disk_bytes: u64,
    /// 64 KiB write + fdatasync rounds per second.
    pub fdatasync_per_s: f64,
    pub fdatasync_p50_ms: f64,
    pub fdatasync_p99_ms: f64,
}

/// Measures loopback for about `secs`, then the disk in `dir` for at most
/// about `secs` more.
pub fn measure(secs: f64, dir: &Path) -> anyhow::Result<Ceiling> {
    let budget = Duration::from_secs_f64(secs.max(0.1));
    let (loopback_bytes, loopback_time) = loopback(budget).context("loopback ceiling")?;
    let (disk_bytes, disk_time) = disk_write(dir, budget).context("disk ceiling")?;
    let (sync_rounds, sync_time, sync_latency) =
        fdatasync_rounds(dir, budget / 2).context("fdatasync ceiling")?;
    let sync = sync_latency.summary();
    Ok(Ceiling {
        loopback_mib_per_s: mib_per_s(loopback_bytes, loopback_time),
        loopback_seconds: loopback_time.as_secs_f64(),
        disk_dir: dir.to_path_buf(),
        disk_write_mib_per_s: mib_per_s(disk_bytes, disk_time),
        disk_bytes,
        fdatasync_per_s: f64::from(sync_rounds) / sync_time.as_secs_f64().max(1e-9),
        fdatasync_p50_ms: sync.p50_ms,
        fdatasync_p99_ms: sync.p99_ms,
    })
}

pub fn mib_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64().max(1e-9)
}

/// Bytes received and the receiver's time from first byte to end of stream.
fn loopback(budget: Duration) -> anyhow::Result<(u64, Duration)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; LOOPBACK_CHUNK];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        Ok((total, first.map_or(Duration::ZERO, |f| f.elapsed())))
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let buf = vec![0x5au8; LOOPBACK_CHUNK];
    let start = Instant::now();
    while start.elapsed() < budget {
        stream.write_all(&buf)?;
    }
    drop(stream);
    let (bytes, time) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("loopback receiver panicked"))??;
    Ok((bytes, time))
}

/// A file removed when dropped.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn create(dir: &Path, what: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(".sluice-bench-{what}-{}", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, file })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn disk_write(dir: &Path, budget: Duration) -> anyhow::Result<(u64, Duration)> {
    let mut f = TempFile::create(dir, "disk")?;
    let buf = vec![0xa5u8; DISK_CHUNK];
    let start = Instant::now();
    let mut written = 0u64;
    while written < DISK_BYTES_MAX && start.elapsed() < budget {
        f.file.write_all(&buf)?;
        written += DISK_CHUNK as u64;
    }
    f.file.sync_data()?;
    Ok((written, start.elapsed()))
}

fn fdatasync_rounds(dir: &Path, budget: Duration) -> anyhow::Result<(u32, Duration, Latency)> {
    let mut f = TempFile::create(dir, "sync")?;
    let buf = vec![0x3cu8; SYNC_CHUNK];
    let mut latency = Latency::new();
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < SYNC_ROUNDS_MAX && (rounds < 10 || start.elapsed() < budget) {
        let t = Instant::now();
        f.file.write_all(&buf)?;
        f.file.sync_data()?;
        latency.record(t.elapsed());
        rounds += 1;
    }
    Ok((rounds, start.elapsed(), latency))
}

impl std::fmt::Display for Ceiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loopback TCP {:.0} MiB/s (1 stream) | disk write+fdatasync {:.0} MiB/s ({} MiB in {}) | \
             64 KiB write+fdatasync {:.0}/s (p50 {:.2} ms, p99 {:.2} ms)",
            self.loopback_mib_per_s,
            self.disk_write_mib_per_s,
            self.disk_bytes / (1024 * 1024),
            self.disk_dir.display(),
            self.fdatasync_per_s,
            self.fdatasync_p50_ms,
            self.fdatasync_p99_ms
        )
    }
}
