//! Messaging backbone: opaque 1 KiB payloads, keyless by default (sticky
//! partitioning) or keyed when `records.keys` is set.

use bytes::Bytes;

use super::{Filler, Generated, RecordSource};
use crate::keys::KeyChooser;
use crate::rng::Rng;
use crate::scenario::Records;
use crate::stamp;

pub struct Messaging {
    rng: Rng,
    keys: Option<KeyChooser>,
    filler: Filler,
    value_bytes: usize,
}

impl Messaging {
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

impl RecordSource for Messaging {
    fn next(&mut self, stamp_ns: u64) -> Generated {
        let key = self.keys.as_mut().map(|k| {
            let id = k.next(&mut self.rng);
            Bytes::from(format!("key-{id}"))
        });
        let mut value = Vec::with_capacity(self.value_bytes);
        stamp::put_binary(&mut value, stamp_ns);
        self.filler
            .extend(&mut value, self.value_bytes - stamp::BINARY_BYTES);
        Generated {
            key,
            value: Some(Bytes::from(value)),
        }
    }
}
