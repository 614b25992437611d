//! Runs one scenario end to end:
//!
//! 1. the ceiling (loopback, disk), unless disabled — before the load, so
//!    the two never compete;
//! 2. the topic, created fresh with the scenario's configs; from here on,
//!    with `--data-dir`, its log on disk is sampled (`log_sampler.rs`);
//! 3. the preload, when `run.preload` (`preload.rs`);
//! 4. tailing consumers positioned at the log end;
//! 5. producers for `run.duration_s` (or `run.records`), the first
//!    `run.warmup_s` left out of every figure;
//! 6. the consumers drain what was acknowledged, then `run.settle_s` of
//!    waiting (a cleaner catching up);
//! 7. the read-back of the whole retained log from the beginning (on a
//!    compacted topic, with a count of the keys it holds).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sluice_client::{
    Acks, Admin, ClientConfig, Compression, Consumer, ConsumerConfig, NewTopic, Offset, OffsetSpec,
    Producer, ProducerConfig,
};
use tokio::sync::watch;

use crate::ceiling::{self, mib_per_s};
use crate::consumer;
use crate::cpu;
use crate::key_ledger::KeyLedger;
use crate::latency::Latency;
use crate::log_sampler::{self, SamplerThread};
use crate::machine::Machine;
use crate::pacer::Pacer;
use crate::preload;
use crate::producer::{self, Plan};
use crate::progress::{Live, Progress};
use crate::report::{
    ConsumeResult, CostReport, CpuCost, CpuReport, ProduceResult, Ratios, ReadbackResult,
    RunResult, Transfer,
};
use crate::scenario::{Pacing, Scenario};
use crate::timeline::Timeline;
use crate::workload;

/// Options that belong to the invocation, not the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub bootstrap: String,
    pub overrides: Vec<String>,
    /// Seconds per ceiling part; `None`: no ceiling.
    pub ceiling_secs: Option<f64>,
    pub ceiling_dir: PathBuf,
    /// The broker's PID, when it runs on this machine (CPU accounting).
    pub broker_pid: Option<u32>,
    /// The broker's data directory, when on this machine: the topic's log
    /// is sampled there.
    pub data_dir: Option<PathBuf>,
}

/// Longest the topic setup may take (deletion of an old copy included).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Read-back may take at most this multiple of the run, and at least
/// [`READBACK_MIN`].
const READBACK_FACTOR: u32 = 10;
const READBACK_MIN: Duration = Duration::from_secs(30);

