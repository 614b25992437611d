//! The group side of [`Consumer`]: subscribe, rejoin on rebalance,
//! commit, close.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::coordinator::{GroupTimeouts, Membership};
use super::{Consumer, PartitionState, TopicPartition};
use crate::admin::GroupOffset;
use crate::error::{Error, Result};

impl Consumer {
    /// Joins the configured group for `topics`; partitions arrive through
    /// rebalances during `poll`. Replaces any manual assignment.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("subscribe needs a group_id".into()))?;
        for t in topics {
            self.cluster.topic(t, false).await?;
        }
        self.partitions.clear();
        let timeouts = GroupTimeouts {
            session: self.config.session_timeout,
            rebalance: self.config.rebalance_timeout,
            heartbeat: self.config.heartbeat_interval,
        };
        self.group = Some(Membership::new(
            Arc::clone(&self.cluster),
            group,
            self.config.assignor,
            timeouts,
            topics.iter().map(|t| (*t).to_owned()).collect(),
        ));
        self.maintain_group().await
    }

    /// Commits the position of every assigned partition (the next offset
    /// to read) to the group.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.positions_of(None);
        match &mut self.group {
            Some(g) => g.commit(&offsets).await,
            None => Err(Error::Config("commit needs a subscribed group".into())),
        }
    }

    /// Commits (with auto commit), leaves the group and stops.
    pub async fn close(mut self) -> Result<()> {
        let offsets = self.positions_of(None);
        let auto = self.config.enable_auto_commit;
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        let committed = if auto {
            group.commit(&offsets).await
        } else {
            Ok(())
        };
        let left = group.leave().await;
        committed.and(left)
    }

    /// The generation of the group this consumer is in, or -1.
    pub fn generation(&self) -> i32 {
        self.group.as_ref().map_or(-1, Membership::generation)
    }

    fn positions_of(&self, only: Option<&BTreeSet<TopicPartition>>) -> Vec<GroupOffset> {
        self.partitions
            .iter()
            .filter(|((t, p), _)| only.is_none_or(|o| o.contains(&(t.to_string(), *p))))
            .filter_map(|((t, p), s)| {
                s.position.map(|offset| GroupOffset {
                    topic: t.to_string(),
                    partition: *p,
                    offset,
                })
            })
            .collect()
    }

    /// Rejoins when needed and commits when due; called by `poll`.
    pub(super) async fn maintain_group(&mut self) -> Result<()> {
        let auto = self.config.enable_auto_commit;
        let due = self.last_commit.elapsed() >= self.config.auto_commit_interval;
        let Some(group) = &self.group else {
            return Ok(());
        };
        if group.needs_join() {
            self.rebalance().await?;
        }
        if auto && due {
            let offsets = self.positions_of(None);
            self.commit_quietly(&offsets, "auto commit").await;
            self.last_commit = tokio::time::Instant::now();
        }
        Ok(())
    }

    /// Commits `offsets`, logging (not returning) a failure: used where a
    /// failed commit only means some records may be read again.
    async fn commit_quietly(&mut self, offsets: &[GroupOffset], what: &str) {
        if let Some(group) = &mut self.group
            && let Err(e) = group.commit(offsets).await
        {
            tracing::debug!(error = %e, "{what} failed");
        }
    }

    async fn rebalance(&mut self) -> Result<()> {
        let auto = self.config.enable_auto_commit;
        let listener = self.config.rebalance_listener.clone();
        let cooperative = self.config.assignor.is_cooperative();
        // Eager protocol: give everything up (committing first) before
        // joining.
        if !cooperative {
            let offsets = self.positions_of(None);
            if auto && self.generation() >= 0 {
                self.commit_quietly(&offsets, "commit before rebalance")
                    .await;
            }
            let Some(group) = &mut self.group else {
                return Ok(());
            };
            let revoked: Vec<TopicPartition> = group.revoke_all().into_iter().collect();
            self.partitions.clear();
            if let (Some(l), false) = (&listener, revoked.is_empty()) {
                l.on_partitions_revoked(&revoked);
            }
        }
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        let change = group.join().await?;
        if !change.revoked.is_empty() {
            let offsets = self.positions_of(Some(&change.revoked));
            if auto {
                self.commit_quietly(&offsets, "commit of revoked partitions")
                    .await;
            }
            for (t, p) in &change.revoked {
                self.partitions.remove(&(Arc::from(t.as_str()), *p));
            }
            if let Some(l) = &listener {
                l.on_partitions_revoked(&change.revoked.iter().cloned().collect::<Vec<_>>());
            }
        }
        if !change.added.is_empty() {
            let committed = match &mut self.group {
                Some(g) => g.committed(&change.added).await?,
                None => Default::default(),
            };
            for tp in &change.added {
                let (position, seek) = match committed.get(tp) {
                    Some(&o) => (Some(o), None),
                    None => (None, Some(self.config.auto_offset_reset)),
                };
                self.partitions.insert(
                    (Arc::from(tp.0.as_str()), tp.1),
                    PartitionState {
                        position,
                        seek,
                        epoch: 0,
                    },
                );
            }
            if let Some(l) = &listener {
                l.on_partitions_assigned(&change.added.iter().cloned().collect::<Vec<_>>());
            }
        }
        self.last_commit = tokio::time::Instant::now();
        Ok(())
    }
}
