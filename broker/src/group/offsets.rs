//! Committed offsets of one group: what OffsetFetch answers and what
//! `__consumer_offsets` replays to.
//!
//! # Ownership
//! Each group's `OffsetTable` is owned by the coordinator's entry for that
//! group, next to its [`super::group::Group`], under the coordinator lock.
//! A commit is applied here in the same critical section that appends its
//! record, so the table always equals a replay of the records appended so
//! far (the property the model test checks).
//!
//! # Limits
//! - At most [`OFFSETS_PER_GROUP_MAX`] partitions per group.

use std::collections::BTreeMap;

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

/// A group's committed offsets by (topic, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTable {
    offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl OffsetTable {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    pub fn put(&mut self, topic: String, partition: i32, offset: CommittedOffset) {
        self.offsets.insert((topic, partition), offset);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) -> bool {
        self.offsets
            .remove(&(topic.to_string(), partition))
            .is_some()
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.offsets.iter().map(|((t, p), c)| (t.as_str(), *p, c))
    }

    /// Whether `count_new` more partitions would pass the per-group bound.
    pub fn would_overflow<'a>(&self, keys: impl Iterator<Item = (&'a str, i32)>) -> bool {
        let new = keys.filter(|(t, p)| self.get(t, *p).is_none()).count();
        self.offsets.len() + new > OFFSETS_PER_GROUP_MAX
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
