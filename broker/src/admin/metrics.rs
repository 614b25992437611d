//! The counters the data path bumps: plain atomics in one process-wide
//! static, read and encoded only when `/metrics` is scraped.
//!
//! | what | where it is counted | cost on the path |
//! |---|---|---|
//! | requests and latency per API and version, closed requests | `dispatch.rs` (one call per request) | about 4 relaxed atomic adds and a bucket search over 16 bounds |
//! | connections accepted / refused, open | `server.rs` accept loop | 1 atomic add per connection |
//! | bytes and records in, bytes and records out (consumer fetches only), per partition | `handlers/produce.rs`, `handlers/fetch.rs` into [`PartitionTraffic`] | 2 relaxed atomic adds per partition per request (records out are summed by the read's own walk of the batch headers) |
//! | fdatasync latency, partitions per group commit | `replica/flusher.rs` (one call per flush round) | a few atomic adds per round |
//! | produce requests and bytes waiting for a flush or replication, parked long-poll fetches | `handlers/produce.rs`, `handlers/fetch.rs`, `handlers/replica_fetch.rs` through [`Parked`] | 1–2 atomic adds when a request parks, the same when it leaves |
//!
//! Everything else (offsets, sizes, lag, disk, descriptors, process) is
//! computed at scrape time from the broker's own state (`collector.rs`).
//!
//! # Invariants
//! - No lock, allocation or copy on the request path: every update is a
//!   relaxed `fetch_add` on a preallocated atomic. A scrape may see one
//!   counter of a histogram ahead of another (no snapshot); Prometheus
//!   tolerates that, and each counter on its own never goes backwards.
//! - Bounded: the tables are fixed-size arrays; API keys or versions past
//!   them are counted in the `other` slot, never dropped, never grown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// False in a build with the `request-metrics-off` feature: every update
/// on the request path (requests, latency, traffic, parked requests)
/// returns at once and is compiled out, so `sluice-bench` can compare a
/// broker with and without them (docs/benchmarks.md). Scrapes still work
/// and show zeros.
pub const REQUEST_METRICS: bool = !cfg!(feature = "request-metrics-off");

/// API keys counted one by one; Kafka's keys are below 100.
pub const API_KEYS: usize = 128;
/// Versions counted one by one per API; higher versions share the last slot.
pub const API_VERSIONS: usize = 24;

/// Upper bounds, in seconds, of the latency histogram buckets (request
/// handling and fdatasync): 50 µs to 10 s.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Upper bounds of the "partitions per group-commit round" histogram.
pub const FLUSH_BATCH_BUCKETS: [f64; 10] =
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A histogram of fixed buckets made of atomics (`prometheus-client`'s own
/// takes a lock per observation). Bucket counts are not cumulative here;
/// the encoder accumulates them.
#[derive(Debug)]
pub struct AtomicHistogram<const N: usize> {
    bounds: &'static [f64; N],
    /// `N` buckets then the `+Inf` one.
    buckets: [AtomicU64; 17],
    count: AtomicU64,
    /// Sum of observations in millionths of the unit (µs for seconds).
    sum_micros: AtomicU64,
}

impl<const N: usize> AtomicHistogram<N> {
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        assert!(N < 17, "a histogram has at most 16 finite buckets");
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; 17],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|b| value <= *b).unwrap_or(N);
        if let Some(bucket) = self.buckets.get(slot) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Negative and NaN observations count as 0 towards the sum.
        let micros = (value * 1e6).max(0.0) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// `(sum, count, per-bucket counts)` as `prometheus-client`'s
    /// `encode_histogram` wants them: it makes the buckets cumulative
    /// itself (passing cumulative counts exported every bucket cumulated
    /// twice, the `+Inf` one many times `_count`).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(N + 1);
        for (i, bucket) in self.buckets.iter().enumerate().take(N + 1) {
            let in_bucket = bucket.load(Ordering::Relaxed);
            count += in_bucket;
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, in_bucket));
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        // The count is the sum of the buckets, so it always agrees with
        // the encoded +Inf bucket.
        (sum, count, buckets)
    }
}

