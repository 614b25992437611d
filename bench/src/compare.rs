//! `sluice-bench compare A.json B.json`: the two results side by side, with
//! B / A for every figure. Reads the JSON loosely (missing figures print
//! as "-") so results from older versions of the tool still compare.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// (label, JSON pointer, higher is better)
const ROWS: &[(&str, &str, bool)] = &[
    ("produce records/s", "/produce/records_per_s", true),
    ("produce MiB/s", "/produce/mib_per_s", true),
    ("produce latency p50 ms", "/produce/latency/p50_ms", false),
    ("produce latency p90 ms", "/produce/latency/p90_ms", false),
    ("produce latency p99 ms", "/produce/latency/p99_ms", false),
    (
        "produce latency p99.9 ms",
        "/produce/latency/p999_ms",
        false,
    ),
    ("produce latency max ms", "/produce/latency/max_ms", false),
    ("produce errors", "/produce/errors", false),
    ("tail consume records/s", "/consume/records_per_s", true),
    ("end-to-end p50 ms", "/consume/e2e_latency/p50_ms", false),
    ("end-to-end p90 ms", "/consume/e2e_latency/p90_ms", false),
    ("end-to-end p99 ms", "/consume/e2e_latency/p99_ms", false),
    ("end-to-end p99.9 ms", "/consume/e2e_latency/p999_ms", false),
    ("end-to-end max ms", "/consume/e2e_latency/max_ms", false),
    ("readback records/s", "/readback/records_per_s", true),
    ("readback MiB/s", "/readback/mib_per_s", true),
    (
        "ceiling loopback MiB/s",
        "/ceiling/loopback_mib_per_s",
        true,
    ),
    ("ceiling disk MiB/s", "/ceiling/disk_write_mib_per_s", true),
    ("produce / loopback", "/ratios/produce_of_loopback", true),
    ("readback / loopback", "/ratios/readback_of_loopback", true),
    (
        "produce MiB / broker CPU-s",
        "/ratios/produce_mib_per_broker_cpu_s",
        true,
    ),
    (
        "readback MiB / broker CPU-s",
        "/ratios/readback_mib_per_broker_cpu_s",
        true,
    ),
    (
        "bench CPU-s / GiB",
        "/cost/produce/bench_cpu_s_per_gib",
        false,
    ),
    (
        "bench CPU-s / M records",
        "/cost/produce/bench_cpu_s_per_million_records",
        false,
    ),
    (
        "broker CPU-s / GiB",
        "/cost/produce/broker_cpu_s_per_gib",
        false,
    ),
    (
        "broker CPU-s / M records",
        "/cost/produce/broker_cpu_s_per_million_records",
        false,
    ),
    (
        "readback bench CPU-s / GiB",
        "/cost/readback/bench_cpu_s_per_gib",
        false,
    ),
    (
        "readback broker CPU-s/GiB",
        "/cost/readback/broker_cpu_s_per_gib",
        false,
    ),
    ("broker CPU-s (run)", "/cpu/run/broker_cpu_s", false),
    ("bench CPU-s (run)", "/cpu/run/bench_cpu_s", false),
    ("load average (run)", "/cpu/run/load_average_1m", false),
];

fn load(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The table as text.
pub fn table(a_path: &Path, b_path: &Path) -> anyhow::Result<String> {
    let (a, b) = (load(a_path)?, load(b_path)?);
    let name = |v: &Value| {
        format!(
            "{} @ {}",
            v.pointer("/scenario")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            v.pointer("/bootstrap")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    };
    let mut out = String::new();
    out.push_str(&format!("A: {} ({})\n", a_path.display(), name(&a)));
    out.push_str(&format!("B: {} ({})\n", b_path.display(), name(&b)));
    out.push_str(&format!(
        "{:<26} {:>14} {:>14} {:>8}\n",
        "figure", "A", "B", "B / A"
    ));
    for (label, pointer, _higher_better) in ROWS {
        let x = a.pointer(pointer).and_then(Value::as_f64);
        let y = b.pointer(pointer).and_then(Value::as_f64);
        if x.is_none() && y.is_none() {
            continue;
        }
        let cell = |v: Option<f64>| v.map_or("-".to_owned(), format_number);
        let ratio = match (x, y) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.2}", y / x),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "{label:<26} {:>14} {:>14} {ratio:>8}\n",
            cell(x),
            cell(y)
        ));
    }
    Ok(out)
}

fn format_number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
