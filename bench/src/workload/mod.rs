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

use bytes::{BufMut, Bytes, BytesMut};

use crate::keys::KeyChooser;
use crate::scenario::Records;
use sluice_client::rng::SplitMix64;

/// The workloads, by the names scenario files use.
pub const NAMES: &[&str] = &["messaging", "metrics", "counters", "config", "leases"];

/// One record's key and value (`None` value: a tombstone).
#[derive(Debug, Clone)]
pub struct Generated {
    /// The key's id in the scenario's key space (`None`: keyless).
    pub key_id: Option<u64>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Produces the records of one producer.
/// What every workload draws from: its random stream, its key chooser
/// (none when keyless), the filler and the value size.
pub struct Draw {
    pub rng: SplitMix64,
    keys: Option<KeyChooser>,
    pub filler: Filler,
    pub value_bytes: usize,
    /// Values (and small keys) are written here and cut off as `Bytes`:
    /// one block of [`ARENA_BYTES`], reused once the producer has copied
    /// the values cut from it into batches — as a client reading its
    /// input into a buffer would, not one `Vec` per record.
    arena: BytesMut,
}

/// Bytes of one arena block.
const ARENA_BYTES: usize = 256 * 1024;

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
            arena: BytesMut::new(),
        })
    }

    /// `bytes` as `Bytes` cut from the arena.
    pub fn bytes(&mut self, bytes: &[u8]) -> Bytes {
        let arena = room(&mut self.arena, bytes.len());
        arena.put_slice(bytes);
        arena.split().freeze()
    }

    /// The next key id, or `None` for a keyless workload.
    pub fn key_id(&mut self) -> Option<u64> {
        let rng = &mut self.rng;
        self.keys.as_mut().map(|k| k.next(rng))
    }

    /// A value: the binary send-time stamp, then `body`, then filler up to
    /// `value_bytes`.
    pub fn stamped_value(&mut self, stamp_ns: u64, body: &[u8]) -> Bytes {
        let len = self
            .value_bytes
            .max(crate::stamp::BINARY_BYTES + body.len());
        let value = room(&mut self.arena, len);
        crate::stamp::put_binary(value, stamp_ns);
        value.put_slice(body);
        let rest = self.value_bytes.saturating_sub(value.len());
        self.filler.extend(value, rest);
        value.split().freeze()
    }
}

/// `arena` with room for `len` more bytes. When the block is used up,
/// `reserve` takes it back whole if every value cut from it is dropped
/// (the producer copies a value into its batch at once, so it nearly
/// always is), and allocates a new block otherwise.
fn room(arena: &mut BytesMut, len: usize) -> &mut BytesMut {
    if arena.capacity() - arena.len() < len {
        arena.reserve(ARENA_BYTES.max(len));
    }
    arena
}

pub trait RecordSource: Send {
    /// The next record, its value stamped with `stamp_ns`.
    fn next(&mut self, stamp_ns: u64) -> Generated;
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
