//! Live counters every worker bumps, and their display: an `indicatif` bar
//! with the current rates when stderr is a terminal, a plain line every
//! few seconds when it is not (CI logs, `2> file`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Notify;

/// Counters since the start of the run, warm-up included.
#[derive(Debug, Default)]
pub struct Live {
    pub produced: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
}

impl Live {
    pub fn add_produced(&self, records: u64, bytes: u64) {
        self.produced.fetch_add(records, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_consumed(&self, records: u64, bytes: u64) {
        self.consumed.fetch_add(records, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; 4] {
        [
            self.produced.load(Ordering::Relaxed),
            self.produced_bytes.load(Ordering::Relaxed),
            self.consumed.load(Ordering::Relaxed),
            self.consumed_bytes.load(Ordering::Relaxed),
        ]
    }
}

/// The display task; stopped by [`Progress::finish`] (or when dropped).
pub struct Progress {
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Shows `live` for a phase expected to last `expected`.
    pub fn start(label: &str, live: Arc<Live>, expected: Duration) -> Self {
        let stop = Arc::new(Notify::new());
        let terminal = std::io::stderr().is_terminal();
        let tick = if terminal {
            Duration::from_millis(500)
        } else if expected < Duration::from_secs(20) {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let label = label.to_owned();
        let task = tokio::spawn(show(
            label,
            live,
            expected,
            tick,
            terminal,
            Arc::clone(&stop),
        ));
        Self {
            stop,
            task: Some(task),
        }
    }

    pub async fn finish(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

async fn show(
    label: String,
    live: Arc<Live>,
    expected: Duration,
    tick: Duration,
    terminal: bool,
    stop: Arc<Notify>,
) {
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(u64::try_from(expected.as_millis()).unwrap_or(u64::MAX));
        if let Ok(style) = ProgressStyle::with_template("{prefix} {elapsed:>4} [{bar:25}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.clone());
        bar
    });
    let start = Instant::now();
    let mut last = (start, live.snapshot());
    let mut interval = tokio::time::interval(tick);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.notified() => break,
        }
        let now = Instant::now();
        let snap = live.snapshot();
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
        let rate = |i: usize| {
            (snap.get(i).copied().unwrap_or(0) - last.1.get(i).copied().unwrap_or(0)) as f64 / secs
        };
        let msg = format!(
            "produce {:>10.0} rec/s {:>8.1} MiB/s | consume {:>10.0} rec/s {:>8.1} MiB/s | total {} / {}",
            rate(0),
            rate(1) / MIB,
            rate(2),
            rate(3) / MIB,
            snap.first().copied().unwrap_or(0),
            snap.get(2).copied().unwrap_or(0),
        );
        match &bar {
            Some(bar) => {
                bar.set_position(
                    u64::try_from(now.duration_since(start).as_millis()).unwrap_or(u64::MAX),
                );
                bar.set_message(msg);
            }
            None => eprintln!(
                "[{label} {:>6.1}s] {msg}",
                now.duration_since(start).as_secs_f64()
            ),
        }
        last = (now, snap);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

const MIB: f64 = 1024.0 * 1024.0;
