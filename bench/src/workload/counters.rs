//! Counter / event firehose: 32-byte events — an 8-byte counter id as the
//! key (zipfian: 1 % of counters take most increments) and a 24-byte value
//! of send stamp, delta and padding. Tiny records stress per-record cost.

use super::{Draw, Generated, RecordSource};
use crate::scenario::Records;

pub struct Counters {
    draw: Draw,
}

impl Counters {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            draw: Draw::new(spec, seed, false)?,
        })
    }
}

impl RecordSource for Counters {
    fn next(&mut self, stamp_ns: u64, out: &mut Generated) {
        let key_id = self.draw.key_id();
        let out = out.start(key_id);
        if let Some(id) = key_id {
            out.key_buf().extend_from_slice(&id.to_be_bytes());
        }
        let delta = (self.draw.rng.below(10) as i64) + 1;
        self.draw
            .stamped_value(out.value_buf(), stamp_ns, &delta.to_le_bytes());
    }
}
