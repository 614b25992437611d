//! The topic's log on disk, sampled while a scenario runs: how many
//! records and bytes its partition directories hold against how many were
//! appended and how many keys are live — on a compacted topic, whether the
//! cleaner keeps the log near its compacted size — and what cleaning did
//! to each segment (bytes before and after).
//!
//! It needs the broker's data directory on this machine (`run --data-dir`)
//! and reads the Kafka layout, which Sluice and Kafka share:
//! `<data dir>[/<log dir>]/<topic>-<partition>/<20-digit base offset>.log`.
//! Every `run.sample_s` a thread lists those files and walks their batch
//! headers ([`crate::segment_walk`]); a file whose inode, length and
//! modification time are unchanged since the last sample is not walked
//! again, so a sample costs about the batches written since the last one.
//!
//! ```text
//! per sample: segments, .log file bytes (preallocation included), bytes of
//!             whole batches, records held, records appended (the log end
//!             offsets), live / tombstoned keys (crate::key_ledger)
//! per segment: bytes when last seen sealed and never cleaned  ──▶  "before"
//!              bytes once seen cleaned (fewer records than offsets)  ──▶  "after"
//! ```
//!
//! # Caveats
//! - A segment sealed and cleaned between two samples is first seen
//!   cleaned: its "before" is unknown; such segments are counted apart
//!   ([`Cleaning::segments_before_unseen`]) and left out of the bytes.
//! - A segment that disappears (retention, a deleted topic) counts as
//!   cleaned to nothing when it was tracked: the figures are meant for
//!   compact-only topics, where segments are rewritten and never deleted.
//! - Offsets are assumed to start at 0 (a new topic): "records appended"
//!   is the sum of the partitions' log end offsets.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::key_ledger::{KeyCounts, KeyLedger};
use crate::progress::Live;
use crate::segment_walk::{self, SegmentWalk};

/// One sample of the topic's log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogSample {
    /// Seconds since the sampler started (the topic's creation).
    pub t_s: f64,
    /// "preload", "run", "settle", "readback" or "end".
    pub phase: String,
    /// Records the producers had seen acknowledged (preload included).
    pub acked: u64,
    /// Keys by the producers' latest record (none without a key space).
    pub keys: Option<KeyCounts>,
    pub partitions: u64,
    pub segments: u64,
    /// Sizes of the `.log` files, preallocated tails included.
    pub log_file_bytes: u64,
    /// Bytes of whole record batches in them.
    pub batch_bytes: u64,
    /// Records the batches hold.
    pub records: u64,
    /// Records ever appended: the sum of the log end offsets.
    pub appended: u64,
    /// Segments holding fewer records than offsets (cleaned).
    pub segments_cleaned: u64,
    /// Batch bytes cleaning has removed so far ([`Cleaning`]: before − after).
    pub cleaned_away_bytes: u64,
}

/// What cleaning did to the segments it rewrote, over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaning {
    /// Cleaned segments whose uncleaned size was seen.
    pub segments: u64,
    /// Their batch bytes before cleaning, then now.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Their records before cleaning, then now.
    pub records_before: u64,
    pub records_after: u64,
    /// Cleaned segments never seen sealed and uncleaned (not in the bytes).
    pub segments_before_unseen: u64,
}

