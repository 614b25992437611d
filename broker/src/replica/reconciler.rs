//! The reconciler: the one task that applies each published metadata
//! image to the replica manager, and the watch through which a proposer
//! learns what it did.
//!
//! ```text
//! controller ─ publish image ─┐
//! proposer ── request() ──────┼─► loop: t = requested; reconcile(newest image);
//! maintenance ── poke() ──────┘         publish Applied { generation: t, report }
//! proposer ◄── wait until Applied.generation ≥ its ticket ─┘
//! ```
//!
//! A proposer calls [`Reconciler::applied_after`] once its record is in the
//! image (the controller publishes an image before it answers the
//! proposal). It takes a ticket `t` (the request counter after its
//! increment) and wakes the loop. The loop reads the counter *before* it
//! reads the newest image, so an `Applied` with `generation ≥ t` comes from
//! a reconcile of an image at least as new as the proposer's.
//!
//! # Invariants
//! - Reconciles happen one at a time, each with the newest image (see
//!   `ReplicaManager::reconcile`); an older image never undoes a newer one.
//! - `Applied.generation` never goes down; once the loop stops, it is
//!   `u64::MAX` with an error, so no proposer waits forever.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

use super::manager::ReconcileReport;
use crate::error::BrokerError;
use crate::metadata::{MetadataImage, ProposeError};

/// What the reconciler last applied.
#[derive(Debug, Default)]
pub struct Applied {
    /// The request counter the reconcile started from (see the module doc).
    pub generation: u64,
    pub report: ReconcileReport,
    /// The reconcile failed as a whole (a broken lock, a failed task), or
    /// the loop stopped (the controller stopped): nothing was applied.
    pub error: Option<Arc<BrokerError>>,
}

/// The handle shared by the loop, proposers and maintenance.
pub struct Reconciler {
    requested: AtomicU64,
    wake: Notify,
    applied: watch::Sender<Arc<Applied>>,
}

impl Reconciler {
    /// `initial` is the start-up reconcile (done before serving).
    pub fn new(initial: ReconcileReport) -> Self {
        let (applied, _) = watch::channel(Arc::new(Applied {
            generation: 0,
            report: initial,
            error: None,
        }));
        Self {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            applied,
        }
    }

    /// What the reconciler last applied.
    pub fn applied(&self) -> Arc<Applied> {
        Arc::clone(&self.applied.borrow())
    }

    /// Asks for one more reconcile with the newest image (maintenance
    /// retrying replicas a resource limit kept closed).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Waits until a reconcile that started after this call has applied
    /// the newest image, and returns what it did. Call it once the image
    /// holds the change to wait for.
    pub async fn applied_after(&self) -> Result<Arc<Applied>, BrokerError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = self.applied.subscribe();
        self.wake.notify_one();
        let applied = rx
            .wait_for(|a| a.generation >= ticket)
            .await
            .map(|a| Arc::clone(&a))
            .map_err(|_| BrokerError::Metadata(ProposeError::Stopped))?;
        match &applied.error {
            Some(e) => Err(BrokerError::Reconcile(Arc::clone(e))),
            None => Ok(applied),
        }
    }

    /// The loop: reconciles once now, then after every published image
    /// and every request, until `images` closes (the controller stopped).
    /// `reconcile` applies the newest image (off the reactor).
    pub async fn run<F, Fut>(
        &self,
        mut images: watch::Receiver<Arc<MetadataImage>>,
        mut reconcile: F,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ReconcileReport, BrokerError>>,
    {
        loop {
            // Before the image is read: see the module doc.
            let generation = self.requested.load(Ordering::SeqCst);
            images.borrow_and_update();
            let applied = match reconcile().await {
                Ok(report) => Applied {
                    generation,
                    report,
                    error: None,
                },
                Err(e) => {
                    tracing::error!(error = %e, "reconciling partition logs failed");
                    Applied {
                        generation,
                        report: ReconcileReport::default(),
                        error: Some(Arc::new(e)),
                    }
                }
            };
            self.applied.send_replace(Arc::new(applied));
            tokio::select! {
                changed = images.changed() => if changed.is_err() { break },
                () = self.wake.notified() => {}
            }
        }
        self.applied.send_replace(Arc::new(Applied {
            generation: u64::MAX,
            report: ReconcileReport::default(),
            error: Some(Arc::new(BrokerError::Metadata(ProposeError::Stopped))),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proposer's wait ends only with a reconcile that began after it,
    /// and the reconcile sees every image published before the wait.
    #[tokio::test]
    async fn a_proposer_waits_for_a_reconcile_of_its_image() {
        let (publish, images) = watch::channel(Arc::new(MetadataImage::default()));
        let reconciler = Arc::new(Reconciler::new(ReconcileReport::default()));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let looping = {
            let reconciler = Arc::clone(&reconciler);
            let seen = Arc::clone(&seen);
            let images = images.clone();
            tokio::spawn(async move {
                let latest = images.clone();
                reconciler
                    .run(images, || {
                        let image = Arc::clone(&latest.borrow());
                        seen.lock().unwrap().push(Arc::as_ptr(&image) as usize);
                        async move {
                            tokio::task::yield_now().await;
                            Ok(ReconcileReport {
                                image,
                                failed: Default::default(),
                            })
                        }
                    })
                    .await;
            })
        };
        for _ in 0..20 {
            let image = Arc::new(MetadataImage::default());
            publish.send_replace(Arc::clone(&image));
            let applied = reconciler.applied_after().await.unwrap();
            assert!(
                Arc::ptr_eq(&applied.report.image, &image),
                "the applied image is the one published before the wait"
            );
        }
        assert!(seen.lock().unwrap().len() >= 20);
        drop(publish);
        looping.await.unwrap();
        assert!(matches!(
            reconciler.applied_after().await,
            Err(BrokerError::Reconcile(e)) if matches!(*e, BrokerError::Metadata(ProposeError::Stopped))
        ));
    }
}
