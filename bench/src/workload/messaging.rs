//! Messaging backbone: opaque 1 KiB payloads, keyless by default (sticky
//! partitioning) or keyed when `records.keys` is set.

use std::io::Write as _;

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
    fn next(&mut self, stamp_ns: u64, out: &mut Generated) {
        let key_id = self.draw.key_id();
        let out = out.start(key_id);
        if let Some(id) = key_id {
            let _ = write!(out.key_buf(), "key-{id}");
        }
        self.draw.stamped_value(out.value_buf(), stamp_ns, &[]);
    }
}
