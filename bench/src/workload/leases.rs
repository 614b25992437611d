//! Leases and locks: ~250 B lease records keyed by resource (value = owner
//! and expiry), and a tombstone (null value) on release. The offset of an
//! acquisition is its fencing token. The plan's topic is compacted
//! (`bench/scenarios/leases.toml`).

use std::io::Write as _;

use super::{Draw, Generated, RecordSource};
use crate::scenario::Records;

/// Lease time-to-live written into each acquisition (the plan's 30 s).
const TTL_NS: u64 = 30_000_000_000;

pub struct Leases {
    draw: Draw,
    tombstone_every: u64,
    count: u64,
}

impl Leases {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            draw: Draw::new(spec, seed, true)?,
            tombstone_every: spec.tombstone_every,
            count: 0,
        })
    }
}

impl RecordSource for Leases {
    fn next(&mut self, stamp_ns: u64, out: &mut Generated) {
        let key_id = self.draw.key_id();
        let id = key_id.unwrap_or(0);
        self.count += 1;
        let out = out.start(key_id);
        let _ = write!(out.key_buf(), "resource-{id:010}");
        if self.tombstone_every > 0 && self.count.is_multiple_of(self.tombstone_every) {
            return;
        }
        let owner = self.draw.rng.below(100_000);
        let body = format!(
            "owner=worker-{owner:05};expires_ns={};",
            stamp_ns.saturating_add(TTL_NS)
        );
        self.draw
            .stamped_value(out.value_buf(), stamp_ns, body.as_bytes());
    }
}
