//! A scenario: one TOML file in `bench/scenarios/` describing the topic to
//! create, the records to send, the producers and consumers, and how long
//! to run — plus `--set key=value` overrides applied before it is parsed.
//!
//! ```toml
//! name = "messaging"
//! workload = "messaging"          # which record generator (workload/<name>.rs)
//! [run]     duration_s, warmup_s, records, rate, drain_s, preload, settle_s, sample_s,
//!           pacing ("tick" | "fine")
//! [topic]   name, partitions, replication_factor, recreate, [topic.configs]
//! [producer] connections, acks, compression, linger_ms, batch_bytes, buffer_bytes, max_request_size,
//!           idempotent, records_per_send
//! [consumer] connections, fetch_max_wait_ms, partition_max_bytes, readback
//! [records] value_bytes, keys, key_distribution, zipf_exponent, tombstone_every
//! ```
//!
//! Unknown keys are errors (`deny_unknown_fields`), so a mistyped `--set`
//! is refused instead of silently measuring the default.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// The record generator: messaging, metrics, counters, config, leases.
    pub workload: String,
    #[serde(default)]
    pub description: String,
    /// Caveats carried into the result (e.g. "100 tailing consumers").
    #[serde(default)]
    pub notes: Vec<String>,
    pub run: Run,
    pub topic: Topic,
    pub producer: ProducerSpec,
    pub consumer: ConsumerSpec,
    pub records: Records,
}

/// How long, how much, how fast.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Length of the whole produce phase, warm-up included.
    pub duration_s: f64,
    /// Leading part of the run left out of every figure.
    pub warmup_s: f64,
    /// Stop after this many records in total (0: no count limit).
    #[serde(default)]
    pub records: u64,
    /// Records per second across all producers; 0 runs closed-loop (as
    /// fast as acknowledgements allow).
    #[serde(default)]
    pub rate: f64,
    /// How long tailing consumers may keep reading after the producers end.
    #[serde(default = "default_drain_s")]
    pub drain_s: f64,
    /// Before the run, write every key once (`crate::preload`), so a
    /// compacted topic starts with its whole state.
    #[serde(default)]
    pub preload: bool,
    /// After the drain, wait this long before the read-back (a cleaner
    /// catching up); the log is still sampled.
    #[serde(default)]
    pub settle_s: f64,
    /// Seconds between samples of the log on disk (with `--data-dir`).
    #[serde(default = "default_sample_s")]
    pub sample_s: f64,
    /// How an open loop waits for its records' due instants.
    #[serde(default)]
    pub pacing: Pacing,
}

/// How an open-loop send loop waits for the next record's due instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// tokio's timer: records leave up to a millisecond tick after they
    /// are due, and that lag is in their latency; one wake-up a tick.
    #[default]
    Tick,
    /// A pacing thread (`crate::pacer`): records leave within ~0.25 ms of
    /// due, at up to four wake-ups a tick (~0.1 of a core here) — for a
    /// bench with cores of its own.
    Fine,
}

fn default_sample_s() -> f64 {
    2.0
}

fn default_drain_s() -> f64 {
    5.0
}

/// The topic the scenario creates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    #[serde(default = "default_rf")]
    pub replication_factor: i16,
    /// Delete the topic first if it exists, so each run starts empty.
    #[serde(default = "default_true")]
    pub recreate: bool,
    /// Kafka topic configs; numbers and booleans are accepted and sent as
    /// their text.
    #[serde(default, deserialize_with = "configs_as_text")]
    pub configs: BTreeMap<String, String>,
}

fn configs_as_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "topic config {k}: {other} is not a scalar"
                    )));
                }
            };
            Ok((k, text))
        })
        .collect()
}

fn default_rf() -> i16 {
    -1
}

fn default_true() -> bool {
    true
}

/// Producer connections and their settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    /// Producers, each with its own connection(s).
    pub connections: u32,
    /// "0", "1" or "all".
    pub acks: String,
    pub compression: String,
    pub linger_ms: u64,
    pub batch_bytes: usize,
    #[serde(default = "default_buffer_bytes")]
    pub buffer_bytes: usize,
    /// Batch bytes per Produce request (Kafka's `max.request.size`; the
    /// client's default, 1 MiB, when unset).
    #[serde(default = "default_max_request_size")]
    pub max_request_size: usize,
    /// Idempotent delivery (needs acks = "all").
    #[serde(default)]
    pub idempotent: bool,
    /// Records the application hands the producer per call: 1 (the
    /// default) sends each record on its own, as most Kafka applications
    /// do; more hands them over that many at a time (`send_batch_ref`,
    /// librdkafka's `rd_kafka_produce_batch`), as an application that
    /// gathers its records first does.
    #[serde(default = "default_records_per_send")]
    pub records_per_send: usize,
}

/// Most records per send call: the send loop keeps that many generated
/// records at once.
const RECORDS_PER_SEND_MAX: usize = 100_000;