/// The samples of a run and what they add up to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogReport {
    pub data_dir: PathBuf,
    pub sample_s: f64,
    pub samples: Vec<LogSample>,
    /// The sample with the most batch bytes on disk.
    pub peak: LogSample,
    pub cleaning: Cleaning,
    /// Sampling errors (a file vanishing mid-walk is not one), at most a few.
    pub errors: Vec<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl std::fmt::Display for LogSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} s ({}): {} segments, {} records held of {} appended, {:.1} MiB in batches ({:.1} MiB of .log files)",
            self.t_s,
            self.phase,
            self.segments,
            self.records,
            self.appended,
            self.batch_bytes as f64 / MIB,
            self.log_file_bytes as f64 / MIB
        )?;
        if let Some(k) = self.keys {
            write!(f, "; keys {} live, {} tombstoned", k.live, k.tombstoned)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for LogReport {
    /// The lines of the human summary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(last) = self.samples.last() {
            writeln!(f, "log     : last {last}")?;
        }
        writeln!(f, "  peak  : {}", self.peak)?;
        let c = &self.cleaning;
        write!(
            f,
            "cleaning: {} segments seen cleaned: {:.1} MiB -> {:.1} MiB, {} -> {} records; {} more seen only once cleaned",
            c.segments,
            c.bytes_before as f64 / MIB,
            c.bytes_after as f64 / MIB,
            c.records_before,
            c.records_after,
            c.segments_before_unseen
        )?;
        for e in &self.errors {
            write!(f, "\n  sampling error: {e}")?;
        }
        Ok(())
    }
}

/// Errors kept in the report; later ones are dropped.
const ERRORS_MAX: usize = 5;
/// Samples kept: at 1 s, over two hours of run. Later ones replace the
/// last (the final state is always kept).
const SAMPLES_MAX: usize = 8192;

/// A segment file as last seen.
#[derive(Debug, Clone)]
struct Tracked {
    base: i64,
    /// (inode, length, mtime in ns) of the file the walk was read from.
    identity: (u64, u64, i128),
    walk: SegmentWalk,
    /// Batch bytes and records when last seen sealed and never cleaned.
    uncleaned: Option<(u64, u64)>,
    present: bool,
}

/// The sampling state (walks cached per file, per-segment history).
#[derive(Debug)]
pub struct LogSampler {
    data_dir: PathBuf,
    topic: String,
    segments: HashMap<PathBuf, Tracked>,
}

impl LogSampler {
    pub fn new(data_dir: &Path, topic: &str) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            topic: topic.to_owned(),
            segments: HashMap::new(),
        }
    }

    /// Reads the partition directories now. Fills the on-disk fields of a
    /// [`LogSample`]; the caller sets time, phase and counters.
    pub fn sample(&mut self) -> std::io::Result<LogSample> {
        let mut s = LogSample::default();
        for t in self.segments.values_mut() {
            t.present = false;
        }
        for dir in partition_dirs(&self.data_dir, &self.topic)? {
            s.partitions += 1;
            let files = segment_files(&dir)?;
            let last = files.last().map(|(base, _)| *base);
            let mut log_end = 0;
            for (base, path) in files {
                let Some((walk, file_bytes)) = self.walk(base, &path, Some(base) != last)? else {
                    continue; // gone since the listing (swapped or deleted)
                };
                s.segments += 1;
                s.log_file_bytes += file_bytes;
                s.batch_bytes += walk.bytes;
                s.records += walk.records;
                s.segments_cleaned += u64::from(walk.is_cleaned(base));
                log_end = walk.next_offset.unwrap_or(log_end).max(log_end);
            }
            s.appended += u64::try_from(log_end).unwrap_or(0);
        }
        Ok(s)
    }

    /// Walks `path` unless it is unchanged since the last walk; `None` when
    /// the file is gone. `sealed`: a later segment exists.
    fn walk(
        &mut self,
        base: i64,
        path: &Path,
        sealed: bool,
    ) -> std::io::Result<Option<(SegmentWalk, u64)>> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let identity = (
            meta.ino(),
            meta.len(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        );
        let known = self
            .segments
            .get(path)
            .filter(|t| t.identity == identity && sealed)
            .map(|t| t.walk);
        let walk = match known {
            Some(w) => w,
            None => match segment_walk::walk(path) {
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let t = self
            .segments
            .entry(path.to_owned())
            .or_insert_with(|| Tracked {
                base,
                identity,
                walk,
                uncleaned: None,
                present: true,
            });
        t.identity = identity;
        t.walk = walk;
        t.present = true;
        if sealed && !walk.is_cleaned(base) {
            t.uncleaned = Some((walk.bytes, walk.records));
        }
        Ok(Some((walk, meta.len())))
    }

    /// Bytes before and after cleaning, over every segment seen cleaned
    /// (or gone) so far.
    pub fn cleaning(&self) -> Cleaning {
        let mut c = Cleaning::default();
        for t in self.segments.values() {
            let (bytes, records) = if t.present {
                (t.walk.bytes, t.walk.records)
            } else {
                (0, 0)
            };
            let cleaned = !t.present || t.walk.is_cleaned(t.base);
            match (cleaned, t.uncleaned) {
                (false, _) => {}
                (true, Some((b, r))) => {
                    c.segments += 1;
                    c.bytes_before += b;
                    c.records_before += r;
                    c.bytes_after += bytes;
                    c.records_after += records;
                }
                (true, None) => c.segments_before_unseen += 1,
            }
        }
        c
    }
}

/// The `<topic>-<n>` directories under `data_dir`, or under one of its
/// subdirectories (a log dir inside the data dir).
fn partition_dirs(data_dir: &Path, topic: &str) -> std::io::Result<Vec<PathBuf>> {
    let found = partition_dirs_in(data_dir, topic)?;
    if !found.is_empty() {
        return Ok(found);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.extend(partition_dirs_in(&entry.path(), topic)?);
        }
    }
    Ok(found)
}