/// Requests and their latency per (API key, version).
///
/// The latency table is 128 × 24 histograms of 160 bytes (480 KiB of
/// static memory in the binary's data section; a page is copied into the
/// process only when a request of an API/version on it is answered); a scrape
/// writes only the (API, version) pairs answered at least once, so the
/// series are bounded by what clients send, at most 24 per API.
#[derive(Debug)]
pub struct RequestMetrics {
    count: [[AtomicU64; API_VERSIONS]; API_KEYS],
    /// Requests that closed the connection instead of being answered
    /// (undecodable, unserved version, response that does not encode).
    closed: [AtomicU64; API_KEYS],
    latency: [[AtomicHistogram<16>; API_VERSIONS]; API_KEYS],
}

impl RequestMetrics {
    const fn new() -> Self {
        Self {
            count: [const { [const { AtomicU64::new(0) }; API_VERSIONS] }; API_KEYS],
            closed: [const { AtomicU64::new(0) }; API_KEYS],
            latency: [const { [const { AtomicHistogram::new(&LATENCY_BUCKETS_SECONDS) }; API_VERSIONS] };
                API_KEYS],
        }
    }

    fn slot(api_key: i16) -> usize {
        usize::try_from(api_key)
            .unwrap_or(API_KEYS - 1)
            .min(API_KEYS - 1)
    }

    fn version_slot(version: i16) -> usize {
        usize::try_from(version)
            .unwrap_or(API_VERSIONS - 1)
            .min(API_VERSIONS - 1)
    }

