//! The admin HTTP endpoint (`admin.listen`, default `127.0.0.1:9644`):
//! Prometheus metrics and health checks for operators.
//!
//! | path | answers |
//! |---|---|
//! | `/metrics` | every metric in the Prometheus text format (`collector.rs`) |
//! | `/health` | 200 `ok` while the process runs (liveness) |
//! | `/ready` | 200 `serving` while clients are served; 503 `starting` / `fenced` / `stopping` otherwise (readiness) |
//!
//! | file | owns |
//! |---|---|
//! | `metrics.rs` | the atomics the request path bumps ([`METRICS`], [`PartitionTraffic`]) |
//! | `collector.rs` | the scrape: counters plus gauges computed from the broker's state |
//! | `process.rs` | `/proc` and `statvfs` figures |
//! | `readiness.rs` | the broker's phase (`/ready`) |
//! | `http.rs` | the axum server |
//!
//! The endpoint starts before the logs are opened, so `/health` answers
//! and `/ready` says `starting` while a large data directory recovers.
//!
//! # Invariants
//! - The request path only bumps atomics (see `metrics.rs`); everything
//!   that needs a lock (partition sizes, offsets) is read at scrape time.
//! - One scrape at a time (a mutex around the encoder), so concurrent
//!   scrapers cannot multiply the scrape's work.

pub mod collector;
pub mod group_lag;
pub mod http;
pub mod metrics;
pub mod process;
pub mod readiness;

use std::sync::{Arc, OnceLock};

pub use metrics::{METRICS, PartitionTraffic};
pub use readiness::{Phase, Readiness, readiness_answer};

use crate::broker::Broker;

/// What the endpoint reads: the phase from the start, the broker once open.
pub struct AdminState {
    pub readiness: Readiness,
    pub broker: OnceLock<Arc<Broker>>,
    /// `metrics.partition.series.enabled`.
    pub partition_series: bool,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("phase", &self.readiness.phase())
            .field("broker_open", &self.broker.get().is_some())
            .field("partition_series", &self.partition_series)
            .finish()
    }
}

impl AdminState {
    /// What `/ready` answers now (`readiness::readiness_answer`).
    pub fn ready(&self) -> (bool, &'static str) {
        let fenced = self
            .broker
            .get()
            .is_some_and(|b| !b.unfenced_in(&b.image()));
        readiness_answer(self.readiness.phase(), fenced)
    }

    pub fn new(partition_series: bool) -> Arc<Self> {
        Arc::new(Self {
            readiness: Readiness::default(),
            broker: OnceLock::new(),
            partition_series,
        })
    }
}