fn default_records_per_send() -> usize {
    1
}

fn default_buffer_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_max_request_size() -> usize {
    sluice_client::ProducerConfig::new(sluice_client::ClientConfig::new("")).max_request_size
}

/// Consumers: tailing ones during the run, and the read-back after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// Consumers tailing the topic during the run, for end-to-end latency
    /// (each its own connection, each reading every partition: fan-out).
    pub connections: u32,
    #[serde(default = "default_fetch_wait")]
    pub fetch_max_wait_ms: u64,
    /// Bytes per partition per fetch (Kafka's `max.partition.fetch.bytes`,
    /// default 1 MiB): on one partition, one round trip per this many bytes.
    #[serde(default = "default_partition_max_bytes")]
    pub partition_max_bytes: i32,
    /// After the run, one consumer reads the whole retained log from the
    /// beginning as fast as it can (consume throughput; for the config
    /// workload, "how long a new subscriber takes to read the state").
    #[serde(default = "default_true")]
    pub readback: bool,
}

fn default_partition_max_bytes() -> i32 {
    1024 * 1024
}

fn default_fetch_wait() -> u64 {
    100
}

/// What the records look like.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    /// Value size in bytes (the first bytes carry the send timestamp).
    pub value_bytes: usize,
    /// Distinct keys; 0 sends keyless records.
    #[serde(default)]
    pub keys: u64,
    /// "uniform", "zipf" or "sequential".
    #[serde(default = "default_distribution")]
    pub key_distribution: String,
    #[serde(default = "default_zipf")]
    pub zipf_exponent: f64,
    /// Every n-th record is a tombstone (null value); 0: none.
    #[serde(default)]
    pub tombstone_every: u64,
}

fn default_distribution() -> String {
    "uniform".into()
}

fn default_zipf() -> f64 {
    0.99
}

/// The five workloads of `shared/workloads.md`, as `bench/scenarios/` holds
/// them at build time.
pub const BUILT_IN: [(&str, &str); 5] = [
    ("messaging", include_str!("../scenarios/messaging.toml")),
    ("metrics", include_str!("../scenarios/metrics.toml")),
    ("counters", include_str!("../scenarios/counters.toml")),
    ("config", include_str!("../scenarios/config.toml")),
    ("leases", include_str!("../scenarios/leases.toml")),
];

impl Scenario {
    /// The topic's `cleanup.policy` lists `compact`.
    pub fn is_compacted(&self) -> bool {
        self.topic
            .configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact"))
    }

    /// The scenario `name` names: a file when one exists at that path (or the
    /// name looks like a path); else one of [`BUILT_IN`], compiled into the
    /// binary so an installed `sluice-bench` needs no source tree.
    pub fn named(name: &str, overrides: &[String]) -> anyhow::Result<Self> {
        let path = Path::new(name);
        if path.exists() || name.contains('/') || name.ends_with(".toml") {
            return Self::load(path, overrides);
        }
        let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            bail!(
                "no scenario file {name} and no built-in scenario of that name (built in: {})",
                names.join(", ")
            );
        };
        Self::parse(text, overrides).with_context(|| format!("built-in scenario {name}"))
    }

    /// Reads `path` and applies `overrides` (`key=value`, dotted paths).
    pub fn load(path: &Path, overrides: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Self::parse(&text, overrides).with_context(|| format!("scenario {}", path.display()))
    }

    /// Parses scenario text and applies `overrides`.
    pub fn parse(text: &str, overrides: &[String]) -> anyhow::Result<Self> {
        let mut table: toml::Table = text.parse().context("not valid TOML")?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let scenario: Scenario = toml::Value::Table(table)
            .try_into()
            .context("not a valid scenario")?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.run.duration_s.is_nan() || self.run.duration_s <= 0.0 {
            bail!("run.duration_s must be positive");
        }
        if self.run.warmup_s.is_nan()
            || self.run.warmup_s < 0.0
            || self.run.warmup_s >= self.run.duration_s
        {
            bail!("run.warmup_s must be at least 0 and less than run.duration_s");
        }
        if self.run.rate.is_nan() || self.run.rate < 0.0 {
            bail!("run.rate must be 0 (closed loop) or positive");
        }
        if self.run.settle_s.is_nan() || self.run.settle_s < 0.0 {
            bail!("run.settle_s must be at least 0");
        }
        if self.run.sample_s.is_nan() || self.run.sample_s < 0.05 {
            bail!("run.sample_s must be at least 0.05");
        }
        if self.run.preload && self.records.keys == 0 {
            bail!("run.preload needs a key space (records.keys)");
        }
        if self.producer.connections == 0 {
            bail!("producer.connections must be at least 1");
        }
        if self.topic.partitions < 1 {
            bail!("topic.partitions must be at least 1");
        }
        if !(1..=RECORDS_PER_SEND_MAX).contains(&self.producer.records_per_send) {
            bail!("producer.records_per_send must be 1..={RECORDS_PER_SEND_MAX}");
        }
        let min = crate::workload::value_bytes_min(&self.workload)?;
        if self.records.value_bytes < min {
            bail!(
                "records.value_bytes must be at least {min} for the {} workload (the send stamp)",
                self.workload
            );
        }
        Ok(())
    }
}

