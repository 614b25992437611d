//! Configuration distribution: 1.25 KB documents under a fixed key space
//! (100 K keys), rewritten at a modest rate; readers want every update.
//! The plan's topic is compacted (`bench/scenarios/config.toml`).

use std::io::Write as _;

use super::{Draw, Generated, RecordSource};
use crate::scenario::Records;

pub struct Config {
    draw: Draw,
    version: u64,
}

impl Config {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            draw: Draw::new(spec, seed, true)?,
            version: 0,
        })
    }
}

impl RecordSource for Config {
    fn next(&mut self, stamp_ns: u64, out: &mut Generated) {
        let key_id = self.draw.key_id();
        let id = key_id.unwrap_or(0);
        self.version += 1;
        let body = format!("version={};", self.version);
        let out = out.start(key_id);
        let _ = write!(out.key_buf(), "config/service-{id:06}");
        self.draw
            .stamped_value(out.value_buf(), stamp_ns, body.as_bytes());
    }
}
