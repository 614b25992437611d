//! What machine a result came from: cores, memory, CPU model, kernel.
//! Read from `/proc` (Linux); fields stay empty elsewhere.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub hostname: String,
}

impl Machine {
    pub fn describe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_bytes,
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        }
    }
}
