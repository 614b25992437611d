//! `sluice-bench compare A.json B.json`: the two results side by side, with
//! B / A for every figure and whether B is better or worse by it (higher
//! throughput and per-CPU figures are better, lower latency and cost).
//! Reads the JSON loosely (missing figures print as "-") so results from
//! older versions of the tool still compare. The verdict is the direction
//! only: on a shared machine a few percent either way is noise, which is
//! why runs to compare are alternated in one invocation.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// Which way a figure is better, if either: the machine's ceilings and
/// load say what the run had, not how well Sluice did.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
    Neither,
}

use Better::{Higher, Lower, Neither};

/// (label, JSON pointer, which way is better)
const ROWS: &[(&str, &str, Better)] = &[
    ("produce records/s", "/produce/records_per_s", Higher),
    ("produce MiB/s", "/produce/mib_per_s", Higher),
    ("produce latency p50 ms", "/produce/latency/p50_ms", Lower),
    ("produce latency p90 ms", "/produce/latency/p90_ms", Lower),
    ("produce latency p99 ms", "/produce/latency/p99_ms", Lower),
    (
        "produce latency p99.9 ms",
        "/produce/latency/p999_ms",
        Lower,
    ),
    ("produce latency max ms", "/produce/latency/max_ms", Lower),
    ("produce errors", "/produce/errors", Lower),
    ("tail consume records/s", "/consume/records_per_s", Higher),
    ("end-to-end p50 ms", "/consume/e2e_latency/p50_ms", Lower),
    ("end-to-end p90 ms", "/consume/e2e_latency/p90_ms", Lower),
    ("end-to-end p99 ms", "/consume/e2e_latency/p99_ms", Lower),
    ("end-to-end p99.9 ms", "/consume/e2e_latency/p999_ms", Lower),
    ("end-to-end max ms", "/consume/e2e_latency/max_ms", Lower),
    ("readback records/s", "/readback/records_per_s", Higher),
    ("readback MiB/s", "/readback/mib_per_s", Higher),
    (
        "ceiling loopback MiB/s",
        "/ceiling/loopback_mib_per_s",
        Neither,
    ),
    (
        "ceiling disk MiB/s",
        "/ceiling/disk_write_mib_per_s",
        Neither,
    ),
    ("produce / loopback", "/ratios/produce_of_loopback", Higher),
    (
        "readback / loopback",
        "/ratios/readback_of_loopback",
        Higher,
    ),
    (
        "produce MiB / broker CPU-s",
        "/ratios/produce_mib_per_broker_cpu_s",
        Higher,
    ),
    (
        "readback MiB / broker CPU-s",
        "/ratios/readback_mib_per_broker_cpu_s",
        Higher,
    ),
    (
        "bench CPU-s / GiB",
        "/cost/produce/bench_cpu_s_per_gib",
        Lower,
    ),
    (
        "bench CPU-s / M records",
        "/cost/produce/bench_cpu_s_per_million_records",
        Lower,
    ),
    (
        "broker CPU-s / GiB",
        "/cost/produce/broker_cpu_s_per_gib",
        Lower,
    ),
    (
        "broker CPU-s / M records",
        "/cost/produce/broker_cpu_s_per_million_records",
        Lower,
    ),
    (
        "readback bench CPU-s / GiB",
        "/cost/readback/bench_cpu_s_per_gib",
        Lower,
    ),
    (
        "readback broker CPU-s/GiB",
        "/cost/readback/broker_cpu_s_per_gib",
        Lower,
    ),
    ("broker CPU-s (run)", "/cpu/run/broker_cpu_s", Lower),
    ("bench CPU-s (run)", "/cpu/run/bench_cpu_s", Lower),
    ("load average (run)", "/cpu/run/load_average_1m", Neither),
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
        "{:<26} {:>14} {:>14} {:>8}  {}\n",
        "figure", "A", "B", "B / A", "B is"
    ));
    for &(label, pointer, better) in ROWS {
        let x = a.pointer(pointer).and_then(Value::as_f64);
        let y = b.pointer(pointer).and_then(Value::as_f64);
        if x.is_none() && y.is_none() {
            continue;
        }
        let cell = |v: Option<f64>| v.map_or("-".to_owned(), format_number);
        let (ratio, verdict) = match (x, y) {
            (Some(x), Some(y)) if x != 0.0 => {
                let ratio = y / x;
                (format!("{ratio:.2}"), verdict(ratio, better))
            }
            _ => ("-".to_owned(), ""),
        };
        out.push_str(
            format!(
                "{label:<26} {:>14} {:>14} {ratio:>8}  {verdict}",
                cell(x),
                cell(y)
            )
            .trim_end(),
        );
        out.push('\n');
    }
    Ok(out)
}