fn partition_dirs_in(dir: &Path, topic: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_partition = name
            .to_str()
            .and_then(|n| n.strip_prefix(topic))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_partition && entry.file_type()?.is_dir() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// The `<base offset>.log` files of one partition directory, by base.
fn segment_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(base) = base {
            files.push((base, path));
        }
    }
    files.sort_unstable_by_key(|(base, _)| *base);
    Ok(files)
}

/// A sampling thread; [`SamplerThread::finish`] takes a last sample and
/// returns the report.
pub struct SamplerThread {
    stop: Arc<AtomicBool>,
    phase: Arc<Mutex<&'static str>>,
    thread: std::thread::JoinHandle<LogReport>,
}

/// What a sample reads besides the disk.
pub struct Counters {
    /// Their acknowledged records are summed.
    pub lives: Vec<Arc<Live>>,
    pub ledger: Option<Arc<KeyLedger>>,
}

impl SamplerThread {
    /// Samples `topic` under `data_dir` every `every`, from now on.
    pub fn start(
        data_dir: &Path,
        topic: &str,
        every: Duration,
        counters: Counters,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(Mutex::new("preload"));
        let mut sampler = LogSampler::new(data_dir, topic);
        let (stop2, phase2) = (Arc::clone(&stop), Arc::clone(&phase));
        let mut report = LogReport {
            data_dir: data_dir.to_owned(),
            sample_s: every.as_secs_f64(),
            ..LogReport::default()
        };
        let thread = std::thread::Builder::new()
            .name("log-sampler".into())
            .spawn(move || {
                let start = Instant::now();
                let mut next = start;
                loop {
                    let last = stop2.load(Ordering::Acquire);
                    let phase = if last {
                        "end"
                    } else {
                        phase2.lock().map_or("?", |p| *p)
                    };
                    record(&mut sampler, &mut report, &counters, start, phase);
                    if last {
                        break;
                    }
                    next += every;
                    while Instant::now() < next && !stop2.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(50).min(every));
                    }
                }
                report.cleaning = sampler.cleaning();
                report
            })?;
        Ok(Self {
            stop,
            phase,
            thread,
        })
    }

    pub fn set_phase(&self, phase: &'static str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }

    pub fn finish(self) -> anyhow::Result<LogReport> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the log sampler panicked"))
    }
}

