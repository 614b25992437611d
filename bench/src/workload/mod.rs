//! Record generators, one file per workload of `shared/workloads.md`. Each
//! turns "the next record, stamped with this send time" into a key and a
//! value shaped like that workload's data; the scenario file picks one by
//! name and sizes it (`[records]`).
//!
//! Every value begins with the send stamp ([`crate::stamp`]) so consumers
//! can measure end-to-end latency, except tombstones (no value).

mod config;
mod counters;
mod leases;
mod messaging;
mod metrics;

use bytes::BufMut;

use crate::keys::KeyChooser;
use crate::scenario::Records;
use sluice_client::rng::SplitMix64;

/// The workloads, by the names scenario files use.
pub const NAMES: &[&str] = &["messaging", "metrics", "counters", "config", "leases"];

/// One record's key and value, written by a [`RecordSource`] into buffers
/// the send loop reuses for every record: the producer copies them into
/// its batch at `send_ref`, so generating a record allocates nothing and
/// the record's bytes are written twice in all (here, then into the batch).
#[derive(Debug, Default)]
pub struct Generated {
    /// The key's id in the scenario's key space (`None`: keyless).
    pub key_id: Option<u64>,
    key: Vec<u8>,
    has_key: bool,
    value: Vec<u8>,
    has_value: bool,
}

impl Generated {
    /// Empty key and value buffers to write the next record into; the
    /// record is keyless and a tombstone until they are taken.
    fn start(&mut self, key_id: Option<u64>) -> &mut Self {
        self.key_id = key_id;
        self.key.clear();
        self.value.clear();
        self.has_key = false;
        self.has_value = false;
        self
    }

    /// The key buffer, empty; the record has a key.
    fn key_buf(&mut self) -> &mut Vec<u8> {
        self.has_key = true;
        &mut self.key
    }

    /// The value buffer, empty; the record has a value.
    fn value_buf(&mut self) -> &mut Vec<u8> {
        self.has_value = true;
        &mut self.value
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.has_key.then_some(self.key.as_slice())
    }

    /// `None`: a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.has_value.then_some(self.value.as_slice())
    }
}

/// Produces the records of one producer.
/// What every workload draws from: its random stream, its key chooser
/// (none when keyless), the filler and the value size.
pub struct Draw {
    pub rng: SplitMix64,
    keys: Option<KeyChooser>,
    pub filler: Filler,
    pub value_bytes: usize,
}

impl Draw {
    /// `printable` restricts the filler to letters and digits (text values).
    pub fn new(spec: &Records, seed: u64, printable: bool) -> anyhow::Result<Self> {
        let mut rng = SplitMix64::new(seed);
        let filler = Filler::new(&mut rng, spec.value_bytes, printable);
        Ok(Self {
            keys: KeyChooser::new(spec.keys, &spec.key_distribution, spec.zipf_exponent)?,
            rng,
            filler,
            value_bytes: spec.value_bytes,
        })
    }

    /// The next key id, or `None` for a keyless workload.
    pub fn key_id(&mut self) -> Option<u64> {
        let rng = &mut self.rng;
        self.keys.as_mut().map(|k| k.next(rng))
    }

    /// Writes a value into `value`: the binary send-time stamp, then
    /// `body`, then filler up to `value_bytes`.
    pub fn stamped_value(&mut self, value: &mut Vec<u8>, stamp_ns: u64, body: &[u8]) {
        crate::stamp::put_binary(value, stamp_ns);
        value.put_slice(body);
        let rest = self.value_bytes.saturating_sub(value.len());
        self.filler.extend(value, rest);
    }
}

pub trait RecordSource: Send {
    /// Writes the next record into `out`, its value stamped with `stamp_ns`.
    fn next(&mut self, stamp_ns: u64, out: &mut Generated);
}

/// The smallest `records.value_bytes` the workload can write: its send
/// stamp (JSON for metrics, binary for the rest), plus the counters'
/// 8-byte delta.
pub fn value_bytes_min(workload: &str) -> anyhow::Result<usize> {
    Ok(match workload {
        "metrics" => crate::stamp::JSON_BYTES,
        "counters" => crate::stamp::BINARY_BYTES + 8,
        "messaging" | "config" | "leases" => crate::stamp::BINARY_BYTES,
        other => anyhow::bail!("unknown workload {other:?} (one of {NAMES:?})"),
    })
}

/// The generator for `workload`, seeded per producer so producers differ
/// but every run repeats.
pub fn source(
    workload: &str,
    records: &Records,
    producer: u32,
) -> anyhow::Result<Box<dyn RecordSource>> {
    let seed = 0x5EED_0000_u64 ^ (u64::from(producer) << 32);
    Ok(match workload {
        "messaging" => Box::new(messaging::Messaging::new(records, seed)?),
        "metrics" => Box::new(metrics::Metrics::new(records, seed)?),
        "counters" => Box::new(counters::Counters::new(records, seed)?),
        "config" => Box::new(config::Config::new(records, seed)?),
        "leases" => Box::new(leases::Leases::new(records, seed)?),
        other => anyhow::bail!("unknown workload {other:?} (one of {NAMES:?})"),
    })
}

/// A block of random bytes that values are cut from, at a moving offset,
/// so values differ without drawing random numbers per byte.
#[derive(Debug, Clone)]
pub struct Filler {
    block: Vec<u8>,
    offset: usize,
}

/// Distinct starting points in the filler block.
const FILLER_SPAN: usize = 64 * 1024;

impl Filler {
    /// A filler able to supply up to `max` bytes per call. `printable`
    /// restricts it to letters and digits (for text values).
    pub fn new(rng: &mut SplitMix64, max: usize, printable: bool) -> Self {
        let mut block = vec![0u8; FILLER_SPAN + max];
        rng.fill(&mut block);
        if printable {
            const ALPHABET: &[u8] =
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            for b in &mut block {
                *b = ALPHABET
                    .get(usize::from(*b) % ALPHABET.len())
                    .copied()
                    .unwrap_or(b'x');
            }
        }
        Self { block, offset: 0 }
    }

    /// Appends `n` bytes (at most the `max` given at construction).
    pub fn extend(&mut self, buf: &mut impl BufMut, n: usize) {
        let start = self.offset;
        self.offset = (self.offset + 131) % FILLER_SPAN;
        if let Some(bytes) = self.block.get(start..start + n) {
            buf.put_slice(bytes);
        } else {
            buf.put_bytes(b'x', n);
        }
    }
}
