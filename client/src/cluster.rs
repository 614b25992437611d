//! The connections to a cluster and the routing built on its metadata:
//! bootstrap, one connection per broker, reconnect with backoff, metadata
//! refresh, and "which connection leads this partition".
//!
//! Nothing here assumes a single broker: every partition is routed to the
//! node its metadata names as leader, and a routing error (not leader,
//! unknown topic, connection lost) makes callers refresh and retry.
//!
//! # Invariants
//! - At most one live connection per node id; a closed one is replaced on
//!   next use, no sooner than its backoff allows.
//! - One metadata refresh at a time; concurrent callers wait for it
//!   instead of sending their own.
//! - The metadata generation grows with every snapshot stored, after the
//!   snapshot is in place: a value derived from the snapshot read at
//!   generation g is current while the generation is still g.
//!
//! # Limits
//! - Reconnect backoff doubles from [`RECONNECT_BACKOFF_MIN`] to
//!   [`RECONNECT_BACKOFF_MAX`] per broker address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::connection::{Connection, ConnectionOptions};
use crate::error::{Error, Result};
use crate::limits::{RECONNECT_BACKOFF_MAX, RECONNECT_BACKOFF_MIN};
use crate::metadata::{ClusterMetadata, TopicInfo, require_topic};

/// Reconnect state of one address.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    next_attempt: Instant,
    delay: Duration,
}

