//! The cleaner's I/O rate limit (`log.cleaner.io.max.bytes.per.second`,
//! Kafka's `Throttler`): the bytes a cleaning pass reads and writes,
//! together, are kept at or below a rate by sleeping the cleaning thread.
//!
//! ```text
//! account(n):  bytes += n
//!              every CHECK_EVERY of wall time, or once bytes exceed what
//!              the rate allows in one CHECK_EVERY: if bytes / elapsed > rate,
//!              sleep until bytes / (elapsed + sleep) = rate, then start a
//!              new window
//! ```
//!
//! # Invariants
//! - Over any check window the rate is at most `rate` plus one batch (the
//!   accounting happens after each batch is read or written).
//! - A sleep is taken in slices of at most [`SLEEP_SLICE`]; between slices
//!   the stop flag is read, so a broker shutting down waits at most one
//!   slice for its cleaner ([`Throttle::account`] then answers `false`).
//!
//! # References
//! Kafka's `org.apache.kafka.storage.internals.utils.Throttler`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the rate is checked (Kafka's cleaner checks every 300 ms).
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Longest sleep between two reads of the stop flag.
pub const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// Keeps a cleaning pass at or below a byte rate.
#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; `None` is no limit.
    rate: Option<f64>,
    stop: Arc<AtomicBool>,
    window_start: Instant,
    window_bytes: u64,
    /// Time slept in all, for the cleaner's log line and tests.
    slept: Duration,
}

impl Throttle {
    /// A throttle at `bytes_per_second` (no limit unless finite and > 0,
    /// and below `f64::MAX`, Kafka's "unlimited"); `stop` ends its sleeps.
    pub fn new(bytes_per_second: f64, stop: Arc<AtomicBool>) -> Self {
        let limited = bytes_per_second.is_finite() && bytes_per_second > 0.0;
        Self {
            rate: (limited && bytes_per_second < f64::MAX).then_some(bytes_per_second),
            stop,
            window_start: Instant::now(),
            window_bytes: 0,
            slept: Duration::ZERO,
        }
    }

    /// No limit, never stopped (tests, one-off cleanings).
    pub fn unlimited() -> Self {
        Self::new(f64::MAX, Arc::new(AtomicBool::new(false)))
    }

    /// Counts `bytes` read or written; sleeps when the window ran too
    /// fast. False once the stop flag is set: the caller ends its pass.
    pub fn account(&mut self, bytes: u64) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let Some(rate) = self.rate else { return true };
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let elapsed = self.window_start.elapsed();
        // Checked once a window has passed, or once it holds a window's
        // worth of bytes (a fast pass can do all its work in one window).
        let window_allowance = rate * CHECK_EVERY.as_secs_f64();
        if elapsed < CHECK_EVERY && (self.window_bytes as f64) < window_allowance {
            return true;
        }
        // Precision loss of u64 → f64 is irrelevant at byte-rate scale.
        let needed = Duration::from_secs_f64(self.window_bytes as f64 / rate);
        if let Some(mut rest) = needed.checked_sub(elapsed) {
            while !rest.is_zero() {
                if self.stop.load(Ordering::Relaxed) {
                    return false;
                }
                let slice = rest.min(SLEEP_SLICE);
                std::thread::sleep(slice);
                self.slept += slice;
                rest -= slice;
            }
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        !self.stop.load(Ordering::Relaxed)
    }

    /// Time this throttle slept.
    pub fn slept(&self) -> Duration {
        self.slept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_pass_takes_as_long_as_its_bytes_at_the_rate() {
        let stop = Arc::new(AtomicBool::new(false));
        // 400 KB at 1 MB/s: at least ~0.4 s (the last window may be short).
        let mut t = Throttle::new(1_000_000.0, stop);
        let started = Instant::now();
        for _ in 0..100 {
            assert!(t.account(4_000));
        }
        // Close the last window so its bytes are paid for too.
        std::thread::sleep(CHECK_EVERY);
        assert!(t.account(0));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(350), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(t.slept() > Duration::ZERO);
    }

    #[test]
    fn unlimited_never_sleeps_and_stop_ends_a_sleep() {
        let mut free = Throttle::unlimited();
        assert!(free.account(u64::MAX));
        assert_eq!(free.slept(), Duration::ZERO);
        let stop = Arc::new(AtomicBool::new(false));
        // 1 byte/s: the first check would sleep for hours.
        let mut slow = Throttle::new(1.0, Arc::clone(&stop));
        std::thread::sleep(CHECK_EVERY);
        let flag = Arc::clone(&stop);
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        assert!(!slow.account(1_000_000));
        assert!(started.elapsed() < Duration::from_secs(2));
        stopper.join().unwrap();
    }
}