pub async fn run(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<RunResult> {
    let ceiling = match opts.ceiling_secs {
        Some(secs) => {
            let dir = opts.ceiling_dir.clone();
            eprintln!(
                "measuring the ceiling ({secs} s per part, disk in {})",
                dir.display()
            );
            let c = tokio::task::spawn_blocking(move || ceiling::measure(secs, &dir)).await??;
            eprintln!("ceiling : {c}");
            Some(c)
        }
        None => None,
    };
    let client = ClientConfig::new(&opts.bootstrap).with_client_id("sluice-bench");
    create_topic(&client, scenario).await?;

    let topic = scenario.topic.name.clone();
    let live = Arc::new(Live::default());
    let preload_live = Arc::new(Live::default());
    // The producers' view of the live keys, for a compacted topic's samples.
    let ledger = scenario
        .is_compacted()
        .then(|| KeyLedger::new(scenario.records.keys).map(Arc::new))
        .flatten();
    let sampler = match &opts.data_dir {
        Some(dir) => Some(SamplerThread::start(
            dir,
            &topic,
            Duration::from_secs_f64(scenario.run.sample_s),
            log_sampler::Counters {
                lives: vec![Arc::clone(&preload_live), Arc::clone(&live)],
                ledger: ledger.clone(),
            },
        )?),
        None => None,
    };
    let preloaded = if scenario.run.preload {
        let config = producer_config(
            scenario,
            client.clone().with_client_id("sluice-bench-preload"),
        )?;
        let p = preload::run(scenario, config, preload_live, ledger.clone()).await?;
        Some(p)
    } else {
        None
    };
    set_phase(sampler.as_ref(), "run");

    // Producers and consumers connect before the clock starts.
    let mut producers = Vec::new();
    for i in 0..scenario.producer.connections {
        let config = producer_config(
            scenario,
            client.clone().with_client_id(format!("sluice-bench-p{i}")),
        )?;
        producers.push(
            Producer::connect(config)
                .await
                .with_context(|| format!("producer {i} cannot connect"))?,
        );
    }
    let mut tails = Vec::new();
    for i in 0..scenario.consumer.connections {
        let config = consumer_config(
            scenario,
            client.clone().with_client_id(format!("sluice-bench-c{i}")),
            Offset::End,
        );
        let mut c = Consumer::connect(config)
            .await
            .with_context(|| format!("consumer {i} cannot connect"))?;
        c.assign_all(&topic).await?;
        c.seek_all(Offset::End).await?;
        tails.push(c);
    }

    let timeline = Arc::new(Timeline::new(
        Duration::from_secs_f64(scenario.run.warmup_s),
        Duration::from_secs_f64(scenario.run.duration_s),
        Duration::from_secs_f64(scenario.run.drain_s),
    ));
    let cpu_start = cpu::sample(opts.broker_pid);
    let progress = Progress::start(
        &scenario.name,
        Arc::clone(&live),
        timeline.end - timeline.start,
    );
    let (produced_tx, produced_rx) = watch::channel(None);
    let tail_tasks: Vec<_> = tails
        .into_iter()
        .map(|c| {
            tokio::spawn(consumer::tail(
                c,
                Arc::clone(&timeline),
                produced_rx.clone(),
                Arc::clone(&live),
            ))
        })
        .collect();

    let n = u64::from(scenario.producer.connections);
    let rate = (scenario.run.rate > 0.0).then(|| scenario.run.rate / n as f64);
    let pacer = (rate.is_some() && scenario.run.pacing == Pacing::Fine).then(Pacer::new);
    let mut producer_tasks = Vec::new();
    for (i, p) in producers.into_iter().enumerate() {
        let i = u32::try_from(i)?;
        let quota = (scenario.run.records > 0)
            .then(|| scenario.run.records / n + u64::from(u64::from(i) < scenario.run.records % n));
        let plan = Plan {
            topic: Arc::from(topic.as_str()),
            rate,
            records_max: quota,
            ledger: ledger.clone(),
            records_per_send: scenario.producer.records_per_send,
            pacer: pacer.clone(),
        };
        let source = workload::source(&scenario.workload, &scenario.records, i)?;
        producer_tasks.push(tokio::spawn(producer::run(
            p,
            source,
            plan,
            Arc::clone(&timeline),
            Arc::clone(&live),
        )));
    }

    let mut produce = ProduceResult {
        producers: scenario.producer.connections,
        ..ProduceResult::default()
    };
    let mut latency = Latency::new();
    let mut last_ack: Option<Instant> = None;
    for t in producer_tasks {
        let o = t.await.context("producer task")?;
        produce.records_sent += o.sent;
        produce.records_acked += o.acked;
        produce.measured_records += o.measured;
        produce.measured_bytes += o.measured_bytes;
        produce.errors += o.errors;
        if produce.first_error.is_none() {
            produce.first_error = o.first_error;
        }
        latency.merge(&o.latency);
        last_ack = last_ack.max(o.last_measured_ack);
    }
    let window = timeline.measured(last_ack);
    produce.measured_seconds = window.as_secs_f64();
    produce.records_per_s = produce.measured_records as f64 / window.as_secs_f64().max(1e-9);
    produce.mib_per_s = mib_per_s(produce.measured_bytes, window);
    produce.latency = latency.summary();
    let _ = produced_tx.send(Some(produce.records_acked));

    let consume = if tail_tasks.is_empty() {
        None
    } else {
        let mut c = ConsumeResult {
            consumers: scenario.consumer.connections,
            ..ConsumeResult::default()
        };
        let mut e2e = Latency::new();
        let mut bytes = 0;
        let mut last: Option<Instant> = None;
        for t in tail_tasks {
            let o = t.await.context("consumer task")?;
            c.records_received += o.received;
            c.measured_records += o.measured;
            bytes += o.measured_bytes;
            e2e.merge(&o.e2e);
            last = last.max(o.last_measured);
            if let Some(e) = o.error {
                c.errors.push(e);
            }
        }
        // Records stamped inside the window, over the time until the last
        // of them arrived (summed over consumers: each reads everything).
        let window = timeline.measured(last);
        c.records_per_s = c.measured_records as f64 / window.as_secs_f64().max(1e-9);
        c.mib_per_s = mib_per_s(bytes, window);
        c.e2e_latency = e2e.summary();
        Some(c)
    };
    progress.finish().await;
    let cpu_produced = cpu::sample(opts.broker_pid);
    // The settle's CPU (the cleaner's, mostly) is charged to neither.
    if scenario.run.settle_s > 0.0 {
        set_phase(sampler.as_ref(), "settle");
        eprintln!("settling for {} s", scenario.run.settle_s);
        tokio::time::sleep(Duration::from_secs_f64(scenario.run.settle_s)).await;
    }
    let cpu_settled = cpu::sample(opts.broker_pid);

    set_phase(sampler.as_ref(), "readback");
    let readback = if scenario.consumer.readback {
        Some(readback(scenario, &client).await?)
    } else {
        None
    };
    let cpu_read = cpu::sample(opts.broker_pid);
    let log = match sampler {
        Some(s) => Some(tokio::task::spawn_blocking(move || s.finish()).await??),
        None => None,
    };
    let cpu = CpuReport {
        run: cpu::between(&cpu_start, &cpu_produced),
        readback: readback
            .as_ref()
            .map(|_| cpu::between(&cpu_settled, &cpu_read)),
    };

    let acked_bytes = produce.records_acked as f64 * produce.measured_bytes as f64
        / produce.measured_records.max(1) as f64;
    let cost = CostReport {
        produce: CpuCost::of(&cpu.run, produce.records_acked, acked_bytes),
        readback: cpu
            .readback
            .as_ref()
            .zip(readback.as_ref())
            .map(|(c, r)| CpuCost::of(c, r.moved.records, r.moved.bytes as f64)),
    };
    let ratios = Ratios {
        produce_of_loopback: ceiling
            .as_ref()
            .map(|c| produce.mib_per_s / c.loopback_mib_per_s),
        readback_of_loopback: ceiling
            .as_ref()
            .zip(readback.as_ref())
            .map(|(c, r)| r.moved.mib_per_s / c.loopback_mib_per_s),
        produce_of_disk: ceiling
            .as_ref()
            .map(|c| produce.mib_per_s / c.disk_write_mib_per_s),
        // Everything the broker did during the run (warm-up, consumers
        // and drain included) is charged to the records acknowledged.
        produce_mib_per_broker_cpu_s: cpu
            .run
            .broker_cpu_s
            .map(|s| acked_bytes / (1024.0 * 1024.0) / s.max(1e-9)),
        readback_mib_per_broker_cpu_s: cpu
            .readback
            .as_ref()
            .and_then(|c| c.broker_cpu_s)
            .zip(readback.as_ref())
            .map(|(s, r)| r.moved.bytes as f64 / (1024.0 * 1024.0) / s.max(1e-9)),
    };
    Ok(RunResult {
        tool: "sluice-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        scenario: scenario.name.clone(),
        workload: scenario.workload.clone(),
        description: scenario.description.clone(),
        notes: scenario.notes.clone(),
        bootstrap: opts.bootstrap.clone(),
        started_unix_s: timeline.start_wall_ns / 1_000_000_000,
        mode: match (rate.is_some(), scenario.run.pacing) {
            (false, _) => "closed-loop",
            (true, Pacing::Tick) => "open-loop",
            (true, Pacing::Fine) => "open-loop fine-paced",
        }
        .into(),
        target_rate: scenario.run.rate,
        overrides: opts.overrides.clone(),
        config: serde_json::to_value(scenario)?,
        machine: Machine::describe(),
        ceiling,
        preload: preloaded,
        produce,
        consume,
        readback,
        log,
        ratios,
        cpu,
        cost,
    })
}

/// A consumer config with the scenario's fetch settings.
fn consumer_config(scenario: &Scenario, client: ClientConfig, reset: Offset) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(client)
        .with_auto_offset_reset(reset)
        .with_fetch_max_wait(Duration::from_millis(scenario.consumer.fetch_max_wait_ms));
    config.partition_max_bytes = scenario.consumer.partition_max_bytes;
    config.fetch_max_bytes = config
        .fetch_max_bytes
        .max(scenario.consumer.partition_max_bytes);
    config
}

