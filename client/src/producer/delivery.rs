//! Delivery results, resolved once per batch and read by every record.
//!
//! ```text
//! batch sealed ─► Resolver ─(ack: partition, base offset | error)─► BatchOutcome
//!                                                                    ▲ ▲ ▲
//!                         DeliveryFuture { batch, index } × records ─┘ ┘ ┘
//! ```
//!
//! A record's handle is an `Arc` clone of its batch's outcome plus its
//! index in the batch: no channel, no allocation per record. Its offset is
//! `base_offset + index`.
//!
//! # Invariants
//! - An outcome is set at most once; later sets are ignored. It is read
//!   without a lock (a `OnceLock`); the lock guards only the wakers, and
//!   a waiter re-checks the outcome under it, so a resolution between
//!   the check and the registration is never missed.
//! - Dropping the [`Resolver`] of an unresolved batch (the producer went
//!   away) resolves it to [`Error::Closed`], so no future waits forever.
//!
//! # Limits
//! - Wakers kept per batch: one per waiting task, deduplicated against the
//!   last one registered (the common case is one task awaiting the
//!   records of a batch in order). Bounded by the records of the batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// One batch's outcome, shared by its records' futures.
#[derive(Default)]
pub(crate) struct BatchOutcome {
    /// `(partition, base offset)`; base offset -1 with acks=0.
    outcome: OnceLock<Result<(i32, i64)>>,
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    fn wakers(&self) -> MutexGuard<'_, Vec<Waker>> {
        match self.wakers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The producer's side of a batch's outcome.
pub(crate) struct Resolver {
    outcome: Arc<BatchOutcome>,
}

impl Resolver {
    pub(crate) fn new() -> Self {
        Self {
            outcome: Arc::new(BatchOutcome::default()),
        }
    }

    /// The future of the record at `index` in this batch.
    pub(crate) fn future(&self, index: usize) -> DeliveryFuture {
        DeliveryFuture {
            batch: Arc::clone(&self.outcome),
            index: i64::try_from(index).unwrap_or(i64::MAX),
        }
    }

    /// Resolves every record of the batch.
    pub(crate) fn resolve(&self, outcome: Result<(i32, i64)>) {
        if self.outcome.outcome.set(outcome).is_err() {
            return;
        }
        let wakers = std::mem::take(&mut *self.outcome.wakers());
        for w in wakers {
            w.wake();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.resolve(Err(Error::Closed("producer")));
    }
}

/// Resolves to the record's `(partition, offset)` once its batch is
/// acknowledged (offset -1 with acks=0), or to the error that ended the
/// batch's delivery. Cheap: a shared pointer to the batch and an index.
pub struct DeliveryFuture {
    batch: Arc<BatchOutcome>,
    index: i64,
}

impl DeliveryFuture {
    /// The outcome if the batch is already resolved, without waiting.
    pub fn try_result(&self) -> Option<Result<(i32, i64)>> {
        self.batch.outcome.get().map(|o| self.of_record(o))
    }

    /// Whether `other` is a record of the same batch: the two resolve at
    /// the same instant, with the same error or consecutive offsets.
    pub fn same_batch(&self, other: &DeliveryFuture) -> bool {
        Arc::ptr_eq(&self.batch, &other.batch)
    }

    fn of_record(&self, outcome: &Result<(i32, i64)>) -> Result<(i32, i64)> {
        match outcome {
            Ok((partition, base)) if *base >= 0 => Ok((*partition, base + self.index)),
            Ok((partition, _)) => Ok((*partition, -1)),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<(i32, i64)>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.try_result() {
            return Poll::Ready(result);
        }
        let mut wakers = self.batch.wakers();
        // Resolved between the check and the lock: `resolve` sets the
        // outcome before it takes the wakers, so it is visible here.
        if let Some(result) = self.try_result() {
            return Poll::Ready(result);
        }
        if !wakers.last().is_some_and(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_resolution_reaches_every_record_with_its_offset() {
        let resolver = Resolver::new();
        let futures: Vec<_> = (0..100).map(|i| resolver.future(i)).collect();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            for f in futures {
                got.push(f.await.expect("delivered"));
            }
            got
        });
        tokio::task::yield_now().await;
        resolver.resolve(Ok((3, 1000)));
        resolver.resolve(Ok((9, 0)));
        let got = waiter.await.expect("joins");
        let expected: Vec<_> = (0..100).map(|i| (3, 1000 + i)).collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn acks_zero_gives_minus_one_and_a_dropped_batch_fails() {
        let resolver = Resolver::new();
        let f = resolver.future(5);
        resolver.resolve(Ok((1, -1)));
        assert_eq!(f.await.expect("delivered"), (1, -1));

        let resolver = Resolver::new();
        let f = resolver.future(0);
        assert!(f.same_batch(&resolver.future(1)));
        assert!(!f.same_batch(&Resolver::new().future(0)));
        assert!(f.try_result().is_none());
        drop(resolver);
        assert!(matches!(f.await, Err(Error::Closed(_))));
    }
}
