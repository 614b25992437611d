//! Messaging backbone: opaque 1 KiB payloads, keyless by default (sticky
//! partitioning) or keyed when `records.keys` is set.

use bytes::Bytes;

use super::{Draw, Generated, RecordSource};
use crate::scenario::Records;

pub struct Messaging {
    draw: Draw,
}

impl Messaging {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            draw: Draw::new(spec, seed, false)?,
        })
    }
}

impl RecordSource for Messaging {
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let key_id = self.draw.key_id();
        let key = key_id.map(|id| Bytes::from(format!("key-{id}")));
        Generated {
            key_id,
            key,
            value: Some(self.draw.stamped_value(stamp_ns, &[])),
        }
    }
}
