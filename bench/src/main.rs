//! `sluice-bench`: throughput and latency benchmark for any Kafka-protocol
//! broker, through `sluice-client`.
//!
//! ```text
//! sluice-bench run bench/scenarios/messaging.toml --bootstrap 127.0.0.1:9092 \
//!     [--set run.duration_s=60 --set producer.acks=all ...] [--json out.json]
//! sluice-bench ceiling [--secs 3] [--dir /tmp]
//! sluice-bench compare a.json b.json
//! ```
//!
//! The JSON result goes to stdout (or `--json FILE`), the human summary
//! and progress to stderr. Every `run` measures the machine's ceiling
//! first (loopback TCP, disk) and reports ratios to it.
//!
//! # Layout
//! - `scenario.rs`: the TOML scenario files and `--set` overrides;
//! - `workload/<name>.rs`: one record generator per workload;
//! - `run.rs`: one scenario end to end; `producer.rs`, `consumer.rs`: the
//!   workers; `timeline.rs`: warm-up / window / drain instants;
//!   `pacer.rs`: open-loop waits finer than tokio's timer (`run.pacing`);
//! - `latency.rs`, `report.rs`, `progress.rs`, `compare.rs`: results;
//! - `ceiling.rs`, `machine.rs`, `cpu.rs`: what the machine can do, what
//!   it is, and the CPU time the bench and the broker used;
//! - `preload.rs`: every key written once before the run;
//! - `log_sampler.rs`, `segment_walk.rs`: the topic's log on disk over the
//!   run (with `--data-dir`); `key_ledger.rs`, `key_census.rs`: live keys
//!   as the producers wrote them and as the read-back found them;
//! - `stamp.rs`, `keys.rs`, `zipf.rs`, `rng.rs`: record contents.

mod ceiling;
mod compare;
mod consumer;
mod cpu;
mod key_census;
mod key_ledger;
mod keys;
mod latency;
mod log_sampler;
mod machine;
mod pacer;
mod preload;
mod producer;
mod progress;
mod report;
mod run;
mod scenario;
mod segment_walk;
mod stamp;
mod timeline;
mod workload;
mod zipf;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Throughput and latency of any Kafka-protocol broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario file (or the name of one in bench/scenarios/).
    Run {
        scenario: String,
        /// Brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = "127.0.0.1:9092", env = "SLUICE_BENCH_BOOTSTRAP")]
        bootstrap: String,
        /// Overrides a scenario key: `--set run.duration_s=10`,
        /// `--set topic.configs.segment.bytes=1048576`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Writes the JSON result here instead of stdout.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Seconds for each part of the ceiling measurement.
        #[arg(long, default_value_t = 3.0)]
        ceiling_secs: f64,
        /// Skips the ceiling measurement.
        #[arg(long)]
        no_ceiling: bool,
        /// Directory for the disk ceiling's temp file (the broker's disk).
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        ceiling_dir: PathBuf,
        /// PID of a broker on this machine: its CPU time is reported
        /// (records and bytes per broker CPU-second).
        #[arg(long)]
        broker_pid: Option<u32>,
        /// Data directory of a broker on this machine: the topic's
        /// partition directories are sampled every `run.sample_s` (records
        /// and bytes on disk; what cleaning removed).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Measures the loopback TCP and sequential disk-write ceiling.
    Ceiling {
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        dir: PathBuf,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Prints two JSON results side by side: B / A for every figure, and
    /// whether B is better or worse by it.
    Compare {
        /// The earlier (baseline) result.
        a: PathBuf,
        /// The result to judge against it.
        b: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            bootstrap,
            set,
            json,
            ceiling_secs,
            no_ceiling,
            ceiling_dir,
            broker_pid,
            data_dir,
        } => {
            let s = scenario::Scenario::named(&scenario, &set)?;
            let opts = run::RunOptions {
                bootstrap,
                overrides: set,
                ceiling_secs: (!no_ceiling).then_some(ceiling_secs),
                ceiling_dir,
                broker_pid,
                data_dir,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let result = runtime.block_on(run::run(&s, &opts))?;
            result.print_summary();
            write_json(&result, json.as_deref())?;
            if result.produce.records_acked == 0 {
                anyhow::bail!("no record was acknowledged");
            }
            Ok(())
        }
        Command::Ceiling { secs, dir, json } => {
            let c = ceiling::measure(secs, &dir)?;
            eprintln!("ceiling : {c}");
            #[derive(serde::Serialize)]
            struct Out {
                machine: machine::Machine,
                ceiling: ceiling::Ceiling,
            }
            write_json(
                &Out {
                    machine: machine::Machine::describe(),
                    ceiling: c,
                },
                json.as_deref(),
            )
        }
        Command::Compare { a, b } => {
            print!("{}", compare::table(&a, &b)?);
            Ok(())
        }
    }
}

fn write_json<T: serde::Serialize>(value: &T, path: Option<&Path>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match path {
        Some(p) => {
            std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
