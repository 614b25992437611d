//! The cleaner's key → latest-offset map, in a fixed memory budget
//! (Kafka's `SkimpyOffsetMap`).
//!
//! ```text
//! slot (24 bytes): key hash 128 bits (16 bytes) | offset i64 (8 bytes)
//! slots = log.cleaner.dedupe.buffer.size / 24; at most LOAD_FACTOR of
//! them are filled, so a probe sequence always ends at an empty slot
//! ```
//!
//! Keys are stored as a 128-bit hash, never as bytes, so the memory does
//! not depend on key sizes: two keys whose hashes collide would be taken
//! for one (the older record of the pair would be cleaned). With 128 bits
//! that needs about 2^64 keys in one cleaning; Kafka accepts the same
//! risk with MD5.
//!
//! # Invariants
//! - Memory is allocated once, in [`OffsetMap::with_memory`], and never
//!   grows: [`OffsetMap::put`] refuses a new key once `LOAD_FACTOR` of the
//!   slots are used (the cleaner then stops its dirty section there).
//! - For a key put several times the map holds the largest offset put
//!   (puts come in offset order; a smaller one is ignored).
//!
//! # References
//! Kafka's `SkimpyOffsetMap` and `log.cleaner.io.buffer.load.factor`.

use std::hash::{DefaultHasher, Hash, Hasher};

/// Bytes one slot takes: a 16-byte key hash and an 8-byte offset.
pub const SLOT_BYTES: usize = 24;

/// Fraction of the slots that may be filled (Kafka's default 0.9).
const LOAD_FACTOR_PERCENT: usize = 90;

/// An empty slot's offset (real offsets are never negative).
const EMPTY: i64 = -1;

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

/// A bounded map from key hash to the latest offset of that key.
#[derive(Debug)]
pub struct OffsetMap {
    slots: Vec<Slot>,
    used: usize,
    /// Most keys the map takes (`LOAD_FACTOR` of the slots).
    keys_max: usize,
    /// Largest offset put, if any.
    latest_offset: Option<i64>,
}

impl OffsetMap {
    /// A map using at most `bytes` of memory (at least one slot).
    pub fn with_memory(bytes: usize) -> Self {
        let slots = (bytes / SLOT_BYTES).max(2);
        Self {
            slots: vec![
                Slot {
                    hash: [0, 0],
                    offset: EMPTY,
                };
                slots
            ],
            used: 0,
            keys_max: (slots * LOAD_FACTOR_PERCENT / 100).max(1),
            latest_offset: None,
        }
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Most distinct keys this map can hold.
    pub fn keys_max(&self) -> usize {
        self.keys_max
    }

    /// The largest offset put so far.
    pub fn latest_offset(&self) -> Option<i64> {
        self.latest_offset
    }

    /// Empties the map, keeping its memory.
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.offset = EMPTY;
        }
        self.used = 0;
        self.latest_offset = None;
    }

    /// Records `offset` as the latest of `key`. `false`, changing nothing,
    /// when `key` is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = hash_key(key);
        let i = self.probe(hash);
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        if slot.offset == EMPTY {
            if self.used >= self.keys_max {
                return false;
            }
            self.used += 1;
            *slot = Slot { hash, offset };
        } else if offset > slot.offset {
            slot.offset = offset;
        }
        self.latest_offset = Some(self.latest_offset.map_or(offset, |l| l.max(offset)));
        true
    }

    /// Whether `key` could be put without the map refusing it.
    pub fn has_room_for(&self, key: &[u8]) -> bool {
        self.used < self.keys_max || self.get(key).is_some()
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let hash = hash_key(key);
        self.slots
            .get(self.probe(hash))
            .filter(|s| s.offset != EMPTY)
            .map(|s| s.offset)
    }

    /// The slot holding `hash`, or the empty slot where it would go.
    /// Linear probing; terminates because at most `keys_max < slots` are
    /// filled.
    fn probe(&self, hash: [u64; 2]) -> usize {
        let n = self.slots.len();
        let start = usize::try_from(hash[0] % n as u64).unwrap_or(0);
        let mut i = start;
        loop {
            match self.slots.get(i) {
                Some(s) if s.offset == EMPTY || s.hash == hash => return i,
                _ => {}
            }
            i = (i + 1) % n;
            if i == start {
                return i;
            }
        }
    }
}

/// 128 bits of SipHash over the key: two hashes with distinct prefixes.
fn hash_key(key: &[u8]) -> [u64; 2] {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    [half(0x5a), half(0xa5)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_per_key_and_bounded() {
        let mut m = OffsetMap::with_memory(SLOT_BYTES * 10);
        assert_eq!(m.keys_max(), 9);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 5));
        assert!(m.put(b"a", 3), "an older offset is ignored, not refused");
        assert_eq!(m.get(b"a"), Some(5));
        assert_eq!(m.get(b"b"), Some(2));
        assert_eq!(m.get(b"c"), None);
        for i in 0..7u8 {
            assert!(m.put(&[b'k', i], 10 + i64::from(i)));
        }
        assert_eq!(m.len(), 9);
        assert!(!m.has_room_for(b"new"));
        assert!(!m.put(b"new", 100), "full: a new key is refused");
        assert!(m.put(b"a", 101), "a known key still updates");
        assert_eq!(m.get(b"a"), Some(101));
        assert_eq!(m.latest_offset(), Some(101));
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get(b"a"), None);
    }
}
