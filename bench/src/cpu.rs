//! CPU time used by the bench itself and, when its PID is given, by the
//! broker, over a phase of the run. On a machine shared with other work
//! (builds, test suites) wall-clock rates swing with the neighbours' load;
//! bytes per CPU-second of the broker do not, so both are reported.
//!
//! Read from `/proc/<pid>/stat` (utime + stime, in USER_HZ ticks, which
//! Linux fixes at 100 per second for user space); `None` elsewhere. The
//! time each process's threads spent runnable but waiting for a CPU (the
//! second field of `/proc/<pid>/task/*/schedstat`, live threads only) says
//! whether a slow run was starved by neighbours or was waiting on I/O.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Linux's USER_HZ: the unit of utime/stime in `/proc/<pid>/stat`.
const TICKS_PER_S: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    bench_ticks: Option<u64>,
    broker_ticks: Option<u64>,
    bench_wait_ns: Option<u64>,
    broker_wait_ns: Option<u64>,
}

/// CPU seconds used between two samples, and the wall time between them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub bench_cpu_s: Option<f64>,
    pub broker_cpu_s: Option<f64>,
    /// Seconds the threads were runnable but waiting for a CPU.
    #[serde(default)]
    pub bench_cpu_wait_s: Option<f64>,
    #[serde(default)]
    pub broker_cpu_wait_s: Option<f64>,
    /// The 1-minute load average at the end of the phase (other
    /// processes included): how contended the machine was.
    pub load_average_1m: Option<f64>,
}

pub fn sample(broker_pid: Option<u32>) -> Sample {
    Sample {
        at: Instant::now(),
        bench_ticks: ticks("self"),
        broker_ticks: broker_pid.and_then(|p| ticks(&p.to_string())),
        bench_wait_ns: run_delay_ns("self"),
        broker_wait_ns: broker_pid.and_then(|p| run_delay_ns(&p.to_string())),
    }
}

pub fn between(a: &Sample, b: &Sample) -> CpuUse {
    let diff = |x: Option<u64>, y: Option<u64>| {
        x.zip(y)
            .map(|(x, y)| y.saturating_sub(x) as f64 / TICKS_PER_S)
    };
    let wait =
        |x: Option<u64>, y: Option<u64>| x.zip(y).map(|(x, y)| y.saturating_sub(x) as f64 / 1e9);
    CpuUse {
        wall_s: b.at.saturating_duration_since(a.at).as_secs_f64(),
        bench_cpu_s: diff(a.bench_ticks, b.bench_ticks),
        broker_cpu_s: diff(a.broker_ticks, b.broker_ticks),
        bench_cpu_wait_s: wait(a.bench_wait_ns, b.bench_wait_ns),
        broker_cpu_wait_s: wait(a.broker_wait_ns, b.broker_wait_ns),
        load_average_1m: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok()),
    }
}

/// Sum over the live threads of `pid` of their run-queue wait.
fn run_delay_ns(pid: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// utime + stime of `/proc/<pid>/stat`.
fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start
    // after the last ')'. utime and stime are the 12th and 13th after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let a = sample(Some(std::process::id()));
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_add(i * i);
            }
            std::hint::black_box(x);
            let used = between(&a, &sample(Some(std::process::id())));
            assert!(used.bench_cpu_s.is_some() && used.broker_cpu_s.is_some());
        }
    }
}
