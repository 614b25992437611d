//! The result of a run: one JSON document (stdout or `--json FILE`) for
//! machines, and a human summary on stderr. Rates are per second of the
//! measured window (warm-up excluded); bytes are record payload (key +
//! value), not wire bytes; MiB = 2^20 bytes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ceiling::{Ceiling, mib_per_s};
use crate::cpu::CpuUse;
use crate::key_census::Census;
use crate::latency::LatencySummary;
use crate::log_sampler::LogReport;
use crate::machine::Machine;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub tool: String,
    pub version: String,
    pub scenario: String,
    pub workload: String,
    pub description: String,
    pub notes: Vec<String>,
    pub bootstrap: String,
    pub started_unix_s: u64,
    /// "closed-loop", "open-loop" or "open-loop fine-paced" (`run.pacing`).
    pub mode: String,
    /// Target records/s (open loop), 0 in closed loop.
    pub target_rate: f64,
    pub overrides: Vec<String>,
    /// The scenario as run, overrides applied.
    pub config: serde_json::Value,
    pub machine: Machine,
    pub ceiling: Option<Ceiling>,
    /// Every key written once before the run (`run.preload`).
    #[serde(default)]
    pub preload: Option<PreloadResult>,
    pub produce: ProduceResult,
    pub consume: Option<ConsumeResult>,
    pub readback: Option<ReadbackResult>,
    /// The topic's log on disk over the run (with `--data-dir`).
    #[serde(default)]
    pub log: Option<LogReport>,
    pub ratios: Ratios,
    #[serde(default)]
    pub cpu: CpuReport,
    /// CPU per unit of work, client and broker.
    #[serde(default)]
    pub cost: CostReport,
}

/// CPU-seconds per GiB of payload and per million records, for the bench
/// (the client: `sluice-client` plus record generation, and the tailing
/// consumers during the run) and the broker (with `--broker-pid`). Unlike
/// rates, these do not move with the neighbours' load, so they compare
/// clients and brokers across runs on a shared machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CostReport {
    /// The run (warm-up, producers, tailing consumers, drain), charged to
    /// the records acknowledged.
    pub produce: CpuCost,
    /// The read-back, charged to the records read.
    pub readback: Option<CpuCost>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuCost {
    pub bench_cpu_s_per_gib: Option<f64>,
    pub bench_cpu_s_per_million_records: Option<f64>,
    pub broker_cpu_s_per_gib: Option<f64>,
    pub broker_cpu_s_per_million_records: Option<f64>,
}

impl CpuCost {
    /// `cpu` spent on `records` records of `bytes` payload bytes in all.
    pub fn of(cpu: &CpuUse, records: u64, bytes: f64) -> Self {
        let per = |cpu_s: Option<f64>, units: f64| cpu_s.filter(|_| units > 0.0).map(|s| s / units);
        let gib = bytes / (1024.0 * 1024.0 * 1024.0);
        let millions = records as f64 / 1e6;
        Self {
            bench_cpu_s_per_gib: per(cpu.bench_cpu_s, gib),
            bench_cpu_s_per_million_records: per(cpu.bench_cpu_s, millions),
            broker_cpu_s_per_gib: per(cpu.broker_cpu_s, gib),
            broker_cpu_s_per_million_records: per(cpu.broker_cpu_s, millions),
        }
    }
}

impl std::fmt::Display for CpuCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.3}"));
        write!(
            f,
            "bench {} CPU-s/GiB, {} CPU-s/M records; broker {} CPU-s/GiB, {} CPU-s/M records",
            v(self.bench_cpu_s_per_gib),
            v(self.bench_cpu_s_per_million_records),
            v(self.broker_cpu_s_per_gib),
            v(self.broker_cpu_s_per_million_records)
        )
    }
}

/// CPU time over the run (producers and tailing consumers, warm-up and
/// drain included) and over the read-back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuReport {
    pub run: CpuUse,
    pub readback: Option<CpuUse>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProduceResult {
    pub producers: u32,
    pub records_sent: u64,
    pub records_acked: u64,
    pub measured_records: u64,
    pub measured_bytes: u64,
    pub measured_seconds: f64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Send → ack (open loop: intended send → ack).
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumeResult {
    pub consumers: u32,
    /// Records received by all consumers together (each reads everything).
    pub records_received: u64,
    pub measured_records: u64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    /// Producer stamp in the record → consumer receipt.
    pub e2e_latency: LatencySummary,
    pub errors: Vec<String>,
}

/// Records moved in one go (a read-back, a preload): how many, how big,
/// how fast.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transfer {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    /// All that was to be moved was (the log end reached, every key written).
    pub complete: bool,
}

impl Transfer {
    /// `records` of `bytes` payload in all, moved in `time`.
    pub fn over(records: u64, bytes: u64, time: Duration, complete: bool) -> Self {
        Self {
            records,
            bytes,
            seconds: time.as_secs_f64(),
            records_per_s: records as f64 / time.as_secs_f64().max(1e-9),
            mib_per_s: mib_per_s(bytes, time),
            complete,
        }
    }
}

