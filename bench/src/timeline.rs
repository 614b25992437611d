//! The run's timeline, shared by every worker: when it starts, when the
//! warm-up ends (nothing before it is counted), when producers stop, and
//! the wall-clock time of the start (to turn intended send instants into
//! the nanosecond stamps written into records).
//!
//! ```text
//! start ──warm-up──▶ warmup_end ──── measured window ────▶ end ──drain──▶ consumers stop
//! ```

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Timeline {
    pub start: Instant,
    pub warmup_end: Instant,
    pub end: Instant,
    /// How long tailing consumers may read after `end`.
    pub drain: Duration,
    /// Nanoseconds since the Unix epoch at `start`.
    pub start_wall_ns: u64,
}

impl Timeline {
    pub fn new(warmup: Duration, duration: Duration, drain: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            warmup_end: start + warmup,
            end: start + duration,
            drain,
            start_wall_ns: crate::stamp::now_ns(),
        }
    }

    /// The wall-clock stamp of `at`.
    pub fn wall_ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start);
        self.start_wall_ns
            .saturating_add(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn warmup_end_wall_ns(&self) -> u64 {
        self.wall_ns(self.warmup_end)
    }

    pub fn end_wall_ns(&self) -> u64 {
        self.wall_ns(self.end)
    }

    /// The measured window: from the warm-up's end to the last completion
    /// of a record sent inside the window (`None`: the planned end).
    pub fn measured(&self, last_completion: Option<Instant>) -> Duration {
        last_completion
            .unwrap_or(self.end)
            .saturating_duration_since(self.warmup_end)
    }
}
