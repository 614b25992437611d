//! Every scenario in `bench/scenarios/` runs for about a second against a
//! real broker (default durability: fsync per acknowledged batch) and
//! writes a JSON result that parses and shows records produced, consumed
//! and read back, and — the bench being given the broker's data directory
//! — samples of the topic's log on disk; the compacted ones (config,
//! leases) also count the keys read back. A benchmark run is not a test:
//! nothing here checks a rate, a latency or how much cleaning removed.
//!
//! Needs the `sluice` binary built first; see `support/mod.rs`.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use support::TestBroker;

/// How long one scenario run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Broker config: retention checked every second so the scenarios'
/// small retention deletes segments during even a short run.
const BROKER_CONFIG: &str = "\"log.retention.check.interval.ms\" = 1000\n";

fn run_scenario(name: &str, extra: &[&str]) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let broker = TestBroker::start(dir.path(), BROKER_CONFIG)?;
    let json = dir.path().join("result.json");
    let scenario = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args: Vec<String> = vec![
        "run".into(),
        scenario,
        "--bootstrap".into(),
        broker.bootstrap(),
        "--json".into(),
        json.display().to_string(),
        "--ceiling-secs".into(),
        "0.2".into(),
        "--ceiling-dir".into(),
        dir.path().display().to_string(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
    ];
    for s in [
        "run.duration_s=1.5",
        "run.warmup_s=0.5",
        "run.drain_s=5",
        "producer.buffer_bytes=4194304",
    ]
    .iter()
    .chain(extra)
    {
        args.push("--set".into());
        args.push((*s).into());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sluice-bench {name} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "sluice-bench {name} failed with {status}:\n{log}\nbroker:\n{}",
            broker.log_lines().join("\n")
        );
    }
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("no JSON; stderr:\n{log}"))?;
    let v: Value = serde_json::from_str(&text).context("result is not JSON")?;
    Ok(v)
}

fn number(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0)
}

fn check(v: &Value, name: &str) {
    assert_eq!(v.pointer("/scenario").and_then(Value::as_str), Some(name));
    assert!(
        number(v, "/produce/records_per_s") > 0.0,
        "no produce throughput: {v:#}"
    );
    assert!(
        number(v, "/produce/mib_per_s") > 0.0,
        "no produce bytes: {v:#}"
    );
    assert_eq!(number(v, "/produce/errors"), 0.0, "produce errors: {v:#}");
    assert!(
        number(v, "/produce/latency/count") > 0.0,
        "no produce latency: {v:#}"
    );
    assert!(
        number(v, "/consume/records_received") > 0.0,
        "nothing consumed: {v:#}"
    );
    assert!(
        number(v, "/consume/e2e_latency/count") > 0.0,
        "no end-to-end latency: {v:#}"
    );
    assert!(
        number(v, "/readback/records_per_s") > 0.0,
        "no read-back: {v:#}"
    );
    assert!(
        number(v, "/ceiling/loopback_mib_per_s") > 0.0,
        "no ceiling: {v:#}"
    );
    assert!(
        number(v, "/ratios/produce_of_loopback") > 0.0,
        "no ratio: {v:#}"
    );
    assert!(
        number(v, "/log/peak/records") > 0.0,
        "no record seen on disk: {v:#}"
    );
}

/// A compacted scenario's extra figures: the keys read back and the
/// producers' live keys in the samples.
fn check_compacted(v: &Value) {
    assert!(
        number(v, "/readback/keys/keys") > 0.0,
        "no key counted in the read-back: {v:#}"
    );
    assert!(
        number(v, "/log/peak/keys/live") > 0.0,
        "no live key in the samples: {v:#}"
    );
}

#[test]
fn messaging_runs_and_writes_json() -> anyhow::Result<()> {
    let v = run_scenario("messaging", &[])?;
    check(&v, "messaging");
    Ok(())
}

#[test]
fn metrics_runs_and_writes_json() -> anyhow::Result<()> {
    let v = run_scenario("metrics", &["producer.connections=10", "run.rate=5000"])?;
    check(&v, "metrics");
    Ok(())
}

/// Ten open-loop send loops sharing one pacing thread (`run.pacing`).
#[test]
fn metrics_with_fine_pacing_runs_and_says_so() -> anyhow::Result<()> {
    let v = run_scenario(
        "metrics",
        &[
            "producer.connections=10",
            "run.rate=5000",
            "run.pacing=fine",
        ],
    )?;
    check(&v, "metrics");
    assert_eq!(
        v.pointer("/mode").and_then(Value::as_str),
        Some("open-loop fine-paced"),
        "{v:#}"
    );
    Ok(())
}

#[test]
fn counters_runs_and_writes_json() -> anyhow::Result<()> {
    let v = run_scenario("counters", &[])?;
    check(&v, "counters");
    Ok(())
}

/// The open loop with records handed over in batches (`send_batch_ref`):
/// each call goes once its last record is due.
#[test]
fn counters_in_batches_on_an_open_loop_runs_and_writes_json() -> anyhow::Result<()> {
    let v = run_scenario(
        "counters",
        &["run.rate=20000", "producer.records_per_send=100"],
    )?;
    check(&v, "counters");
    Ok(())
}

#[test]
fn config_runs_and_writes_json() -> anyhow::Result<()> {
    // A preload of 2 000 keys, not the plan's 100 000.
    let v = run_scenario(
        "config",
        &[
            "consumer.connections=4",
            "records.keys=2000",
            "run.settle_s=0",
        ],
    )?;
    check(&v, "config");
    check_compacted(&v);
    assert_eq!(number(&v, "/preload/records"), 2000.0, "preload: {v:#}");
    Ok(())
}

#[test]
fn leases_runs_and_writes_json() -> anyhow::Result<()> {
    let v = run_scenario("leases", &["run.rate=5000", "run.settle_s=0"])?;
    check(&v, "leases");
    check_compacted(&v);
    Ok(())
}
