//! Consumer-group lag as `/metrics` reports it: for each committed offset
//! of a group this broker coordinates, on a partition this broker hosts,
//! `high watermark − committed offset` (what `kafka-consumer-groups
//! --describe` calls LAG), floored at 0.
//!
//! # Limits
//! Written only with `metrics.partition.series.enabled` (the switch of
//! every per-partition series), and at most [`GROUP_LAG_SERIES_MAX`]
//! series per scrape, so a broker with many groups × partitions keeps its
//! scrape bounded.
//!
//! # Caveats
//! A committed offset on a partition another broker hosts has no high
//! watermark here and gets no series (in a cluster, the coordinator and
//! the partition leader may be different nodes).

use std::collections::HashMap;

/// Most (group, topic, partition) lag series in one scrape.
pub const GROUP_LAG_SERIES_MAX: usize = 10_000;

/// One lag series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

/// The lag of every `committed` (group, topic, partition, offset) whose
/// partition is in `high_watermarks`, in the order given.
pub fn group_lags(
    committed: Vec<(String, String, i32, i64)>,
    high_watermarks: &HashMap<(&str, i32), i64>,
) -> Vec<GroupLag> {
    committed
        .into_iter()
        .filter_map(|(group, topic, partition, offset)| {
            let hw = *high_watermarks.get(&(topic.as_str(), partition))?;
            Some(GroupLag {
                lag: hw.saturating_sub(offset).max(0),
                group,
                topic,
                partition,
            })
        })
        .take(GROUP_LAG_SERIES_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_high_watermark_less_the_commit_for_hosted_partitions() {
        let hws: HashMap<(&str, i32), i64> = [(("orders", 0), 100), (("orders", 1), 7)].into();
        let committed = vec![
            ("billing".to_string(), "orders".to_string(), 0, 60),
            ("billing".to_string(), "orders".to_string(), 1, 7),
            // Committed past the high watermark (a truncated log): 0, not negative.
            ("audit".to_string(), "orders".to_string(), 1, 9),
            // Not hosted here: no series.
            ("billing".to_string(), "elsewhere".to_string(), 0, 1),
        ];
        let lags = group_lags(committed, &hws);
        let got: Vec<(&str, &str, i32, i64)> = lags
            .iter()
            .map(|l| (l.group.as_str(), l.topic.as_str(), l.partition, l.lag))
            .collect();
        assert_eq!(
            got,
            [
                ("billing", "orders", 0, 40),
                ("billing", "orders", 1, 0),
                ("audit", "orders", 1, 0)
            ]
        );
    }

    #[test]
    fn the_series_are_capped() {
        let hws: HashMap<(&str, i32), i64> = [(("t", 0), 10)].into();
        let committed = (0..GROUP_LAG_SERIES_MAX + 50)
            .map(|g| (format!("g{g}"), "t".to_string(), 0, 1))
            .collect();
        assert_eq!(group_lags(committed, &hws).len(), GROUP_LAG_SERIES_MAX);
    }
}