fn producer_config(scenario: &Scenario, client: ClientConfig) -> anyhow::Result<ProducerConfig> {
    let p = &scenario.producer;
    let acks = match p.acks.as_str() {
        "0" => Acks::None,
        "1" => Acks::Leader,
        "all" | "-1" => Acks::All,
        other => bail!("producer.acks {other:?}: 0, 1 or all"),
    };
    let compression: Compression = p.compression.parse()?;
    Ok(ProducerConfig::new(client)
        .with_acks(acks)
        .with_idempotence(p.idempotent && acks == Acks::All)
        .with_linger(Duration::from_millis(p.linger_ms))
        .with_batch_size(p.batch_bytes)
        .with_compression(compression)
        .with_buffer_bytes(p.buffer_bytes)
        .with_max_request_size(p.max_request_size)
        .with_delivery_timeout(Duration::from_secs(60)))
}

/// Deletes the topic if `recreate` (waiting until it is gone), then
/// creates it with the scenario's partitions and configs.
async fn create_topic(client: &ClientConfig, scenario: &Scenario) -> anyhow::Result<()> {
    let admin = Admin::connect(client.clone())
        .await
        .with_context(|| format!("cannot reach a broker at {}", client.bootstrap.join(",")))?;
    let t = &scenario.topic;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let exists = |topics: &[sluice_client::TopicInfo]| topics.iter().any(|x| x.name == t.name);
    if exists(&admin.list_topics().await?) {
        if !t.recreate {
            return Ok(());
        }
        admin.delete_topics(std::slice::from_ref(&t.name)).await?;
        while exists(&admin.list_topics().await?) {
            if Instant::now() >= deadline {
                bail!(
                    "topic {} still exists {SETUP_TIMEOUT:?} after its deletion",
                    t.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut new =
        NewTopic::new(&t.name, t.partitions).with_replication_factor(t.replication_factor);
    for (k, v) in &t.configs {
        new = new.with_config(k, v);
    }
    loop {
        match admin.create_topic(&new).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot create topic {} with configs {:?}",
                    t.name, t.configs
                )));
            }
        }
    }
}

