//! Configuration distribution: 1.25 KB documents under a fixed key space
//! (100 K keys), rewritten at a modest rate; readers want every update.
//! The plan's topic is compacted (`bench/scenarios/config.toml`).

use bytes::Bytes;

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
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let key_id = self.draw.key_id();
        let id = key_id.unwrap_or(0);
        self.version += 1;
        let body = format!("version={};", self.version);
        Generated {
            key_id,
            key: Some(Bytes::from(format!("config/service-{id:06}"))),
            value: Some(self.draw.stamped_value(stamp_ns, body.as_bytes())),
        }
    }
}
