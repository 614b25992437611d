//! What `/metrics` reports: the counters of `metrics.rs`, and gauges
//! computed at scrape time from the broker's own state, encoded in the
//! Prometheus text format by `prometheus-client`.
//!
//! Names follow Prometheus conventions: `sluice_` prefix, base units in
//! the name (`_bytes`, `_seconds`), `_total` on counters (added by the
//! encoder), one metric per quantity with labels for its dimensions.
//!
//! # Limits
//! - Series per partition (`sluice_partition_*`) are written only with
//!   `metrics.partition.series.enabled`, and at most
//!   [`PARTITION_SERIES_MAX`] partitions' worth, so a scrape of a broker
//!   with 10 000+ partitions stays bounded; per-topic sums are always
//!   written (one series per topic). Consumer-group lag
//!   (`sluice_consumer_group_lag`) is per-partition too: same switch, its
//!   own cap (`group_lag.rs`).
//! - Request series: at most one per (API key, version) ever received.
//!
//! # Caveats
//! - Per-topic traffic counters live in each hosted partition: they start
//!   at 0 when the broker starts and vanish with a deleted topic
//!   (Prometheus treats both as counter resets).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::AdminState;
use super::group_lag::{GROUP_LAG_SERIES_MAX, group_lags};
use super::metrics::{AtomicHistogram, METRICS, Traffic};
use super::process::{DiskUsage, ProcessStats};
use crate::broker::Broker;

/// Most partitions that get their own series in one scrape.
pub const PARTITION_SERIES_MAX: usize = 10_000;

/// The collector registered with the scrape registry.
#[derive(Debug)]
pub struct BrokerCollector {
    pub state: Arc<AdminState>,
}

impl prometheus_client::collector::Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        gauge(
            e,
            "sluice_ready",
            "1 while the broker serves clients (what /ready answers).",
            i64::from(self.state.ready().0),
        )?;
        requests(e)?;
        connections(e)?;
        flush(e)?;
        waiting(e)?;
        process(e)?;
        replication_counters(e)?;
        if let Some(broker) = self.state.broker.get() {
            partitions(e, broker, self.state.partition_series)?;
            replication(e, broker, self.state.partition_series)?;
            broker_state(e, broker)?;
        }
        Ok(())
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(m)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

fn gauge_f(e: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

fn histogram<const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &AtomicHistogram<N>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let (sum, count, buckets) = h.snapshot();
    m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// Kafka's name of an API key (`Produce`, `Fetch`, …), or its number.
fn api_name(key: usize) -> String {
    i16::try_from(key)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| key.to_string(), |k| format!("{k:?}"))
}