async fn readback(scenario: &Scenario, client: &ClientConfig) -> anyhow::Result<ReadbackResult> {
    // Its own counters: the progress shows the read-back's rate alone.
    let live = Arc::new(Live::default());
    let topic = &scenario.topic.name;
    let admin = Admin::connect(client.clone()).await?;
    let targets: Vec<(i32, i64)> = admin
        .list_offsets(topic, OffsetSpec::Latest)
        .await?
        .into_iter()
        .map(|p| (p.partition, p.offset))
        .collect();
    let config = consumer_config(
        scenario,
        client.clone().with_client_id("sluice-bench-readback"),
        Offset::Beginning,
    );
    let mut c = Consumer::connect(config).await?;
    c.assign_all(topic).await?;
    c.seek_all(Offset::Beginning).await?;
    // Said before the first fetch, so a profiler can start on this line
    // (bench/scripts/broker-profile.sh with PERF_AT=readback).
    eprintln!(
        "reading back from the start: {} partition(s)",
        targets.len()
    );
    let budget = Duration::from_secs_f64(scenario.run.duration_s * f64::from(READBACK_FACTOR))
        .max(READBACK_MIN);
    let progress = Progress::start(
        "readback",
        Arc::clone(&live),
        budget.min(Duration::from_secs(60)),
    );
    let deadline = Instant::now() + budget;
    let o = consumer::readback(c, topic, &targets, deadline, live, scenario.is_compacted()).await?;
    progress.finish().await;
    Ok(ReadbackResult {
        moved: Transfer::over(o.records, o.bytes, o.time, o.complete),
        keys: o.keys,
    })
}

fn set_phase(sampler: Option<&SamplerThread>, phase: &'static str) {
    if let Some(s) = sampler {
        s.set_phase(phase);
    }
}
