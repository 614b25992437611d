//! Cluster metadata: topics, partition counts, topic configs and producer-id
//! allocation, as a log of records and the image they build.
//!
//! ```text
//! handler ── propose(record) ──► Controller: check against image
//!                                 ─► MetadataLog::append (fsync)
//!                                 ─► image.apply ─► publish Arc<MetadataImage>
//! ```
//!
//! The [`Controller`] is the one writer. Today it is local to the node; the
//! cluster work puts a Raft log where [`MetadataLog`] is, with the same
//! records and the same deterministic [`MetadataImage::apply`].
//!
//! # Invariants
//! - A record is fsynced before it is applied and published, so what a
//!   client was told survives a crash.
//! - Proposals are serialised: each is checked against the image that
//!   includes every record accepted before it.

pub mod election;
pub mod image;
pub mod log;
pub mod placement;
pub mod records;
pub mod topic_name;

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use image::{ApplyError, BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError};
pub use records::{BrokerId, Endpoint, MetadataRecord, NO_LEADER, PartitionRecord};

/// Why a proposal was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The record does not apply to the current image (deterministic).
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// The record could not be made durable; the node must not go on as if
    /// it had been.
    #[error(transparent)]
    Log(#[from] MetadataLogError),
    /// The metadata state lock was poisoned by a panic.
    #[error("the metadata state lock was poisoned by a panic")]
    Poisoned,
    /// The blocking task that writes the record panicked or was cancelled.
    #[error("metadata writer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

struct ControllerState {
    log: MetadataLog,
    image: MetadataImage,
}

/// The single writer of cluster metadata.
pub struct Controller {
    state: Arc<Mutex<ControllerState>>,
    published: watch::Sender<Arc<MetadataImage>>,
}

impl Controller {
    /// Opens the metadata log under `data_dir` and replays it.
    ///
    /// Records from a log written before replica assignment existed are
    /// brought forward onto `node_id` ([`MetadataImage::upgrade`]): such a
    /// log was written by this node alone.
    ///
    /// A replayed record that no longer applies is skipped with an error
    /// log rather than stopping the node: it was checked before it was
    /// written, so this means a bug, and the rest of the log still holds.
    pub fn open(data_dir: &Path, node_id: BrokerId) -> Result<Self, MetadataLogError> {
        let (log, records) = MetadataLog::open(data_dir)?;
        let mut image = MetadataImage::default();
        for (index, record) in records.into_iter().enumerate() {
            let record = image.upgrade(record, node_id);
            if let Err(e) = image.apply(&record) {
                tracing::error!(index, error = %e, "metadata record does not replay; skipped");
            }
        }
        let (published, _) = watch::channel(Arc::new(image.clone()));
        Ok(Self {
            state: Arc::new(Mutex::new(ControllerState { log, image })),
            published,
        })
    }

    /// The latest published image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.borrow().clone()
    }

    /// Checks, persists and applies `record`; returns the new image.
    pub async fn propose(
        &self,
        record: MetadataRecord,
    ) -> Result<Arc<MetadataImage>, ProposeError> {
        let state = Arc::clone(&self.state);
        let image = tokio::task::spawn_blocking(move || -> Result<_, ProposeError> {
            let mut state = state.lock().map_err(|_| ProposeError::Poisoned)?;
            state.image.check(&record)?;
            state.log.append(&record)?;
            state.image.apply(&record)?;
            Ok(Arc::new(state.image.clone()))
        })
        .await??;
        self.published.send_replace(Arc::clone(&image));
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[tokio::test]
    async fn accepted_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let created = MetadataRecord::TopicCreated {
            name: "orders".into(),
            topic_id: uuid::Uuid::from_u128(1),
            partitions: 3,
            configs: BTreeMap::new(),
            assignments: (0..3).map(|p| PartitionRecord::new(p, vec![1])).collect(),
        };
        {
            let c = Controller::open(dir.path(), 1).unwrap();
            c.propose(MetadataRecord::BrokerRegistered {
                id: 1,
                incarnation_id: uuid::Uuid::from_u128(2),
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: None,
                fenced: false,
            })
            .await
            .unwrap();
            c.propose(created.clone()).await.unwrap();
            assert!(matches!(
                c.propose(created).await,
                Err(ProposeError::Rejected(ApplyError::TopicExists(_)))
            ));
        }
        let c = Controller::open(dir.path(), 1).unwrap();
        assert_eq!(
            c.image().topic("orders").map(|t| t.partition_count()),
            Some(3)
        );
    }
}
