//! Configuration distribution: 1.25 KB documents under a fixed key space
//! (100 K keys), rewritten at a modest rate; readers want every update.
//! The plan's topic is compacted; until the broker compacts, the scenario
//! runs on a delete-policy topic (see the scenario file).

use bytes::Bytes;

use super::{Filler, Generated, RecordSource};
use crate::keys::KeyChooser;
use crate::rng::Rng;
use crate::scenario::Records;
use crate::stamp;

pub struct Config {
    rng: Rng,
    keys: Option<KeyChooser>,
    filler: Filler,
    value_bytes: usize,
    version: u64,
}

impl Config {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        let mut rng = Rng::new(seed);
        let filler = Filler::new(&mut rng, spec.value_bytes, true);
        Ok(Self {
            keys: KeyChooser::new(spec.keys, &spec.key_distribution, spec.zipf_exponent)?,
            rng,
            filler,
            value_bytes: spec.value_bytes,
            version: 0,
        })
    }
}

impl RecordSource for Config {
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let id = self.keys.as_mut().map_or(0, |k| k.next(&mut self.rng));
        self.version += 1;
        let mut value = Vec::with_capacity(self.value_bytes);
        stamp::put_binary(&mut value, stamp_ns);
        value.extend_from_slice(format!("version={};", self.version).as_bytes());
        let rest = self.value_bytes.saturating_sub(value.len());
        self.filler.extend(&mut value, rest);
        Generated {
            key: Some(Bytes::from(format!("config/service-{id:06}"))),
            value: Some(Bytes::from(value)),
        }
    }
}
