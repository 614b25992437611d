//! Latency histograms (hdrhistogram, microseconds, 3 significant digits,
//! up to one hour) and their summary as p50/p90/p99/p99.9/max in ms.
//!
//! Coordinated omission: an open-loop producer measures each record from
//! its *intended* send time (see `producer.rs`), so a stalled broker shows
//! up as latency for every record that should have been sent during the
//! stall, not as one slow record followed by a quiet pause.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency kept exactly (larger values are clamped to it).
const HIGHEST_US: u64 = 3_600_000_000;

/// A histogram with a one-value run in front: consecutive equal samples
/// (the records of one batch acknowledged or fetched together, sent in
/// one clock reading — the common case with small records) are recorded
/// with one `record_n`, not one histogram update each.
pub struct Latency {
    histogram: Histogram<u64>,
    /// The run not yet in `histogram`: (microseconds, count).
    run: (u64, u64),
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts
        let histogram =
            Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds");
        Self {
            histogram,
            run: (0, 0),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&mut self, ns: u64) {
        self.record_us(ns / 1000);
    }

    fn record_us(&mut self, us: u64) {
        let us = us.max(1);
        match &mut self.run {
            (value, count) if *value == us => *count += 1,
            run => {
                let (value, count) = std::mem::replace(run, (us, 1));
                if count > 0 {
                    self.histogram.saturating_record_n(value, count);
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.histogram.add(&other.histogram);
        let (value, count) = other.run;
        if count > 0 {
            self.histogram.saturating_record_n(value, count);
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let mut whole = None;
        let h = match self.run {
            (_, 0) => &self.histogram,
            (value, count) => {
                let h = whole.insert(self.histogram.clone());
                h.saturating_record_n(value, count);
                &*h
            }
        };
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Percentiles in milliseconds; all zero when nothing was recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2} ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_equal_samples_count_as_each_sample_would() {
        let samples: Vec<u64> = (0..5000u64)
            .map(|i| [0, 7, 7, 7, 1500, 1500, 90_000][(i % 7) as usize] + i / 700)
            .collect();
        let mut by_runs = Latency::new();
        let mut one_by_one = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3).unwrap();
        for &us in &samples {
            by_runs.record_us(us);
            one_by_one.saturating_record(us.max(1));
        }
        let want = Latency {
            histogram: one_by_one,
            run: (0, 0),
        }
        .summary();
        let got = by_runs.summary();
        assert_eq!(got.count, 5000);
        assert_eq!(format!("{got}"), format!("{want}"));
        assert_eq!(got.mean_ms, want.mean_ms);
        // Merged, the pending run of each side is counted once.
        let mut merged = Latency::new();
        merged.merge(&by_runs);
        merged.merge(&by_runs);
        assert_eq!(merged.summary().count, 10_000);
    }
}
