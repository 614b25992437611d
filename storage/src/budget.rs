//! The partition budget: how many partitions this process can host within
//! its descriptor and memory-map limits, and raising the descriptor limit.
//!
//! ```text
//! descriptors: RLIMIT_NOFILE (soft, after raising it to the hard limit)
//!              - a reserve for connections and the broker's own files
//!              / DESCRIPTORS_PER_PARTITION
//! maps:        vm.max_map_count - MAPS_RESERVE
//!              - 3 × open inactive segments (log.open.segments.max)
//!              / MAPS_PER_PARTITION
//! budget:      the smaller of the two
//! ```
//!
//! # Limits
//! - [`DESCRIPTORS_PER_PARTITION`] = 1: an idle partition holds its active
//!   `.log` open; its indexes are mapped without a descriptor (`mmap.rs`).
//! - [`MAPS_PER_PARTITION`] = 3: the `.log` and the two indexes of one
//!   segment are mapped.
//! - The descriptor reserve is `max.connections`, but at least
//!   [`DESCRIPTOR_RESERVE_MIN`] and at most an eighth of the limit, so the
//!   default `max.connections` (10 000) does not halve the budget.
//!
//! - Inactive segments hold no descriptor, and three maps only while
//!   open, which at most `log.open.segments.max` are (`file_budget.rs`):
//!   the budget holds however many segments each partition has.
//!
//! # Caveats
//! - A reader holding a region of a segment the budget closed keeps that
//!   file open until it is done (bounded by the requests in flight, inside
//!   the connection reserve); a limit reached anyway is a retriable error
//!   of the one request, never an offline log directory (`error.rs`).

use std::path::Path;

/// Descriptors an idle partition holds.
pub const DESCRIPTORS_PER_PARTITION: u64 = 1;

/// Memory maps an idle partition holds.
pub const MAPS_PER_PARTITION: u64 = 3;

/// Fewest descriptors kept for connections, the metadata log, checkpoints
/// being written and the process itself.
pub const DESCRIPTOR_RESERVE_MIN: u64 = 256;

/// Maps kept for the binary, its libraries, the heap and thread stacks
/// (each thread: stack and guard page; tokio's blocking pool may start
/// 512 threads).
pub const MAPS_RESERVE: u64 = 2048;

/// Linux's default `vm.max_map_count`, assumed when it cannot be read.
pub const DEFAULT_MAX_MAP_COUNT: u64 = 65_530;

/// The limits of this process the budget is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessLimits {
    /// Soft `RLIMIT_NOFILE` (`None` = unlimited).
    pub nofile: Option<u64>,
    /// `vm.max_map_count`.
    pub max_map_count: u64,
}

impl ProcessLimits {
    /// The limits in force now.
    pub fn current() -> Self {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Self {
            nofile,
            max_map_count: read_max_map_count(Path::new("/proc/sys/vm/max_map_count"))
                .unwrap_or(DEFAULT_MAX_MAP_COUNT),
        }
    }
}

