//! Live keys as the producers see them: for each key id of the scenario's
//! key space, whether its latest record sent holds a value (live), a
//! tombstone, or nothing yet. On a compacted topic this is the state a
//! fully compacted log would hold (the live keys, plus the tombstones
//! until `delete.retention.ms`), so sampling it beside the bytes on disk
//! shows how far the log is from its compacted size.
//!
//! One byte per key id, updated with an atomic swap when a record is
//! sent; the counts move with each change of state.
//!
//! # Caveats
//! - Counted when a record is sent, not when it is acknowledged: a record
//!   that then fails still counts (a run reports its produce errors).
//! - Two producers writing the same key at nearly the same time may be
//!   ordered differently here than in the partition; over a run this moves
//!   the counts by at most the records in flight.
//!
//! # Limits
//! - [`KEYS_MAX`] key ids (one byte each): larger key spaces are not
//!   tracked.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// The largest key space tracked: 100 M ids, 100 MB.
pub const KEYS_MAX: u64 = 100_000_000;

const NEVER: u8 = 0;
const LIVE: u8 = 1;
const TOMBSTONE: u8 = 2;

#[derive(Debug)]
pub struct KeyLedger {
    state: Vec<AtomicU8>,
    live: AtomicI64,
    tombstoned: AtomicI64,
}

/// The ledger's counts at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCounts {
    /// Keys whose latest record is a value.
    pub live: u64,
    /// Keys whose latest record is a tombstone.
    pub tombstoned: u64,
}

impl KeyLedger {
    /// A ledger of `keys` ids, or `None` when there are none or more than
    /// [`KEYS_MAX`].
    pub fn new(keys: u64) -> Option<Self> {
        if keys == 0 || keys > KEYS_MAX {
            return None;
        }
        let n = usize::try_from(keys).ok()?;
        Some(Self {
            state: (0..n).map(|_| AtomicU8::new(NEVER)).collect(),
            live: AtomicI64::new(0),
            tombstoned: AtomicI64::new(0),
        })
    }

    /// Key `id` was just sent a value (`tombstone` false) or a tombstone.
    /// Ids outside the key space are ignored.
    pub fn record(&self, id: u64, tombstone: bool) {
        let Some(slot) = usize::try_from(id).ok().and_then(|i| self.state.get(i)) else {
            return;
        };
        let new = if tombstone { TOMBSTONE } else { LIVE };
        let old = slot.swap(new, Ordering::Relaxed);
        if old == new {
            return;
        }
        self.counter(old).map(|c| c.fetch_sub(1, Ordering::Relaxed));
        self.counter(new).map(|c| c.fetch_add(1, Ordering::Relaxed));
    }

    fn counter(&self, state: u8) -> Option<&AtomicI64> {
        match state {
            LIVE => Some(&self.live),
            TOMBSTONE => Some(&self.tombstoned),
            _ => None,
        }
    }

    pub fn counts(&self) -> KeyCounts {
        // A decrement may briefly run ahead of the increment it undoes
        // (another thread's swap): clamp at zero.
        let read = |c: &AtomicI64| u64::try_from(c.load(Ordering::Relaxed)).unwrap_or(0);
        KeyCounts {
            live: read(&self.live),
            tombstoned: read(&self.tombstoned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_record_of_each_key_decides_its_state() {
        let l = KeyLedger::new(10).unwrap();
        l.record(1, false);
        l.record(2, false);
        l.record(2, false);
        l.record(3, true);
        assert_eq!(
            l.counts(),
            KeyCounts {
                live: 2,
                tombstoned: 1
            }
        );
        l.record(1, true); // released
        l.record(3, false); // taken again
        assert_eq!(
            l.counts(),
            KeyCounts {
                live: 2,
                tombstoned: 1
            }
        );
        l.record(99, false); // outside the key space
        assert_eq!(l.counts().live, 2);
    }

    #[test]
    fn no_ledger_without_keys_or_beyond_the_limit() {
        assert!(KeyLedger::new(0).is_none());
        assert!(KeyLedger::new(KEYS_MAX + 1).is_none());
    }
}
