//! Process and disk figures read at scrape time from `/proc` and
//! `statvfs`: memory, CPU, descriptors and mappings against their limits,
//! and the data directory's free space.
//!
//! Every figure is optional: a missing or unreadable `/proc` file leaves
//! that series out of the scrape, never fails it.

use std::path::Path;

/// `/proc` reports CPU times in clock ticks of `USER_HZ`, which Linux
/// fixes at 100 for user space whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<i64>,
    pub virtual_memory_bytes: Option<i64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub memory_maps: Option<i64>,
    pub memory_maps_max: Option<i64>,
}

impl ProcessStats {
    pub fn read() -> Self {
        let mut out = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            out.read_stat(&stat);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            out.resident_memory_bytes = status_kib(&status, "VmRSS:").map(|k| k * 1024);
        }
        out.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64);
        out.max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        out.memory_maps = std::fs::read("/proc/self/maps")
            .ok()
            .map(|m| m.iter().filter(|b| **b == b'\n').count() as i64);
        out.memory_maps_max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        out
    }

    /// Fields of `/proc/self/stat` after the command name (which may hold
    /// spaces, so the line is split after its last `)`).
    fn read_stat(&mut self, stat: &str) {
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return;
        };
        // `rest` starts at field 3 (state); field n is at index n - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            self.cpu_seconds = Some((utime + stime) as f64 / USER_HZ);
        }
        self.virtual_memory_bytes = field(23).map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        if let (Some(start_ticks), Some(boot)) = (field(22), boot_time_seconds()) {
            self.start_time_seconds = Some(boot + start_ticks as f64 / USER_HZ);
        }
    }
}

fn status_kib(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn boot_time_seconds() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Space on the file system holding a directory.
#[derive(Debug, Clone, Copy)]
pub struct DiskUsage {
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub available_bytes: i64,
    pub total_bytes: i64,
}

impl DiskUsage {
    pub fn of(dir: &Path) -> Option<Self> {
        let s = rustix::fs::statvfs(dir).ok()?;
        let unit = s.f_frsize;
        let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(unit)).unwrap_or(i64::MAX);
        Some(Self {
            available_bytes: bytes(s.f_bavail),
            total_bytes: bytes(s.f_blocks),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reports_itself() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes.is_some_and(|v| v > 0));
        assert!(p.open_fds.is_some_and(|v| v > 0));
        assert!(p.cpu_seconds.is_some());
        assert!(p.start_time_seconds.is_some_and(|v| v > 1.0e9));
        let disk = DiskUsage::of(Path::new(".")).unwrap();
        assert!(disk.total_bytes >= disk.available_bytes && disk.total_bytes > 0);
    }

    #[test]
    fn stat_line_with_spaces_in_the_name_parses() {
        let mut p = ProcessStats::default();
        // pid (comm) state ppid … utime(14)=250 stime(15)=50 … vsize(23)
        let line = "42 (a b) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 4 0 1000 8192 100";
        p.read_stat(line);
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.virtual_memory_bytes, Some(8192));
    }
}