/// Takes one sample into `report`.
fn record(
    sampler: &mut LogSampler,
    report: &mut LogReport,
    counters: &Counters,
    start: Instant,
    phase: &str,
) {
    match sampler.sample() {
        Ok(mut s) => {
            s.t_s = start.elapsed().as_secs_f64();
            s.phase = phase.to_owned();
            s.acked = counters
                .lives
                .iter()
                .map(|l| l.produced.load(Ordering::Relaxed))
                .sum();
            s.keys = counters.ledger.as_ref().map(|l| l.counts());
            let c = sampler.cleaning();
            s.cleaned_away_bytes = c.bytes_before.saturating_sub(c.bytes_after);
            if s.batch_bytes >= report.peak.batch_bytes {
                report.peak = s.clone();
            }
            if report.samples.len() >= SAMPLES_MAX {
                report.samples.pop();
            }
            report.samples.push(s);
        }
        Err(e) if report.errors.len() < ERRORS_MAX => report.errors.push(e.to_string()),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch header spanning `base..base+span` with `records` records
    /// and `body` bytes after the header.
    fn batch(base: i64, span: i32, records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + body];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&i32::try_from(49 + body).unwrap().to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(span - 1).to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    fn write_segment(dir: &Path, base: i64, bytes: &[u8]) {
        std::fs::write(dir.join(format!("{base:020}.log")), bytes).unwrap();
    }

    #[test]
    fn samples_partitions_and_tracks_bytes_before_and_after_cleaning() {
        let data = tempfile::tempdir().unwrap();
        let p0 = data.path().join("t-0");
        let p1 = data.path().join("t-1");
        let other = data.path().join("t-x-0"); // another topic's partition
        for d in [&p0, &p1, &other] {
            std::fs::create_dir(d).unwrap();
        }
        // p0: a sealed segment of 10 records (offsets 0..10), an active one.
        write_segment(&p0, 0, &batch(0, 10, 10, 939));
        let mut active = batch(10, 5, 5, 439);
        active.extend(vec![0u8; 1000]); // preallocated
        write_segment(&p0, 10, &active);
        write_segment(&p1, 0, &batch(0, 3, 3, 39));
        write_segment(&other, 0, &batch(0, 3, 3, 39));

        let mut s = LogSampler::new(data.path(), "t");
        let first = s.sample().unwrap();
        assert_eq!(first.partitions, 2);
        assert_eq!(first.segments, 3);
        assert_eq!(first.records, 18);
        assert_eq!(first.appended, 15 + 3);
        assert_eq!(first.batch_bytes, 1000 + 500 + 100);
        assert_eq!(first.log_file_bytes, 1000 + 1500 + 100);
        assert_eq!(s.cleaning(), Cleaning::default());

        // The cleaner keeps 2 of p0's first 10 records: the same offsets.
        let mut cleaned = batch(0, 8, 1, 80);
        cleaned.extend(batch(8, 2, 1, 19));
        write_segment(&p0, 0, &cleaned);
        let second = s.sample().unwrap();
        assert_eq!(second.records, 10);
        assert_eq!(second.appended, 18);
        assert_eq!(second.segments_cleaned, 1);
        assert_eq!(
            s.cleaning(),
            Cleaning {
                segments: 1,
                bytes_before: 1000,
                bytes_after: 141 + 80,
                records_before: 10,
                records_after: 2,
                segments_before_unseen: 0,
            }
        );
    }

    #[test]
    fn a_segment_first_seen_cleaned_has_no_before() {
        let data = tempfile::tempdir().unwrap();
        let p0 = data.path().join("t-0");
        std::fs::create_dir(&p0).unwrap();
        write_segment(&p0, 0, &batch(0, 10, 2, 100));
        write_segment(&p0, 10, &batch(10, 1, 1, 10));
        let mut s = LogSampler::new(data.path(), "t");
        let sample = s.sample().unwrap();
        assert_eq!(sample.segments_cleaned, 1);
        let c = s.cleaning();
        assert_eq!((c.segments, c.segments_before_unseen), (0, 1));
    }
}
