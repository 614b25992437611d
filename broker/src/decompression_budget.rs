//! The broker-wide budget of bytes being decompressed to validate client
//! batches (`queued.max.decompressed.bytes`), and the per-batch bound.
//!
//! A compressed batch must be decompressed to check its records (produce)
//! or to find a record by timestamp (ListOffsets). Its output can be many
//! times its size, so each decompression takes a [`DecompressionLease`]
//! that grows with the output buffer and is returned when the buffer is
//! freed. When the budget is spent, the decompression stops before
//! allocating and the request gets a retriable error (REQUEST_TIMED_OUT):
//! nothing was written, and the client's retry succeeds once the other
//! decompressions finish.
//!
//! # Invariants
//! - `used ≤ limit` at all times: a lease grows only by a compare-and-swap
//!   that keeps it so.
//! - A lease gives back exactly what it took, once (its `Drop`).
//!
//! # Limits
//! - [`DecompressionBudget::batch_bytes_max`]: one batch decompresses to at
//!   most [`RECORDS_EXPANSION_MAX`] × the broker's `message.max.bytes`, and
//!   never more than the whole budget. The bound uses the broker setting
//!   (the operator's), not a topic's `max.message.bytes`, which a client
//!   may raise through AlterConfigs.
//! - A request decompresses one batch at a time, so one request holds at
//!   most that much.
//!
//! # Caveats
//! - The output buffer may be up to twice the size asked for while it
//!   doubles; the budget counts the buffer's size, not the allocator's.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How much larger than the broker's `message.max.bytes` one batch's
/// records may be once decompressed (text and JSON compress 5–20×).
pub const RECORDS_EXPANSION_MAX: usize = 64;

/// Bytes being decompressed across all requests.
#[derive(Debug)]
pub struct DecompressionBudget {
    limit: usize,
    used: AtomicUsize,
    batch_bytes_max: usize,
}

/// Budget held by one decompression; grows with its buffer.
#[derive(Debug)]
pub struct DecompressionLease<'a> {
    budget: &'a DecompressionBudget,
    held: usize,
}

impl DecompressionBudget {
    /// A budget of `limit` bytes (at least one batch of `message_max_bytes`
    /// fits, whatever the setting says: otherwise nothing compressed could
    /// be accepted).
    pub fn new(limit: usize, message_max_bytes: usize) -> Self {
        let limit = limit.max(message_max_bytes).max(1);
        Self {
            limit,
            used: AtomicUsize::new(0),
            batch_bytes_max: message_max_bytes
                .saturating_mul(RECORDS_EXPANSION_MAX)
                .min(limit),
        }
    }

    /// The most one batch may decompress to.
    pub fn batch_bytes_max(&self) -> usize {
        self.batch_bytes_max
    }

    /// Bytes held by leases now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// An empty lease; pass [`DecompressionLease::grow_to`] to the decoder.
    pub fn lease(&self) -> DecompressionLease<'_> {
        DecompressionLease {
            budget: self,
            held: 0,
        }
    }
}

impl DecompressionLease<'_> {
    /// Grows the lease to `total` bytes; `false` when the budget cannot
    /// cover it (the lease keeps what it held).
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(extra) = total.checked_sub(self.held).filter(|e| *e > 0) else {
            return true;
        };
        let budget = self.budget;
        let taken = budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(extra).filter(|u| *u <= budget.limit)
            });
        if taken.is_ok() {
            self.held = total;
        }
        taken.is_ok()
    }
}

impl Drop for DecompressionLease<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_the_limit_and_give_back_on_drop() {
        let budget = DecompressionBudget::new(100, 10);
        assert_eq!(budget.batch_bytes_max(), 100, "capped by the budget");
        let mut a = budget.lease();
        assert!(a.grow_to(60));
        assert!(a.grow_to(40), "shrinking asks nothing");
        let mut b = budget.lease();
        assert!(!b.grow_to(41));
        assert!(b.grow_to(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.grow_to(100));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_per_batch_bound_follows_the_broker_setting() {
        let budget = DecompressionBudget::new(1 << 30, 1 << 20);
        assert_eq!(budget.batch_bytes_max(), 64 << 20);
        // A budget smaller than one batch is raised to fit one.
        assert_eq!(DecompressionBudget::new(0, 1000).batch_bytes_max(), 1000);
    }
}
