//! Committed offsets of one group: what OffsetFetch answers and what
//! `__consumer_offsets` replays to.
//!
//! # Ownership
//! Each group's `OffsetTable` is owned by the coordinator's entry for that
//! group, next to its [`super::group::Group`], under the coordinator lock.
//! A commit enters the table as *pending* in the same critical section that
//! appends its record, and becomes *committed* (what OffsetFetch answers)
//! once the offsets partition's high watermark passes that record, as
//! Kafka's `pendingOffsetCommits` do.
//!
//! # Invariants
//! - Pending commits are in log order (strictly increasing log offsets):
//!   the coordinator appends a group's records under its lock.
//! - The committed offsets equal a replay of the records below the high
//!   watermark last promoted to; committed plus pending (in order) equal a
//!   replay of every record appended (the property the model test checks).
//! - A tombstone removes the pending commits of its key too: it was
//!   appended after them.
//! - A commit whose record never becomes durable (fsync failure) is never
//!   promoted, so OffsetFetch never shows it.
//!
//! # Limits
//! - At most [`OFFSETS_PER_GROUP_MAX`] partitions per group, and as many
//!   pending commits.

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::limits::OFFSETS_PER_GROUP_MAX;
use super::records::OffsetCommitValue;

/// One committed offset, as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

impl From<OffsetCommitValue> for CommittedOffset {
    fn from(v: OffsetCommitValue) -> Self {
        Self {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp_ms: v.commit_timestamp_ms,
        }
    }
}

impl From<&CommittedOffset> for OffsetCommitValue {
    fn from(c: &CommittedOffset) -> Self {
        Self {
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata.clone(),
            commit_timestamp_ms: c.commit_timestamp_ms,
        }
    }
}

/// A commit appended to the log and not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingCommit {
    /// Offset of the record's batch's last record in `__consumer_offsets`.
    log_offset: i64,
    key: (String, i32),
    value: CommittedOffset,
}

/// A group's committed offsets by (topic, partition), and the commits
/// waiting to become durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTable {
    offsets: BTreeMap<(String, i32), CommittedOffset>,
    pending: VecDeque<PendingCommit>,
}

impl OffsetTable {
    /// Records a commit appended at `log_offset`, visible once promoted.
    pub fn put_pending(
        &mut self,
        log_offset: i64,
        topic: String,
        partition: i32,
        value: CommittedOffset,
    ) {
        debug_assert!(
            self.pending
                .back()
                .is_none_or(|p| p.log_offset <= log_offset),
            "pending commits out of log order"
        );
        self.pending.push_back(PendingCommit {
            log_offset,
            key: (topic, partition),
            value,
        });
    }

    /// Makes every pending commit below `high_watermark` committed, in log
    /// order; returns how many were promoted.
    pub fn promote_below(&mut self, high_watermark: i64) -> usize {
        let mut promoted = 0;
        while self
            .pending
            .front()
            .is_some_and(|p| p.log_offset < high_watermark)
        {
            if let Some(p) = self.pending.pop_front() {
                self.offsets.insert(p.key, p.value);
                promoted += 1;
            }
        }
        promoted
    }

    /// Pending commits not yet durable.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The table a replay of every appended record would build: pending
    /// commits applied as if durable (a clean shutdown flushes them).
    pub fn with_pending_applied(&self) -> Self {
        let mut all = self.clone();
        all.promote_below(i64::MAX);
        all
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    pub fn put(&mut self, topic: String, partition: i32, offset: CommittedOffset) {
        self.offsets.insert((topic, partition), offset);
    }

    /// Removes the committed offset and any pending commit of the key (a
    /// tombstone, appended after them).
    pub fn remove(&mut self, topic: &str, partition: i32) -> bool {
        self.pending
            .retain(|p| !(p.key.0 == topic && p.key.1 == partition));
        self.offsets
            .remove(&(topic.to_string(), partition))
            .is_some()
    }

    /// Committed offsets (pending ones not counted).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Nothing committed and nothing pending.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.pending.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.offsets.iter().map(|((t, p), c)| (t.as_str(), *p, c))
    }

    /// Whether committing `keys` would pass the per-group bounds: distinct
    /// partitions, or commits waiting to become durable.
    pub fn would_overflow<'a>(&self, keys: impl Iterator<Item = (&'a str, i32)>) -> bool {
        let pending: HashSet<(&str, i32)> = self
            .pending
            .iter()
            .map(|q| (q.key.0.as_str(), q.key.1))
            .collect();
        let pending_only = pending
            .iter()
            .filter(|(t, p)| self.get(t, *p).is_none())
            .count();
        let (mut count, mut new) = (0, 0);
        for (t, p) in keys {
            count += 1;
            new += usize::from(self.get(t, p).is_none() && !pending.contains(&(t, p)));
        }
        self.offsets.len() + pending_only + new > OFFSETS_PER_GROUP_MAX
            || self.pending.len() + count > OFFSETS_PER_GROUP_MAX
    }

    /// Offsets to delete by retention (KIP-211): all of them once a group
    /// with a protocol has been `Empty` for `retention_ms` (`empty_since`),
    /// or each one `retention_ms` after its commit for a group that only
    /// stores offsets (`empty_since` is `None` while the group has members).
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        empty_since_ms: Option<i64>,
        uses_group_protocol: bool,
    ) -> Vec<(String, i32)> {
        let Some(empty_since_ms) = empty_since_ms else {
            return Vec::new();
        };
        self.offsets
            .iter()
            .filter(|(_, c)| {
                let base = if uses_group_protocol {
                    empty_since_ms
                } else {
                    c.commit_timestamp_ms
                };
                now_ms >= base.saturating_add(retention_ms)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: ts,
        }
    }

    #[test]
    fn pending_commits_show_only_once_below_the_high_watermark() {
        let mut t = OffsetTable::default();
        t.put("a".into(), 0, at(1, 0));
        t.put_pending(10, "a".into(), 0, at(5, 0));
        t.put_pending(11, "a".into(), 0, at(7, 0));
        assert_eq!(t.get("a", 0).map(|c| c.offset), Some(1), "not durable yet");
        assert_eq!(t.promote_below(11), 1);
        assert_eq!(t.get("a", 0).map(|c| c.offset), Some(5));
        assert_eq!(
            t.with_pending_applied().get("a", 0).map(|c| c.offset),
            Some(7)
        );
        // A tombstone appended after a pending commit removes both.
        assert!(t.remove("a", 0));
        assert_eq!(t.promote_below(i64::MAX), 0);
        assert!(t.is_empty());
        // A pending commit keeps the table from being empty.
        t.put_pending(20, "b".into(), 1, at(3, 0));
        assert!(!t.is_empty(), "a pending commit keeps the group");
        assert_eq!(t.iter().count(), 0, "nothing committed yet");
        assert!(t.get("b", 1).is_none());
    }

    #[test]
    fn retention_counts_from_empty_or_from_commit() {
        let mut t = OffsetTable::default();
        t.put("a".into(), 0, at(1, 100));
        t.put("a".into(), 1, at(1, 900));
        assert!(
            t.expired(10_000, 1_000, None, true).is_empty(),
            "members present"
        );
        assert_eq!(t.expired(1_400, 1_000, Some(500), true), vec![]);
        assert_eq!(t.expired(1_500, 1_000, Some(500), true).len(), 2);
        assert_eq!(
            t.expired(1_100, 1_000, Some(0), false),
            vec![("a".to_string(), 0)],
            "standalone offsets expire one by one"
        );
    }
}