impl std::fmt::Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} records/s, {:.1} MiB/s ({} records in {:.2} s{})",
            self.records_per_s,
            self.mib_per_s,
            self.records,
            self.seconds,
            if self.complete { "" } else { ", INCOMPLETE" }
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadbackResult {
    #[serde(flatten)]
    pub moved: Transfer,
    /// On a compacted topic, the keys the read-back met: the state a new
    /// subscriber rebuilt.
    #[serde(default)]
    pub keys: Option<Census>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PreloadResult {
    /// Records acknowledged, one per key; complete when every key was.
    #[serde(flatten)]
    pub moved: Transfer,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Fractions of the ceiling measured in the same invocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ratios {
    pub produce_of_loopback: Option<f64>,
    pub readback_of_loopback: Option<f64>,
    pub produce_of_disk: Option<f64>,
    /// Payload MiB acknowledged per CPU-second of the broker (needs
    /// `--broker-pid`): the fair measure on a shared machine.
    #[serde(default)]
    pub produce_mib_per_broker_cpu_s: Option<f64>,
    #[serde(default)]
    pub readback_mib_per_broker_cpu_s: Option<f64>,
}

impl RunResult {
    /// The human summary (stderr).
    pub fn print_summary(&self) {
        eprintln!(
            "== {} ({}, {}{}) against {}",
            self.scenario,
            self.workload,
            self.mode,
            if self.target_rate > 0.0 {
                format!(" at {:.0} records/s", self.target_rate)
            } else {
                String::new()
            },
            self.bootstrap
        );
        for n in &self.notes {
            eprintln!("   note: {n}");
        }
        if let Some(c) = &self.ceiling {
            eprintln!("ceiling : {c}");
        }
        if let Some(p) = &self.preload {
            eprintln!("preload : {}", p.moved);
        }
        let p = &self.produce;
        eprintln!(
            "produce : {:.0} records/s, {:.1} MiB/s over {:.1} s ({} producers, {} acked, {} errors)",
            p.records_per_s,
            p.mib_per_s,
            p.measured_seconds,
            p.producers,
            p.records_acked,
            p.errors
        );
        if let Some(e) = &p.first_error {
            eprintln!("          first error: {e}");
        }
        eprintln!("  latency (send → ack): {}", p.latency);
        if let Some(c) = &self.consume {
            eprintln!(
                "consume : {:.0} records/s, {:.1} MiB/s across {} tailing consumers ({} received)",
                c.records_per_s, c.mib_per_s, c.consumers, c.records_received
            );
            eprintln!("  end-to-end latency: {}", c.e2e_latency);
            for e in &c.errors {
                eprintln!("          error: {e}");
            }
        }
        if let Some(r) = &self.readback {
            eprintln!("readback: {}", r.moved);
            if let Some(k) = &r.keys {
                eprintln!(
                    "  state : {} keys ({} live, {} tombstoned) and {} superseded records among the {} read",
                    k.keys, k.live, k.tombstoned, k.superseded, k.records
                );
            }
        }
        if let Some(l) = &self.log {
            eprintln!("{l}");
        }
        let secs = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2} s"));
        eprintln!(
            "cpu     : run {:.1} s wall, bench {} CPU ({} waiting for a CPU), broker {} CPU ({} waiting), load average {}",
            self.cpu.run.wall_s,
            secs(self.cpu.run.bench_cpu_s),
            secs(self.cpu.run.bench_cpu_wait_s),
            secs(self.cpu.run.broker_cpu_s),
            secs(self.cpu.run.broker_cpu_wait_s),
            self.cpu
                .run
                .load_average_1m
                .map_or("-".to_owned(), |l| format!("{l:.1}"))
        );
        if let Some(r) = &self.cpu.readback {
            eprintln!(
                "          readback {:.1} s wall, bench {} CPU, broker {} CPU",
                r.wall_s,
                secs(r.bench_cpu_s),
                secs(r.broker_cpu_s)
            );
        }
        let per_cpu = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.0} MiB/s"));
        eprintln!(
            "per broker CPU-second: produce {}, readback {}",
            per_cpu(self.ratios.produce_mib_per_broker_cpu_s),
            per_cpu(self.ratios.readback_mib_per_broker_cpu_s)
        );
        eprintln!("cost    : produce {}", self.cost.produce);
        if let Some(r) = &self.cost.readback {
            eprintln!("          readback {r}");
        }
        let pct = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{:.1} %", v * 100.0));
        eprintln!(
            "ratios  : produce / loopback {}, readback / loopback {}, produce / disk {}",
            pct(self.ratios.produce_of_loopback),
            pct(self.ratios.readback_of_loopback),
            pct(self.ratios.produce_of_disk)
        );
    }
}
