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

pub struct Latency {
    histogram: Histogram<u64>,
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
        Self { histogram }
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&mut self, ns: u64) {
        self.record_us(ns / 1000);
    }

    fn record_us(&mut self, us: u64) {
        self.histogram.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
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
