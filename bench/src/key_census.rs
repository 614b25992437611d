//! The state a reader rebuilds from a compacted topic: the read-back
//! consumer feeds every record it reads here, and at the end the census
//! says how many distinct keys it met, how many of them ended live or
//! tombstoned, and how many records were superseded ones a fully
//! compacted log would not hold.
//!
//! Keys are remembered by a 64-bit hash (SipHash, the standard library's),
//! not by their bytes: about 17 bytes a key in the table (10 M keys: under
//! 300 MB at its largest), whatever the key's length. Two keys of a 10 M
//! key space share a hash with a probability of about 3 in a million per
//! run.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use serde::{Deserialize, Serialize};

/// What the census saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// Keyed records read.
    pub records: u64,
    /// Distinct keys among them.
    pub keys: u64,
    /// Keys whose last record read holds a value.
    pub live: u64,
    /// Keys whose last record read is a tombstone.
    pub tombstoned: u64,
    /// Records read that a later record of the same key superseded.
    pub superseded: u64,
}

#[derive(Debug, Default)]
pub struct KeyCensus {
    hasher: RandomState,
    /// Key hash → its last record read was a tombstone.
    last_is_tombstone: HashMap<u64, bool>,
    records: u64,
}

impl KeyCensus {
    /// One record read, in offset order within its partition.
    pub fn add(&mut self, key: &[u8], tombstone: bool) {
        self.records += 1;
        self.last_is_tombstone
            .insert(self.hasher.hash_one(key), tombstone);
    }

    pub fn census(&self) -> Census {
        let keys = self.last_is_tombstone.len() as u64;
        let tombstoned = self.last_is_tombstone.values().filter(|t| **t).count() as u64;
        Census {
            records: self.records,
            keys,
            live: keys - tombstoned,
            tombstoned,
            superseded: self.records - keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_record_of_each_key() {
        let mut c = KeyCensus::default();
        c.add(b"a", false);
        c.add(b"b", false);
        c.add(b"a", true);
        c.add(b"c", true);
        c.add(b"c", false);
        assert_eq!(
            c.census(),
            Census {
                records: 5,
                keys: 3,
                live: 2,
                tombstoned: 1,
                superseded: 2,
            }
        );
    }
}