/// Sets `path=value` in `table`. The value is read as a TOML value
/// (`3`, `2.5`, `true`, `"x"`) and, failing that, as a bare string. The
/// path descends through existing sub-tables; the rest of it is one key,
/// so `topic.configs.segment.bytes=1048576` sets the `segment.bytes` key
/// of `[topic.configs]`.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> anyhow::Result<()> {
    let (path, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected key=value"))?;
    let value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_owned()),
    };
    let mut current = table;
    let mut rest = path.trim();
    loop {
        if let Some((head, tail)) = rest.split_once('.')
            && current.get(head).is_some_and(toml::Value::is_table)
        {
            current = match current.get_mut(head) {
                Some(toml::Value::Table(t)) => t,
                _ => bail!("--set {assignment}: {head} is not a table"),
            };
            rest = tail;
            continue;
        }
        // Keep the type of an existing value where the override reads
        // as a different one (`topic.configs.x=5` stays a string).
        let value = match (current.get(rest), value) {
            (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(raw.to_owned()),
            (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
            (_, v) => v,
        };
        current.insert(rest.to_owned(), value);
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
name = "t"
workload = "messaging"
[run]
duration_s = 10.0
warmup_s = 1.0
[topic]
name = "t"
partitions = 1
[topic.configs]
"segment.bytes" = "1048576"
[producer]
connections = 1
acks = "1"
compression = "none"
linger_ms = 5
batch_bytes = 65536
[consumer]
connections = 1
[records]
value_bytes = 1024
"#;

    #[test]
    fn every_built_in_scenario_parses_and_names_itself() {
        for (name, _) in BUILT_IN {
            let s = Scenario::named(name, &[]).expect(name);
            assert_eq!(s.name, name);
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let files = std::fs::read_dir(&dir).expect("bench/scenarios").count();
        assert_eq!(
            files,
            BUILT_IN.len(),
            "every file in bench/scenarios is built in"
        );
        let err = Scenario::named("nope", &[]).expect_err("unknown name");
        assert!(err.to_string().contains("built in: messaging"), "{err}");
    }

    #[test]
    fn overrides_reach_nested_and_dotted_keys() -> anyhow::Result<()> {
        let s = Scenario::parse(
            TEXT,
            &[
                "run.duration_s=2".into(),
                "topic.configs.segment.bytes=2048".into(),
                "topic.configs.retention.ms=1000".into(),
                "producer.acks=all".into(),
                "records.keys=10".into(),
            ],
        )?;
        assert_eq!(s.run.duration_s, 2.0);
        assert_eq!(
            s.topic.configs.get("segment.bytes").map(String::as_str),
            Some("2048")
        );
        assert_eq!(
            s.topic.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(s.producer.acks, "all");
        assert_eq!(s.records.keys, 10);
        Ok(())
    }

    #[test]
    fn compaction_is_read_from_the_cleanup_policy() -> anyhow::Result<()> {
        assert!(!Scenario::parse(TEXT, &[])?.is_compacted());
        for policy in ["compact", "delete,compact", "compact, delete"] {
            let set = format!("topic.configs.cleanup.policy={policy}");
            assert!(Scenario::parse(TEXT, &[set])?.is_compacted(), "{policy}");
        }
        Ok(())
    }

    #[test]
    fn a_preload_needs_keys() {
        assert!(Scenario::parse(TEXT, &["run.preload=true".into()]).is_err());
        assert!(
            Scenario::parse(TEXT, &["run.preload=true".into(), "records.keys=5".into()]).is_ok()
        );
    }

    #[test]
    fn records_per_send_is_bounded() {
        let with = |n: usize| Scenario::parse(TEXT, &[format!("producer.records_per_send={n}")]);
        assert!(with(0).is_err());
        assert!(with(RECORDS_PER_SEND_MAX + 1).is_err());
        assert_eq!(
            with(1000).map(|s| s.producer.records_per_send).ok(),
            Some(1000)
        );
        assert_eq!(
            Scenario::parse(TEXT, &[])
                .map(|s| s.producer.records_per_send)
                .ok(),
            Some(1)
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Scenario::parse(TEXT, &["run.duraton_s=2".into()]).is_err());
    }

    #[test]
    fn pacing_is_tick_unless_set_fine() -> anyhow::Result<()> {
        assert_eq!(Scenario::parse(TEXT, &[])?.run.pacing, Pacing::Tick);
        let fine = Scenario::parse(TEXT, &["run.pacing=fine".into()])?;
        assert_eq!(fine.run.pacing, Pacing::Fine);
        assert!(Scenario::parse(TEXT, &["run.pacing=exact".into()]).is_err());
        Ok(())
    }
}