fn read_max_map_count(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `RLIMIT_NOFILE` before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileRaise {
    pub soft_before: Option<u64>,
    pub soft_after: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (what Kafka's
/// packaging asks operators to do by hand). A refusal leaves the soft
/// limit as it was and is reported in the result.
pub fn raise_nofile_limit() -> NofileRaise {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    let soft_after = if before.current == before.maximum {
        before.current
    } else if setrlimit(Resource::Nofile, raised).is_ok() {
        before.maximum
    } else {
        before.current
    };
    NofileRaise {
        soft_before: before.current,
        soft_after,
        hard: before.maximum,
    }
}

/// `log.open.segments.max` when set to 0: an eighth of the partitions the
/// descriptors left after the connection reserve allow (1 024 when
/// unlimited), and no more than an eighth of what the maps allow; at
/// least 16.
pub fn default_open_segments(limits: ProcessLimits, connections_max: u64) -> u64 {
    let by_maps = limits.max_map_count.saturating_sub(MAPS_RESERVE) / MAPS_PER_PARTITION / 8;
    let by_fds = match limits.nofile {
        Some(nofile) => nofile.saturating_sub(descriptor_reserve(nofile, connections_max)) / 8,
        None => crate::file_budget::DEFAULT_OPEN_SEGMENTS as u64,
    };
    by_fds.min(by_maps).max(16)
}

/// Descriptors kept for connections: `max.connections`, at least
/// [`DESCRIPTOR_RESERVE_MIN`], at most an eighth of the limit.
fn descriptor_reserve(nofile: u64, connections_max: u64) -> u64 {
    connections_max.min(nofile / 8).max(DESCRIPTOR_RESERVE_MIN)
}

/// How many partitions this node may host. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBudget {
    /// Most partitions, in total, across every topic.
    pub partitions: u64,
    /// Why this number: the limits and reserves it came from.
    pub reason: String,
}

impl PartitionBudget {
    /// The budget under `limits`, keeping descriptors for `connections_max`
    /// connections (bounded as the module docs say) and the default number
    /// of open inactive segments.
    pub fn from_limits(limits: ProcessLimits, connections_max: u64) -> Self {
        let open_segments = default_open_segments(limits, connections_max);
        Self::from_limits_and_segments(limits, connections_max, open_segments)
    }

    /// [`PartitionBudget::from_limits`] keeping `open_segments` inactive
    /// segments open (`log.open.segments.max`).
    pub fn from_limits_and_segments(
        limits: ProcessLimits,
        connections_max: u64,
        open_segments: u64,
    ) -> Self {
        let by_maps = limits
            .max_map_count
            .saturating_sub(MAPS_RESERVE)
            .saturating_sub(open_segments.saturating_mul(MAPS_PER_PARTITION))
            / MAPS_PER_PARTITION;
        let (by_fds, fd_reason) = match limits.nofile {
            Some(nofile) => {
                let reserve = descriptor_reserve(nofile, connections_max);
                (
                    nofile.saturating_sub(reserve) / DESCRIPTORS_PER_PARTITION,
                    format!(
                        "RLIMIT_NOFILE {nofile} minus {reserve} kept for connections, {DESCRIPTORS_PER_PARTITION} per partition"
                    ),
                )
            }
            None => (u64::MAX, "RLIMIT_NOFILE unlimited".to_string()),
        };
        let map_reason = format!(
            "vm.max_map_count {} minus {MAPS_RESERVE} kept for the process and {} for open inactive segments, {MAPS_PER_PARTITION} per partition",
            limits.max_map_count,
            open_segments.saturating_mul(MAPS_PER_PARTITION)
        );
        let partitions = by_fds.min(by_maps);
        let reason = if by_fds <= by_maps {
            format!("{fd_reason} (maps would allow {by_maps}: {map_reason})")
        } else {
            format!("{map_reason} (descriptors would allow {by_fds}: {fd_reason})")
        };
        Self { partitions, reason }
    }

    /// `Err` with a message naming the budget when `hosted + adding`
    /// partitions exceed it.
    pub fn check(&self, hosted: u64, adding: u64) -> Result<(), String> {
        let total = hosted.saturating_add(adding);
        if total <= self.partitions {
            return Ok(());
        }
        Err(format!(
            "{adding} new partitions would bring this broker to {total}, above its partition budget of {} ({}); raise the limit (ulimit -n / LimitNOFILE, sysctl vm.max_map_count) and restart",
            self.partitions, self.reason
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machines_defaults_allow_ten_thousand_partitions() {
        let b = PartitionBudget::from_limits(
            ProcessLimits {
                nofile: Some(20_000),
                max_map_count: 65_530,
            },
            10_000,
        );
        // 20 000 - 2 500 for connections = 17 500; the maps allow
        // (65 530 - 2 048 - 3 × 2 187 open inactive segments) / 3 = 18 973.
        assert_eq!(b.partitions, 17_500, "{}", b.reason);
        assert!(b.check(0, 10_000).is_ok());
        let refused = b.check(9_000, 9_000).unwrap_err();
        assert!(
            refused.contains("17500")
                && refused.contains("RLIMIT_NOFILE 20000")
                && refused.contains("maps would allow 18973")
                && refused.contains("6561 for open inactive segments"),
            "{refused}"
        );
    }

    #[test]
    fn the_smaller_limit_wins_and_small_limits_keep_a_reserve() {
        let maps_bound = PartitionBudget::from_limits(
            ProcessLimits {
                nofile: None,
                max_map_count: 65_530,
            },
            10_000,
        );
        assert_eq!(maps_bound.partitions, (65_530 - MAPS_RESERVE) / 3 - 1024);
        assert!(maps_bound.reason.starts_with("vm.max_map_count"));
        let tiny = PartitionBudget::from_limits(
            ProcessLimits {
                nofile: Some(300),
                max_map_count: 65_530,
            },
            10_000,
        );
        assert_eq!(tiny.partitions, 300 - DESCRIPTOR_RESERVE_MIN);
        let few = ProcessLimits {
            nofile: Some(300),
            max_map_count: 65_530,
        };
        assert_eq!(default_open_segments(few, 10_000), 16, "at least 16");
    }

    #[test]
    fn raising_nofile_reaches_the_hard_limit_and_limits_are_readable() {
        let r = raise_nofile_limit();
        assert_eq!(r.soft_after, r.hard);
        assert_eq!(ProcessLimits::current().nofile, r.hard);
        assert!(ProcessLimits::current().max_map_count > 0);
    }
}
