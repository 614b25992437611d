//! Leases and locks: ~250 B lease records keyed by resource (value = owner
//! and expiry), and a tombstone (null value) on release. The offset of an
//! acquisition is its fencing token. The plan's topic is compacted; until
//! the broker compacts, the scenario runs on a delete-policy topic.

use bytes::Bytes;

use super::{Filler, Generated, RecordSource};
use crate::keys::KeyChooser;
use crate::rng::Rng;
use crate::scenario::Records;
use crate::stamp;

/// Lease time-to-live written into each acquisition (the plan's 30 s).
const TTL_NS: u64 = 30_000_000_000;

pub struct Leases {
    rng: Rng,
    keys: Option<KeyChooser>,
    filler: Filler,
    value_bytes: usize,
    tombstone_every: u64,
    count: u64,
}

impl Leases {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        let mut rng = Rng::new(seed);
        let filler = Filler::new(&mut rng, spec.value_bytes, true);
        Ok(Self {
            keys: KeyChooser::new(spec.keys, &spec.key_distribution, spec.zipf_exponent)?,
            rng,
            filler,
            value_bytes: spec.value_bytes,
            tombstone_every: spec.tombstone_every,
            count: 0,
        })
    }
}

impl RecordSource for Leases {
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let id = self.keys.as_mut().map_or(0, |k| k.next(&mut self.rng));
        self.count += 1;
        let key = Some(Bytes::from(format!("resource-{id:010}")));
        if self.tombstone_every > 0 && self.count.is_multiple_of(self.tombstone_every) {
            return Generated { key, value: None };
        }
        let owner = self.rng.below(100_000);
        let mut value = Vec::with_capacity(self.value_bytes);
        stamp::put_binary(&mut value, stamp_ns);
        value.extend_from_slice(
            format!(
                "owner=worker-{owner:05};expires_ns={};",
                stamp_ns.saturating_add(TTL_NS)
            )
            .as_bytes(),
        );
        let rest = self.value_bytes.saturating_sub(value.len());
        self.filler.extend(&mut value, rest);
        Generated {
            key,
            value: Some(Bytes::from(value)),
        }
    }
}
