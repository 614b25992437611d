//! `sluice-client`: a native async (tokio) client for Sluice and any other
//! Kafka-protocol broker — producer, consumer and admin.
//!
//! # Quick start
//! ```no_run
//! use sluice_client::{Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Offset,
//!                     Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> sluice_client::Result<()> {
//! let client = ClientConfig::new("127.0.0.1:9092");
//! Admin::connect(client.clone()).await?
//!     .create_topic(&NewTopic::new("orders", 3)).await?;
//!
//! let producer = Producer::connect(ProducerConfig::new(client.clone())).await?;
//! let delivery = producer.send(ProducerRecord::new("orders", "hello").with_key("k1")).await?;
//! let (partition, offset) = delivery.await?;
//! producer.flush().await?;
//!
//! let mut consumer = Consumer::connect(ConsumerConfig::new(client)).await?;
//! consumer.assign("orders", &[partition]).await?;
//! consumer.seek("orders", partition, Offset::At(offset)).await?;
//! let records = consumer.poll().await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`connection`]: one broker connection — frames,
//!   correlation ids, pipelining, ApiVersions negotiation, timeouts. Public
//!   because the broker's replica fetcher speaks through it too.
//! - `cluster`: bootstrap, connection per broker, reconnect backoff,
//!   metadata refresh, leader routing.
//! - [`metadata`]: the cluster snapshot.
//! - [`admin`]: topics, configs, offsets, groups.
//! - [`producer`]: batching, partitioning, compression, acks, retries,
//!   idempotence.
//! - [`consumer`]: assignment, seeking, the pipelined fetch loop, and
//!   consumer groups (join, sync, heartbeats, `range` and
//!   `cooperative-sticky`, auto and manual commit).
//!
//! # Groups
//! ```no_run
//! # use sluice_client::{ClientConfig, Consumer, ConsumerConfig, Offset};
//! # async fn run() -> sluice_client::Result<()> {
//! let config = ConsumerConfig::new(ClientConfig::new("127.0.0.1:9092"))
//!     .with_group("billing")
//!     .with_auto_offset_reset(Offset::Beginning);
//! let mut consumer = Consumer::connect(config).await?;
//! consumer.subscribe(&["orders"]).await?;
//! for _ in 0..10 {
//!     for record in consumer.poll().await? {
//!         println!("{}/{}: {:?}", record.partition, record.offset, record.value);
//!     }
//! }
//! consumer.close().await?; // commits and leaves the group
//! # Ok(()) }
//! ```
//!
//! Frames, headers, codecs and the record format come from
//! `sluice-protocol` and kafka-protocol; nothing here re-implements them.

pub mod admin;
mod cluster;
mod config;
pub mod connection;
pub mod consumer;
mod error;
mod limits;
pub mod metadata;
mod offsets;
pub mod producer;
pub mod rng;
mod versions;

pub use admin::{
    Admin, ConfigChange, ConfigEntry, ElectionOutcome, GroupDescription, GroupListing, GroupMember,
    GroupOffset, NewTopic, Reassignment, TopicDescription,
};
pub use config::ClientConfig;
pub use consumer::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, FetchedBatch, Offset, RebalanceListener,
    RecordView, TopicPartition,
};
pub use error::{Error, Result, kafka_name};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
pub use offsets::{OffsetSpec, PartitionOffset};
pub use producer::{
    Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, ProducerRecordRef,
};
pub use sluice_protocol::ErrorCode;