fn requests(e: &mut DescriptorEncoder) -> fmt::Result {
    let r = &METRICS.requests;
    let mut m = e.encode_descriptor(
        "sluice_requests",
        "Requests received, per API and version.",
        None,
        MetricType::Counter,
    )?;
    for (api, version, n) in r.counts() {
        let labels = [("api", api_name(api)), ("version", version.to_string())];
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    let mut m = e.encode_descriptor(
        "sluice_request_errors",
        "Requests that closed their connection instead of being answered (undecodable, unserved version), per API.",
        None,
        MetricType::Counter,
    )?;
    for (api, n) in r.closed_counts() {
        let labels = [("api", api_name(api))];
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    let mut m = e.encode_descriptor(
        "sluice_request_duration_seconds",
        "Time from a request's last byte read to its response ready to write, per API and version (includes acks=all and fetch waits).",
        None,
        MetricType::Histogram,
    )?;
    for (api, version, h) in r.latencies() {
        let labels = [("api", api_name(api)), ("version", version.to_string())];
        let (sum, count, buckets) = h.snapshot();
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

fn connections(e: &mut DescriptorEncoder) -> fmt::Result {
    let c = &METRICS.connections;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (accepted, closed) = (load(&c.accepted), load(&c.closed));
    counter(
        e,
        "sluice_connections_accepted",
        "Client connections accepted and served.",
        accepted,
    )?;
    let mut m = e.encode_descriptor(
        "sluice_connections_refused",
        "Client connections closed at once because a quota was full, per quota.",
        None,
        MetricType::Counter,
    )?;
    for (quota, n) in [
        ("max.connections", load(&c.refused_max_connections)),
        (
            "max.connections.per.ip",
            load(&c.refused_max_connections_per_ip),
        ),
    ] {
        ConstCounter::new(n).encode(m.encode_family(&[("quota", quota)])?)?;
    }
    gauge(
        e,
        "sluice_connections",
        "Client connections open now.",
        i64::try_from(accepted.saturating_sub(closed)).unwrap_or(i64::MAX),
    )
}

fn flush(e: &mut DescriptorEncoder) -> fmt::Result {
    let f = &METRICS.flush;
    histogram(
        e,
        "sluice_flush_duration_seconds",
        "Time of one partition's fdatasync in a group commit.",
        &f.sync_seconds,
    )?;
    histogram(
        e,
        "sluice_flush_round_partitions",
        "Partitions synced by one group-commit round.",
        &f.round_partitions,
    )?;
    counter(
        e,
        "sluice_flush_failures",
        "fdatasync calls that failed (each takes its partition offline).",
        f.failures.load(std::sync::atomic::Ordering::Relaxed),
    )
}

fn waiting(e: &mut DescriptorEncoder) -> fmt::Result {
    let w = &METRICS.waiting;
    let load = |a: &std::sync::atomic::AtomicU64| {
        i64::try_from(a.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
    };
    gauge(
        e,
        "sluice_produce_waiting_requests",
        "Produce requests waiting for their acks (a flush, or replication to the ISR).",
        load(&w.produce_requests),
    )?;
    gauge(
        e,
        "sluice_produce_waiting_bytes",
        "Record batch bytes of the produce requests waiting for their acks.",
        load(&w.produce_bytes),
    )?;
    let mut m = e.encode_descriptor(
        "sluice_fetch_waiting_requests",
        "Long-poll fetches parked until min_bytes arrive or max_wait_ms passes, per kind (consumer, follower).",
        None,
        MetricType::Gauge,
    )?;
    for (kind, n) in [
        ("consumer", load(&w.consumer_fetches)),
        ("follower", load(&w.follower_fetches)),
    ] {
        ConstGauge::new(n).encode(m.encode_family(&[("kind", kind)])?)?;
    }
    Ok(())
}

fn process(e: &mut DescriptorEncoder) -> fmt::Result {
    let p = ProcessStats::read();
    if let Some(v) = p.cpu_seconds {
        let m = e.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(v).encode(m)?;
    }
    if let Some(v) = p.resident_memory_bytes {
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size.",
            v,
        )?;
    }
    if let Some(v) = p.virtual_memory_bytes {
        gauge(e, "process_virtual_memory_bytes", "Virtual memory size.", v)?;
    }
    if let Some(v) = p.start_time_seconds {
        gauge_f(
            e,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch.",
            v,
        )?;
    }
    if let Some(v) = p.open_fds {
        gauge(e, "process_open_fds", "Open file descriptors.", v)?;
    }
    if let Some(v) = p.max_fds {
        gauge(
            e,
            "process_max_fds",
            "Most file descriptors the process may open (RLIMIT_NOFILE).",
            v,
        )?;
    }
    if let Some(v) = p.memory_maps {
        gauge(
            e,
            "sluice_memory_maps",
            "Memory mappings of the process (segments and indexes are mapped).",
            v,
        )?;
    }
    if let Some(v) = p.memory_maps_max {
        gauge(
            e,
            "sluice_memory_maps_max",
            "Most mappings the kernel allows (vm.max_map_count).",
            v,
        )?;
    }
    Ok(())
}

/// One hosted partition as the scrape sees it.
struct PartitionRow {
    topic: Arc<str>,
    index: i32,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    size_bytes: u64,
    failed: bool,
    traffic: Traffic,
}

fn partition_rows(broker: &Broker) -> Vec<PartitionRow> {
    let mut rows: Vec<PartitionRow> = broker
        .replicas()
        .all_partitions()
        .into_iter()
        .map(|p| {
            let progress = p.progress();
            // Under the partition's lock for two reads; a failed log
            // reports what progress knows.
            let (log_end_offset, size_bytes) =
                p.end_and_size().unwrap_or((progress.high_watermark, 0));
            PartitionRow {
                topic: Arc::clone(p.topic()),
                index: p.index(),
                log_start_offset: progress.log_start_offset,
                log_end_offset,
                high_watermark: progress.high_watermark,
                size_bytes,
                failed: progress.failed,
                traffic: p.traffic().snapshot(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.topic.cmp(&b.topic).then(a.index.cmp(&b.index)));
    rows
}

fn partitions(e: &mut DescriptorEncoder, broker: &Broker, per_partition: bool) -> fmt::Result {
    let rows = partition_rows(broker);
    topic_traffic(e, &rows)?;
    let offline = rows.iter().filter(|r| r.failed).count();
    let size: u64 = rows.iter().map(|r| r.size_bytes).sum();
    gauge(
        e,
        "sluice_partitions",
        "Partitions hosted by this broker.",
        rows.len() as i64,
    )?;
    gauge(
        e,
        "sluice_partitions_offline",
        "Hosted partitions whose log directory failed (answering KAFKA_STORAGE_ERROR).",
        offline as i64,
    )?;
    gauge(
        e,
        "sluice_log_size_bytes",
        "Bytes of all hosted partition logs.",
        i64::try_from(size).unwrap_or(i64::MAX),
    )?;
    if !per_partition {
        return Ok(());
    }
    let shown = rows.iter().take(PARTITION_SERIES_MAX);
    type Field = fn(&PartitionRow) -> i64;
    let series: [(&str, &str, Field); 4] = [
        (
            "sluice_partition_log_start_offset",
            "First offset still in the log.",
            |r| r.log_start_offset,
        ),
        (
            "sluice_partition_log_end_offset",
            "Offset the next appended record gets.",
            |r| r.log_end_offset,
        ),
        (
            "sluice_partition_high_watermark",
            "Offset up to which records are committed and visible to consumers.",
            |r| r.high_watermark,
        ),
        (
            "sluice_partition_size_bytes",
            "Bytes of the partition's segments.",
            |r| i64::try_from(r.size_bytes).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, field) in series {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for r in shown.clone() {
            let labels = [
                ("topic", r.topic.to_string()),
                ("partition", r.index.to_string()),
            ];
            ConstGauge::new(field(r)).encode(m.encode_family(&labels)?)?;
        }
    }
    consumer_group_lag(e, broker, &rows)
}

/// `sluice_consumer_group_lag` (see `group_lag.rs`); nothing while the
/// coordinator is loading or stopped.
fn consumer_group_lag(
    e: &mut DescriptorEncoder,
    broker: &Broker,
    rows: &[PartitionRow],
) -> fmt::Result {
    let Ok(committed) = broker
        .groups()
        .committed_offsets(broker.replicas(), GROUP_LAG_SERIES_MAX)
    else {
        return Ok(());
    };
    let high_watermarks: HashMap<(&str, i32), i64> = rows
        .iter()
        .map(|r| ((&*r.topic, r.index), r.high_watermark))
        .collect();
    let mut m = e.encode_descriptor(
        "sluice_consumer_group_lag",
        "Records between a group's committed offset and the high watermark, per group and hosted partition.",
        None,
        MetricType::Gauge,
    )?;
    for l in group_lags(committed, &high_watermarks) {
        let labels = [
            ("group", l.group),
            ("topic", l.topic),
            ("partition", l.partition.to_string()),
        ];
        ConstGauge::new(l.lag).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn topic_traffic(e: &mut DescriptorEncoder, rows: &[PartitionRow]) -> fmt::Result {
    let mut topics: Vec<(Arc<str>, Traffic)> = Vec::new();
    for r in rows {
        match topics.last_mut() {
            Some((t, sum)) if *t == r.topic => {
                sum.bytes_in += r.traffic.bytes_in;
                sum.records_in += r.traffic.records_in;
                sum.bytes_out += r.traffic.bytes_out;
                sum.records_out += r.traffic.records_out;
            }
            _ => topics.push((Arc::clone(&r.topic), r.traffic)),
        }
    }
    type Field = fn(&Traffic) -> u64;
    let series: [(&str, &str, Field); 4] = [
        (
            "sluice_topic_bytes_in",
            "Record batch bytes appended by producers, per topic.",
            |t| t.bytes_in,
        ),
        (
            "sluice_topic_records_in",
            "Records appended by producers, per topic.",
            |t| t.records_in,
        ),
        (
            "sluice_topic_bytes_out",
            "Record batch bytes sent to consumers (not followers), per topic.",
            |t| t.bytes_out,
        ),
        (
            "sluice_topic_records_out",
            "Records sent to consumers (not followers), per topic; whole batches, as sent.",
            |t| t.records_out,
        ),
    ];
    for (name, help, field) in series {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (topic, traffic) in &topics {
            let labels = [("topic", topic.to_string())];
            ConstCounter::new(field(traffic)).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn replication_counters(e: &mut DescriptorEncoder) -> fmt::Result {
    let r = &METRICS.replication;
    counter(
        e,
        "sluice_isr_shrinks",
        "ISR shrinks this broker made as a leader (a follower fell behind), applied by the controller.",
        r.isr_shrinks.load(Ordering::Relaxed),
    )?;
    counter(
        e,
        "sluice_isr_expands",
        "ISR expansions this broker made as a leader (a follower caught up), applied by the controller.",
        r.isr_expands.load(Ordering::Relaxed),
    )
}

/// Replication state from the metadata image: what this broker leads
/// (under-replicated partitions, per-partition ISR size behind the
/// per-partition switch), and cluster-wide counts that only the active
/// controller reports (Kafka's controller metrics), so a sum over brokers
/// counts each partition once.
fn replication(e: &mut DescriptorEncoder, broker: &Broker, per_partition: bool) -> fmt::Result {
    let image = broker.image();
    let node = broker.identity().node_id;
    let active = broker.controller_id() == node;
    let mut under_replicated = 0i64;
    let mut offline = 0i64;
    let mut reassigning = 0i64;
    for p in image.topics().flat_map(|t| t.partitions.iter()) {
        if p.leader == node && p.isr.len() < p.original_replicas().len() {
            under_replicated += 1;
        }
        offline += i64::from(p.leader().is_none());
        reassigning += i64::from(p.is_reassigning());
    }
    gauge(
        e,
        "sluice_under_replicated_partitions",
        "Partitions this broker leads whose ISR is smaller than their replica set.",
        under_replicated,
    )?;
    gauge(
        e,
        "sluice_offline_partitions",
        "Partitions without a leader, cluster-wide (reported by the active controller; 0 elsewhere).",
        if active { offline } else { 0 },
    )?;
    gauge(
        e,
        "sluice_partition_reassignments_in_progress",
        "Partitions being reassigned, cluster-wide (reported by the active controller; 0 elsewhere).",
        if active { reassigning } else { 0 },
    )?;
    if !per_partition {
        return Ok(());
    }
    let mut m = e.encode_descriptor(
        "sluice_partition_isr_size",
        "In-sync replicas of a partition this broker hosts.",
        None,
        MetricType::Gauge,
    )?;
    let hosted = image.topics().flat_map(|t| {
        t.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&node))
            .map(move |(i, p)| (&t.name, i, p.isr.len()))
    });
    for (topic, index, isr) in hosted.take(PARTITION_SERIES_MAX) {
        let labels = [("topic", topic.clone()), ("partition", index.to_string())];
        ConstGauge::new(i64::try_from(isr).unwrap_or(i64::MAX))
            .encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn broker_state(e: &mut DescriptorEncoder, broker: &Broker) -> fmt::Result {
    let budget = broker.replicas().partition_budget().partitions;
    gauge(
        e,
        "sluice_partition_budget",
        "Most partitions this broker accepts (from descriptor and map limits).",
        i64::try_from(budget).unwrap_or(i64::MAX),
    )?;
    let files = broker.replicas().file_budget().stats();
    let long = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    gauge(
        e,
        "sluice_open_segments",
        "Inactive segments mapped now (three maps each, no descriptor).",
        long(files.open),
    )?;
    gauge(
        e,
        "sluice_open_segments_max",
        "Most inactive segments kept mapped (log.open.segments.max).",
        long(files.limit),
    )?;
    counter(
        e,
        "sluice_segment_opens",
        "Inactive segments mapped on demand (a read of a closed segment).",
        files.opened_total,
    )?;
    counter(
        e,
        "sluice_segment_closes",
        "Inactive segments unmapped to stay within log.open.segments.max.",
        files.closed_total,
    )?;
    let reclaim = broker.replicas().reclaim_stats();
    gauge(
        e,
        "sluice_reclaim_pending",
        "Removed segment files and deleted partition directories not yet freed.",
        i64::try_from(reclaim.pending).unwrap_or(i64::MAX),
    )?;
    counter(
        e,
        "sluice_reclaimed_files",
        "Removed files freed by the reclaimer.",
        reclaim.files_total,
    )?;
    counter(
        e,
        "sluice_reclaim_stepped_bytes",
        "Bytes the reclaimer freed in steps (ftruncate + fdatasync each) rather than by one unlink.",
        reclaim.stepped_bytes_total,
    )?;
    counter(
        e,
        "sluice_reclaim_unlinked_whole",
        "Files unlinked in one go: the reclaimer's queue was full, or a reader mapped them past the wait.",
        reclaim.unlinked_whole_total,
    )?;
    gauge(
        e,
        "sluice_spare_segment_bytes",
        "Bytes of removed segment files kept to become their partitions' next segments.",
        i64::try_from(reclaim.spare_bytes).unwrap_or(i64::MAX),
    )?;
    counter(
        e,
        "sluice_reused_segments",
        "Removed segment files that became a new segment's file (written blocks: no metadata per sync).",
        reclaim.reused_total,
    )?;
    if let Some(disk) = DiskUsage::of(&broker.config().data_dir) {
        gauge(
            e,
            "sluice_data_dir_free_bytes",
            "Bytes available to the broker on the data directory's file system.",
            disk.available_bytes,
        )?;
        gauge(
            e,
            "sluice_data_dir_capacity_bytes",
            "Size of the data directory's file system.",
            disk.total_bytes,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::DescriptorEncoder;
    use prometheus_client::registry::Registry;

    use super::super::metrics::{AtomicHistogram, FLUSH_BATCH_BUCKETS};

    static H: AtomicHistogram<10> = AtomicHistogram::new(&FLUSH_BATCH_BUCKETS);

    #[derive(Debug)]
    struct One;

    impl Collector for One {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            super::histogram(&mut encoder, "h", "Test.", &H)
        }
    }

    #[test]
    fn an_encoded_histogram_is_cumulative_once_and_its_inf_bucket_is_the_count() {
        for v in [1.0, 3.0, 3.0, 5000.0] {
            H.observe(v);
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        // What /metrics serves.
        let text = super::super::http::to_text_format(&text);
        for line in [
            "h_count 4",
            "h_bucket{le=\"1.0\"} 1",
            "h_bucket{le=\"2.0\"} 1",
            "h_bucket{le=\"4.0\"} 3",
            "h_bucket{le=\"1024.0\"} 3",
            "h_bucket{le=\"+Inf\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
