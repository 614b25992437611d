//! Partition leadership and placement: ElectLeaders (preferred or unclean
//! elections) and KIP-455 reassignments (AlterPartitionReassignments,
//! ListPartitionReassignments). Any broker takes them: it forwards the
//! change to the active controller.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest,
};
use sluice_protocol::error_code::ErrorCode;

use super::{Admin, check_with_message, timeout_ms, topic_name};
use crate::error::Result;

/// What an election did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionOutcome {
    pub topic: String,
    pub partition: i32,
    /// NONE when leadership moved; otherwise why not (ELECTION_NOT_NEEDED,
    /// PREFERRED_LEADER_NOT_AVAILABLE, ...).
    pub error: ErrorCode,
    pub message: Option<String>,
}

/// One reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica: the target first, then the ones leaving.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Admin {
    /// Elects leaders: preferred (`unclean = false`) or unclean, for the
    /// `(topic, partitions)` given, or for every partition with `None`
    /// (then only partitions where an election was tried are reported).
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<ElectionOutcome>> {
        let request = ElectLeadersRequest::default()
            .with_election_type(i8::from(unclean))
            .with_timeout_ms(timeout_ms(self.cluster()))
            .with_topic_partitions(partitions.map(|list| {
                list.into_iter()
                    .map(|(topic, partitions)| {
                        TopicPartitions::default()
                            .with_topic(topic_name(&topic))
                            .with_partitions(partitions)
                    })
                    .collect()
            }));
        let response = self.controller().await?.call(&request).await?;
        check_with_message(response.error_code, None, || "elect leaders".into())?;
        Ok(response
            .replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partition_result
                    .into_iter()
                    .map(move |p| ElectionOutcome {
                        topic: topic.clone(),
                        partition: p.partition_id,
                        error: ErrorCode::from_code(p.error_code),
                        message: p.error_message.map(|m| m.to_string()),
                    })
            })
            .collect())
    }

    /// Moves `topic`-`partition` to `replicas` (the first is the preferred
    /// leader), or cancels its reassignment with `None`. Returns once the
    /// controller applied the start (or cancel), not once the move is
    /// complete: follow it with [`Admin::list_partition_reassignments`].
    pub async fn alter_partition_reassignment(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
    ) -> Result<()> {
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(timeout_ms(self.cluster()))
            .with_allow_replication_factor_change(true)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(partition)
                            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                    ]),
            ]);
        let response = self.controller().await?.call(&request).await?;
        let context = || format!("reassign {topic}-{partition}");
        check_with_message(response.error_code, response.error_message, context)?;
        for t in response.responses {
            for p in t.partitions {
                check_with_message(p.error_code, p.error_message, context)?;
            }
        }
        Ok(())
    }

    /// Every reassignment in progress.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<Reassignment>> {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(timeout_ms(self.cluster()))
            .with_topics(None);
        let response = self.controller().await?.call(&request).await?;
        check_with_message(response.error_code, response.error_message, || {
            "list partition reassignments".into()
        })?;
        let ids = |list: Vec<BrokerId>| list.into_iter().map(|b| b.0).collect::<Vec<_>>();
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| Reassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }
}