/// "better" or "worse" for B against A by their `ratio` (B / A); "" when
/// it prints as 1.00 or the figure is the machine's.
fn verdict(ratio: f64, better: Better) -> &'static str {
    let higher_is_better = match better {
        Higher => true,
        Lower => false,
        Neither => return "",
    };
    if (ratio - 1.0).abs() < 0.005 {
        ""
    } else if (ratio > 1.0) == higher_is_better {
        "better"
    } else {
        "worse"
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    fn row<'a>(table: &'a str, label: &str) -> Option<&'a str> {
        table.lines().find(|l| l.starts_with(label))
    }

    #[test]
    fn each_figure_gets_its_ratio_and_which_way_is_better() {
        let dir = tempfile::tempdir().unwrap();
        // (records/s, p50 ms, p99 ms, broker CPU-s per GiB, loopback MiB/s)
        let result = |name: &str, (records, p50, p99, cpu, loopback): (u32, f64, f64, f64, u32)| {
            let json = format!(
                r#"{{"scenario": "messaging", "bootstrap": "127.0.0.1:1",
                    "produce": {{"records_per_s": {records},
                                "latency": {{"p50_ms": {p50}, "p99_ms": {p99}}}}},
                    "cost": {{"produce": {{"broker_cpu_s_per_gib": {cpu}}}}},
                    "readback": {{"records_per_s": 1000}},
                    "ceiling": {{"loopback_mib_per_s": {loopback}}}}}"#
            );
            write(dir.path(), name, &json)
        };
        let a = result("a.json", (400_000, 4.00, 8.0, 1.0, 3000));
        let b = result("b.json", (500_000, 4.01, 10.0, 0.5, 1500));
        let t = table(&a, &b).unwrap();
        assert_eq!(
            row(&t, "produce records/s"),
            Some("produce records/s                  400000         500000     1.25  better")
        );
        assert!(
            row(&t, "produce latency p99 ms")
                .unwrap()
                .ends_with("1.25  worse")
        );
        assert!(
            row(&t, "broker CPU-s / GiB")
                .unwrap()
                .ends_with("0.50  better")
        );
        assert!(row(&t, "readback records/s").unwrap().ends_with("1.00"));
        assert!(row(&t, "produce latency p50 ms").unwrap().ends_with("1.00"));
        // The machine's figures get a ratio and no verdict.
        assert!(row(&t, "ceiling loopback MiB/s").unwrap().ends_with("0.50"));
        // A figure one side lacks prints "-"; one both lack is left out.
        assert!(row(&t, "produce MiB/s").is_none());
        let c = write(dir.path(), "c.json", r#"{"produce": {"records_per_s": 1}}"#);
        let t = table(&a, &c).unwrap();
        assert!(
            row(&t, "produce latency p99 ms")
                .unwrap()
                .ends_with(" -        -")
        );
        assert!(t.contains("(? @ ?)"));
    }

    #[test]
    fn a_file_that_is_not_json_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", "{}");
        let b = write(dir.path(), "b.json", "not json");
        let e = table(&a, &b).unwrap_err();
        assert!(format!("{e:#}").contains("b.json is not JSON"));
    }
}
