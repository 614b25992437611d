//! The admin client: topics, their configs, offsets, and the cluster.
//!
//! Topic creation and deletion go to the controller the metadata names
//! (any broker forwards in KRaft mode, so a stale controller id is not
//! fatal). Describing a topic combines Metadata (partitions, leaders,
//! replicas) and DescribeConfigs (its settings).
//!
//! # Caveats
//! - Group administration lives in `admin/groups.rs` and needs a broker
//!   that serves the group APIs.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error_code::ErrorCode;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::metadata::{ClusterMetadata, TopicInfo, require_topic};
use crate::offsets::{OffsetSpec, PartitionOffset, list_offsets};

pub(crate) mod groups;
pub(crate) mod partitions;

pub use groups::{GroupDescription, GroupListing, GroupMember, GroupOffset};
pub use partitions::{ElectionOutcome, Reassignment};

/// Kafka's resource type for a topic in the config APIs.
const RESOURCE_TOPIC: i8 = 2;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// `-1`: the broker's default.
    pub partitions: i32,
    /// `-1`: the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    pub fn with_replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// One config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Whether the value is the broker default rather than set on the topic.
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

/// A topic's partitions and configs.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    pub topic: TopicInfo,
    pub configs: Vec<ConfigEntry>,
}

/// One change to a topic config (IncrementalAlterConfigs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the broker default.
    Delete(String),
}

/// The admin client.
#[derive(Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// Connects to the cluster.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        Ok(Self {
            cluster: Cluster::connect(config).await?,
        })
    }

    /// Brokers, controller and every topic.
    pub async fn cluster_metadata(&self) -> Result<Arc<ClusterMetadata>> {
        self.cluster.refresh_metadata(None).await
    }

    /// Every topic, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let meta = self.cluster.refresh_metadata(None).await?;
        Ok(meta.topics.values().cloned().collect())
    }

    /// Creates `topic`; errors with TOPIC_ALREADY_EXISTS and friends.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms(&self.cluster))
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(
                        topic
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    ),
            ]);
        let response = self.controller().await?.call(&request).await?;
        for t in response.topics {
            check_with_message(t.error_code, t.error_message, || {
                format!("create topic '{}'", topic.name)
            })?;
        }
        let _ = self
            .cluster
            .refresh_metadata(Some(std::slice::from_ref(&topic.name)))
            .await;
        Ok(())
    }

    /// Deletes `topics`; the first error wins.
    pub async fn delete_topics(&self, topics: &[String]) -> Result<()> {
        let conn = self.controller().await?;
        let version = conn.version(ApiKey::DeleteTopics)?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(&self.cluster));
        // v6 names topics in `topics`; earlier versions in `topic_names`.
        if version >= 6 {
            request.topics = topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                .collect();
        } else {
            request.topic_names = topics.iter().map(|t| topic_name(t)).collect();
        }
        let response = conn.call_at(&request, version).await?;
        for r in response.responses {
            let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
            check_with_message(r.error_code, r.error_message, || {
                format!("delete topic '{name}'")
            })?;
        }
        Ok(())
    }

    /// Partitions, leaders, replicas and configs of `topic`.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let meta = self
            .cluster
            .refresh_metadata(Some(&[topic.to_owned()]))
            .await?;
        let info = require_topic(&meta, topic)?.clone();
        let configs = self.describe_topic_configs(topic).await?;
        Ok(TopicDescription {
            topic: info,
            configs,
        })
    }

    /// Every config of `topic`, defaults included.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(None),
        ]);
        let response = self.cluster.any_connection().await?.call(&request).await?;
        let mut out = Vec::new();
        for r in response.results {
            check_with_message(r.error_code, r.error_message, || {
                format!("describe configs of topic '{topic}'")
            })?;
            for c in r.configs {
                // config_source 1 = DYNAMIC_TOPIC_CONFIG; 5 = DEFAULT_CONFIG,
                // 4 = STATIC_BROKER_CONFIG. Only v1+ sends a source.
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    is_default: c.config_source != 1,
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Applies `changes` to `topic`'s configs.
    pub async fn alter_topic_configs(&self, topic: &str, changes: &[ConfigChange]) -> Result<()> {
        let configs = changes
            .iter()
            .map(|c| match c {
                ConfigChange::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigChange::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(1)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(configs),
        ]);
        let response = self.controller().await?.call(&request).await?;
        for r in response.responses {
            check_with_message(r.error_code, r.error_message, || {
                format!("alter configs of topic '{topic}'")
            })?;
        }
        Ok(())
    }

    /// `spec` for every partition of `topic`.
    pub async fn list_offsets(
        &self,
        topic: &str,
        spec: OffsetSpec,
    ) -> Result<Vec<PartitionOffset>> {
        let info = self.cluster.topic(topic, false).await?;
        let partitions: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        list_offsets(&self.cluster, topic, &partitions, spec).await
    }

    /// The controller, or any broker if it is unknown or unreachable.
    pub(crate) async fn controller(&self) -> Result<Arc<Connection>> {
        let id = self.cluster.metadata().controller_id;
        if id >= 0
            && let Ok(c) = self.cluster.node(id).await
        {
            return Ok(c);
        }
        self.cluster.any_connection().await
    }

    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub(crate) fn timeout_ms(cluster: &Cluster) -> i32 {
    i32::try_from(cluster.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
}

/// `Err(Error::Kafka)` carrying the broker's message when `code` is set.
pub(crate) fn check_with_message(
    code: i16,
    message: Option<StrBytes>,
    context: impl FnOnce() -> String,
) -> Result<()> {
    let code = ErrorCode::from_code(code);
    if code.is_none() {
        return Ok(());
    }
    Err(Error::kafka(
        code,
        context(),
        message.map(|m| m.to_string()),
    ))
}