pub(crate) struct Cluster {
    config: ClientConfig,
    options: ConnectionOptions,
    /// Live connections by node id; `-1 - i` for the i-th bootstrap address.
    connections: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    metadata: RwLock<Arc<ClusterMetadata>>,
    /// Bumped after every metadata store: the producer caches partition
    /// counts per generation instead of reading the snapshot per record.
    generation: AtomicU64,
    refresh: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers and loads the
    /// broker list.
    pub(crate) async fn connect(config: ClientConfig) -> Result<Arc<Self>> {
        if config.bootstrap.is_empty() {
            return Err(Error::Config("no bootstrap servers given".into()));
        }
        let options = ConnectionOptions {
            client_id: config.client_id.clone(),
            in_flight: config.in_flight_per_connection,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
        };
        let cluster = Arc::new(Self {
            config,
            options,
            connections: tokio::sync::Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
            generation: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(()),
        });
        cluster.refresh_metadata(Some(&[])).await?;
        Ok(cluster)
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The current snapshot (possibly stale).
    pub(crate) fn metadata(&self) -> Arc<ClusterMetadata> {
        match self.metadata.read() {
            Ok(m) => Arc::clone(&m),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// How many metadata snapshots have been stored.
    pub(crate) fn metadata_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn store_metadata(&self, meta: ClusterMetadata) -> Arc<ClusterMetadata> {
        let meta = Arc::new(meta);
        match self.metadata.write() {
            Ok(mut m) => *m = Arc::clone(&meta),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&meta),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        meta
    }

    /// Asks any broker for metadata about `topics` (`None`: every topic)
    /// and merges it into the snapshot.
    pub(crate) async fn refresh_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<Arc<ClusterMetadata>> {
        self.refresh_metadata_with(topics, false).await
    }

    pub(crate) async fn refresh_metadata_with(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<Arc<ClusterMetadata>> {
        let _one_at_a_time = self.refresh.lock().await;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::Metadata)?;
        // v1-3 cannot say "do not auto-create"; the field defaults to true.
        let request = if version < 4 {
            request.with_allow_auto_topic_creation(true)
        } else {
            request
        };
        let response = conn.call_at(&request, version).await?;
        let merged = self.metadata().merged(&response, topics.is_none())?;
        Ok(self.store_metadata(merged))
    }

    /// Metadata for `topic`, refreshed when unknown or older than the
    /// configured max age. Errors with the broker's error for the topic
    /// (UNKNOWN_TOPIC_OR_PARTITION when it does not exist).
    pub(crate) async fn topic(&self, topic: &str, allow_auto_create: bool) -> Result<TopicInfo> {
        let meta = self.metadata();
        if let Some(t) = meta.topics.get(topic)
            && meta.fetched_at.elapsed() < self.config.metadata_max_age
        {
            return Ok(t.clone());
        }
        let names = [topic.to_owned()];
        let meta = self
            .refresh_metadata_with(Some(&names), allow_auto_create)
            .await?;
        require_topic(&meta, topic).cloned()
    }

    /// A connection to the leader of `topic`/`partition` per the current
    /// snapshot.
    pub(crate) async fn leader(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let meta = self.metadata();
        let leader = meta
            .partition(topic, partition)
            .map(|p| p.leader)
            .unwrap_or(-1);
        if leader < 0 {
            return Err(Error::kafka(
                sluice_protocol::ErrorCode::of(
                    sluice_protocol::error_code::ResponseError::LeaderNotAvailable,
                ),
                crate::error::partition_context(topic, partition),
                None,
            ));
        }
        self.node(leader).await
    }

    /// The node id leading `topic`/`partition`, or -1.
    pub(crate) fn leader_id(&self, topic: &str, partition: i32) -> i32 {
        self.metadata()
            .partition(topic, partition)
            .map(|p| p.leader)
            .unwrap_or(-1)
    }

    /// A live connection to node `node_id`, connecting if needed.
    pub(crate) async fn node(&self, node_id: i32) -> Result<Arc<Connection>> {
        let mut conns = self.connections.lock().await;
        if let Some(c) = conns.get(&node_id) {
            if !c.is_closed() {
                return Ok(Arc::clone(c));
            }
            conns.remove(&node_id);
        }
        let meta = self.metadata();
        let broker = meta.brokers.get(&node_id).ok_or_else(|| Error::Connect {
            broker: format!("node {node_id}"),
            reason: "not in the cluster metadata".into(),
        })?;
        let addr = broker.address();
        let conn = Arc::new(
            self.connect_with_backoff(&addr, format!("node {node_id} ({addr})"))
                .await?,
        );
        conns.insert(node_id, Arc::clone(&conn));
        Ok(conn)
    }

    /// Any live connection: a known broker first, then the bootstrap list.
    pub(crate) async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let conns = self.connections.lock().await;
            if let Some(c) = conns.values().find(|c| !c.is_closed()) {
                return Ok(Arc::clone(c));
            }
        }
        let meta = self.metadata();
        let mut last = None;
        let known: Vec<i32> = meta.brokers.keys().copied().collect();
        for node_id in known {
            match self.node(node_id).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        for (i, addr) in self.config.bootstrap.iter().enumerate() {
            match self
                .connect_with_backoff(addr, format!("bootstrap {addr}"))
                .await
            {
                Ok(c) => {
                    let c = Arc::new(c);
                    let slot = -1 - i32::try_from(i).unwrap_or(i32::MAX - 1);
                    self.connections.lock().await.insert(slot, Arc::clone(&c));
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::NoBrokerAvailable {
            tried: self.config.bootstrap.join(","),
            last: last.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Connects to `addr`, first waiting out its backoff if a previous
    /// attempt failed.
    async fn connect_with_backoff(&self, addr: &str, label: String) -> Result<Connection> {
        let wait = self.backoff_of(addr).map(|b| b.next_attempt);
        if let Some(at) = wait {
            tokio::time::sleep_until(at.into()).await;
        }
        match Connection::connect(addr, label, &self.options).await {
            Ok(c) => {
                self.set_backoff(addr, None);
                Ok(c)
            }
            Err(e) => {
                let delay = self.backoff_of(addr).map_or(RECONNECT_BACKOFF_MIN, |b| {
                    (b.delay * 2).min(RECONNECT_BACKOFF_MAX)
                });
                self.set_backoff(
                    addr,
                    Some(Backoff {
                        next_attempt: Instant::now() + delay,
                        delay,
                    }),
                );
                tracing::debug!(%addr, error = %e, ?delay, "connect failed");
                Err(e)
            }
        }
    }

    fn backoff_of(&self, addr: &str) -> Option<Backoff> {
        match self.backoff.lock() {
            Ok(m) => m.get(addr).copied(),
            Err(p) => p.into_inner().get(addr).copied(),
        }
    }

    fn set_backoff(&self, addr: &str, value: Option<Backoff>) {
        let mut map = match self.backoff.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        match value {
            Some(b) => map.insert(addr.to_owned(), b),
            None => map.remove(addr),
        };
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// `deadline` passes; refreshes metadata for `topics` between attempts
    /// when the error says routing is stale.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        deadline: Instant,
        topics: &[String],
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retriable() || Instant::now() + self.config.retry_backoff >= deadline {
                return Err(err);
            }
            tracing::debug!(error = %err, "retrying");
            tokio::time::sleep(self.config.retry_backoff).await;
            if err.invalidates_metadata() {
                let _ = self.refresh_metadata(Some(topics)).await;
            }
        }
    }
}

impl Cluster {
    /// A connection to the coordinator of consumer group `group`
    /// (FindCoordinator, retried while the coordinator is loading).
    pub(crate) async fn coordinator(&self, group: &str) -> Result<Arc<Connection>> {
        let node_id = self.find_coordinator(group).await?;
        self.node(node_id).await
    }

    /// A connection of its own to `group`'s coordinator, shared with
    /// nothing else: a JoinGroup parked for seconds must not hold up
    /// fetches, and long-poll fetches must not delay heartbeats (the Java
    /// client does the same).
    pub(crate) async fn dedicated_coordinator(&self, group: &str) -> Result<Arc<Connection>> {
        let node_id = self.find_coordinator(group).await?;
        let addr = self
            .metadata()
            .brokers
            .get(&node_id)
            .map(crate::metadata::BrokerInfo::address)
            .ok_or_else(|| Error::Connect {
                broker: format!("node {node_id}"),
                reason: "coordinator not in the cluster metadata".into(),
            })?;
        let label = format!("coordinator node {node_id} ({addr})");
        Ok(Arc::new(self.connect_with_backoff(&addr, label).await?))
    }

    async fn find_coordinator(&self, group: &str) -> Result<i32> {
        use kafka_protocol::messages::FindCoordinatorRequest;
        let deadline = Instant::now() + self.config.request_timeout;
        let node_id = self
            .retry(deadline, &[], || async {
                let request = FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_string(group.to_owned()))
                    .with_key_type(0);
                let response = self.any_connection().await?.call(&request).await?;
                crate::admin::check_with_message(
                    response.error_code,
                    response.error_message,
                    || format!("find coordinator of group '{group}'"),
                )?;
                Ok(response.node_id.0)
            })
            .await?;
        if !self.metadata().brokers.contains_key(&node_id) {
            self.refresh_metadata(Some(&[])).await?;
        }
        Ok(node_id)
    }
}
