//! Counter / event firehose: 32-byte events — an 8-byte counter id as the
//! key (zipfian: 1 % of counters take most increments) and a 24-byte value
//! of send stamp, delta and padding. Tiny records stress per-record cost.

use bytes::Bytes;

use super::{Filler, Generated, RecordSource};
use crate::keys::KeyChooser;
use crate::rng::Rng;
use crate::scenario::Records;
use crate::stamp;

pub struct Counters {
    rng: Rng,
    keys: Option<KeyChooser>,
    filler: Filler,
    value_bytes: usize,
}

impl Counters {
    pub fn new(spec: &Records, seed: u64) -> anyhow::Result<Self> {
        let mut rng = Rng::new(seed);
        let filler = Filler::new(&mut rng, spec.value_bytes, false);
        Ok(Self {
            keys: KeyChooser::new(spec.keys, &spec.key_distribution, spec.zipf_exponent)?,
            rng,
            filler,
            value_bytes: spec.value_bytes,
        })
    }
}

impl RecordSource for Counters {
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let key = self.keys.as_mut().map(|k| {
            let id = k.next(&mut self.rng);
            Bytes::copy_from_slice(&id.to_be_bytes())
        });
        let delta = (self.rng.below(10) as i64) + 1;
        let mut value = Vec::with_capacity(self.value_bytes);
        stamp::put_binary(&mut value, stamp_ns);
        value.extend_from_slice(&delta.to_le_bytes());
        let rest = self.value_bytes.saturating_sub(value.len());
        self.filler.extend(&mut value, rest);
        Generated {
            key,
            value: Some(Bytes::from(value)),
        }
    }
}