    /// One request of `api_key` v`version` arrived.
    pub fn received(&self, api_key: i16, version: i16) {
        if !REQUEST_METRICS {
            return;
        }
        if let Some(c) = self
            .count
            .get(Self::slot(api_key))
            .and_then(|row| row.get(Self::version_slot(version)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request of `api_key` v`version` was answered `elapsed` after it
    /// was read.
    pub fn answered(&self, api_key: i16, version: i16, elapsed: Duration) {
        if !REQUEST_METRICS {
            return;
        }
        if let Some(h) = self
            .latency
            .get(Self::slot(api_key))
            .and_then(|row| row.get(Self::version_slot(version)))
        {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// A request of `api_key` closed its connection instead of an answer.
    pub fn closed(&self, api_key: i16) {
        if let Some(c) = self.closed.get(Self::slot(api_key)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Non-zero `(api_key, version, count)`.
    pub fn counts(&self) -> impl Iterator<Item = (usize, usize, u64)> + '_ {
        self.count.iter().enumerate().flat_map(|(api, row)| {
            row.iter().enumerate().filter_map(move |(v, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((api, v, n))
            })
        })
    }

    /// Non-zero `(api_key, closed)`.
    pub fn closed_counts(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.closed.iter().enumerate().filter_map(|(api, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then_some((api, n))
        })
    }

    /// `(api_key, version, histogram)` of the (API, version) pairs that
    /// were answered at least once.
    pub fn latencies(&self) -> impl Iterator<Item = (usize, usize, &AtomicHistogram<16>)> + '_ {
        self.latency.iter().enumerate().flat_map(|(api, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, h)| h.count.load(Ordering::Relaxed) > 0)
                .map(move |(v, h)| (api, v, h))
        })
    }
}

/// Connections over the broker's life.
#[derive(Debug)]
pub struct ConnectionMetrics {
    pub accepted: AtomicU64,
    pub refused_max_connections: AtomicU64,
    pub refused_max_connections_per_ip: AtomicU64,
    pub closed: AtomicU64,
}

impl ConnectionMetrics {
    /// A connection was accepted and is being served.
    pub fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A served connection ended.
    pub fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was refused over a quota.
    pub fn refused(&self, why: crate::connection_quota::Refused) {
        use crate::connection_quota::Refused;
        let counter = match why {
            Refused::MaxConnections { .. } => &self.refused_max_connections,
            Refused::MaxConnectionsPerIp { .. } => &self.refused_max_connections_per_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Group commit (fdatasync) rounds.
#[derive(Debug)]
pub struct FlushMetrics {
    /// Seconds each partition's fdatasync took.
    pub sync_seconds: AtomicHistogram<16>,
    /// Partitions synced per group-commit round.
    pub round_partitions: AtomicHistogram<10>,
    pub failures: AtomicU64,
}

impl FlushMetrics {
    /// One partition's fdatasync took `elapsed` and succeeded or not.
    pub fn synced(&self, elapsed: Duration, ok: bool) {
        self.sync_seconds.observe(elapsed.as_secs_f64());
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One group-commit round covered `partitions` partitions.
    pub fn round(&self, partitions: usize) {
        self.round_partitions.observe(partitions as f64);
    }
}

/// ISR changes this broker made as a leader and the controller applied
/// (Kafka's `IsrShrinksPerSec` / `IsrExpandsPerSec`, as counters).
#[derive(Debug)]
pub struct ReplicationMetrics {
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
}

impl ReplicationMetrics {
    /// An ISR change from `before` to `after` members was applied.
    pub fn isr_changed(&self, before: usize, after: usize) {
        let counter = if after < before {
            &self.isr_shrinks
        } else {
            &self.isr_expands
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests parked in the broker (Kafka's purgatories): answered later,
/// when their data is durable or replicated, or when records arrive.
#[derive(Debug)]
pub struct WaitingMetrics {
    /// Produce requests waiting for acks (a flush, or the high watermark).
    pub produce_requests: AtomicU64,
    /// Record batch bytes of those requests.
    pub produce_bytes: AtomicU64,
    /// Consumer fetches parked until `min_bytes` arrive or `max_wait_ms`.
    pub consumer_fetches: AtomicU64,
    /// Follower (replica) fetches parked likewise.
    pub follower_fetches: AtomicU64,
}

impl WaitingMetrics {
    /// A produce request of `bytes` batch bytes waits for its acks until
    /// the returned guard is dropped (answered, timed out, or its
    /// connection gone).
    pub fn produce(&'static self, bytes: u64) -> Parked {
        Parked::hold(&self.produce_requests, Some((&self.produce_bytes, bytes)))
    }

    /// A long-poll fetch is parked until the returned guard is dropped.
    pub fn fetch(&'static self, follower: bool) -> Parked {
        let count = if follower {
            &self.follower_fetches
        } else {
            &self.consumer_fetches
        };
        Parked::hold(count, None)
    }
}

/// One parked request counted in [`WaitingMetrics`]; uncounted on drop.
#[derive(Debug)]
pub struct Parked {
    count: &'static AtomicU64,
    bytes: Option<(&'static AtomicU64, u64)>,
}

impl Parked {
    fn hold(count: &'static AtomicU64, bytes: Option<(&'static AtomicU64, u64)>) -> Self {
        if !REQUEST_METRICS {
            return Self { count, bytes: None };
        }
        count.fetch_add(1, Ordering::Relaxed);
        if let Some((gauge, n)) = bytes {
            gauge.fetch_add(n, Ordering::Relaxed);
        }
        Self { count, bytes }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if !REQUEST_METRICS {
            return;
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        if let Some((gauge, n)) = self.bytes {
            gauge.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// Every counter of the process.
#[derive(Debug)]
pub struct Metrics {
    pub requests: RequestMetrics,
    pub connections: ConnectionMetrics,
    pub flush: FlushMetrics,
    pub replication: ReplicationMetrics,
    pub waiting: WaitingMetrics,
}

/// The process's counters (one broker per process; tests that start
/// several in one process share them).
pub static METRICS: Metrics = Metrics {
    requests: RequestMetrics::new(),
    connections: ConnectionMetrics {
        accepted: AtomicU64::new(0),
        refused_max_connections: AtomicU64::new(0),
        refused_max_connections_per_ip: AtomicU64::new(0),
        closed: AtomicU64::new(0),
    },
    flush: FlushMetrics {
        sync_seconds: AtomicHistogram::new(&LATENCY_BUCKETS_SECONDS),
        round_partitions: AtomicHistogram::new(&FLUSH_BATCH_BUCKETS),
        failures: AtomicU64::new(0),
    },
    replication: ReplicationMetrics {
        isr_shrinks: AtomicU64::new(0),
        isr_expands: AtomicU64::new(0),
    },
    waiting: WaitingMetrics {
        produce_requests: AtomicU64::new(0),
        produce_bytes: AtomicU64::new(0),
        consumer_fetches: AtomicU64::new(0),
        follower_fetches: AtomicU64::new(0),
    },
};

/// Traffic of one partition, owned by its `replica::Partition` and summed
/// per topic at scrape time.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

/// A snapshot of [`PartitionTraffic`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

impl PartitionTraffic {
    /// A produced batch of `bytes` holding `records` records was appended.
    pub fn produced(&self, bytes: usize, records: i64) {
        if !REQUEST_METRICS {
            return;
        }
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.records_in
            .fetch_add(u64::try_from(records).unwrap_or(0), Ordering::Relaxed);
    }

    /// A consumer fetch is sending `bytes` of this partition's batches,
    /// holding `records` records (whole batches: the first may start below
    /// the fetch offset). Follower fetches are not counted here.
    pub fn fetched(&self, bytes: u64, records: u64) {
        if !REQUEST_METRICS {
            return;
        }
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_requests_are_counted_while_the_guard_lives() {
        static W: WaitingMetrics = WaitingMetrics {
            produce_requests: AtomicU64::new(0),
            produce_bytes: AtomicU64::new(0),
            consumer_fetches: AtomicU64::new(0),
            follower_fetches: AtomicU64::new(0),
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let a = W.produce(100);
        let b = W.produce(50);
        let f = W.fetch(false);
        let g = W.fetch(true);
        assert_eq!(
            (load(&W.produce_requests), load(&W.produce_bytes)),
            (2, 150)
        );
        assert_eq!(
            (load(&W.consumer_fetches), load(&W.follower_fetches)),
            (1, 1)
        );
        drop((a, f, g));
        assert_eq!((load(&W.produce_requests), load(&W.produce_bytes)), (1, 50));
        assert_eq!(
            (load(&W.consumer_fetches), load(&W.follower_fetches)),
            (0, 0)
        );
        drop(b);
        assert_eq!((load(&W.produce_requests), load(&W.produce_bytes)), (0, 0));
    }

    #[test]
    fn histogram_snapshot_gives_per_bucket_counts_that_sum_to_the_count() {
        static H: AtomicHistogram<10> = AtomicHistogram::new(&FLUSH_BATCH_BUCKETS);
        for v in [1.0, 3.0, 3.0, 5000.0] {
            H.observe(v);
        }
        let (sum, count, buckets) = H.snapshot();
        assert_eq!(count, 4);
        assert!((sum - 5007.0).abs() < 1e-6, "{sum}");
        assert_eq!(buckets.first(), Some(&(1.0, 1)));
        assert_eq!(buckets.get(1), Some(&(2.0, 0)));
        assert_eq!(buckets.get(2), Some(&(4.0, 2)));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), count);
    }

    #[test]
    fn out_of_table_keys_and_versions_land_in_the_last_slot() {
        let m = RequestMetrics::new();
        m.received(0, 9);
        m.received(-3, 900);
        m.received(500, 1);
        let counts: Vec<_> = m.counts().collect();
        assert_eq!(
            counts,
            [
                (0, 9, 1),
                (API_KEYS - 1, 1, 1),
                (API_KEYS - 1, API_VERSIONS - 1, 1)
            ]
        );
    }

    #[test]
    fn latency_is_kept_per_api_and_version() {
        let m = RequestMetrics::new();
        m.answered(1, 12, Duration::from_millis(3));
        m.answered(1, 12, Duration::from_millis(30));
        m.answered(1, 4, Duration::from_micros(10));
        m.answered(3, 900, Duration::from_secs(1));
        let got: Vec<_> = m
            .latencies()
            .map(|(api, v, h)| (api, v, h.snapshot().1))
            .collect();
        assert_eq!(got, [(1, 4, 1), (1, 12, 2), (3, API_VERSIONS - 1, 1)]);
    }
}
