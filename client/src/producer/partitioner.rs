//! Which partition a record goes to: Kafka's murmur2 for keyed records,
//! sticky partitioning for keyless ones.
//!
//! Keyed: `(murmur2(key) & 0x7fffffff) % partitions`, byte-for-byte the
//! Java client's `BuiltInPartitioner.partitionForKey` and librdkafka's
//! `murmur2_random`, so the same key lands on the same partition whichever
//! client wrote it.
//!
//! Keyless (KIP-480): every keyless record of a topic goes to one "sticky"
//! partition until a batch for it is sealed; then another partition is
//! picked at random. Batches fill faster than with round-robin, and load
//! still spreads across partitions over time.
//!
//! # References
//! Kafka `Utils.murmur2`, `BuiltInPartitioner`; librdkafka `rd_murmur2`.

use std::hash::{BuildHasher, Hasher};

use crate::rng::SplitMix64;

/// Kafka's 32-bit murmur2 (seed 0x9747b28c), as the Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let Some(&bytes) = chunk.first_chunk::<4>() else {
            break;
        };
        let mut k = u32::from_le_bytes(bytes);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    let byte = |i: usize| u32::from(tail.get(i).copied().unwrap_or(0));
    if tail.len() >= 3 {
        h ^= byte(2) << 16;
    }
    if tail.len() >= 2 {
        h ^= byte(1) << 8;
    }
    if !tail.is_empty() {
        h ^= byte(0);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition for `key` among `partitions` (> 0).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Sticky partitioning for keyless records. Each topic's current sticky
/// partition is kept by the caller with the topic's other state (the
/// accumulator's per-topic slot), so choosing one costs no lookup.
#[derive(Debug)]
pub(crate) struct StickyPartitioner {
    rng: SplitMix64,
}

impl StickyPartitioner {
    pub(crate) fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            rng: SplitMix64::new(seed),
        }
    }

    /// The sticky partition held in `current`, picked now if there is
    /// none or it is out of range.
    pub(crate) fn partition(&mut self, current: &mut Option<i32>, partitions: i32) -> i32 {
        if let Some(p) = *current
            && p < partitions
        {
            return p;
        }
        let p = self.pick(partitions, None);
        *current = Some(p);
        p
    }

    /// A batch for `partition` was sealed: move on to another partition,
    /// if it was the sticky one.
    pub(crate) fn batch_sealed(
        &mut self,
        current: &mut Option<i32>,
        partition: i32,
        partitions: i32,
    ) {
        if *current == Some(partition) {
            *current = Some(self.pick(partitions, Some(partition)));
        }
    }

    fn pick(&mut self, partitions: i32, avoid: Option<i32>) -> i32 {
        let n = u64::try_from(partitions.max(1)).unwrap_or(1);
        let mut p = i32::try_from(self.rng.below(n)).unwrap_or(0);
        if avoid == Some(p) && partitions > 1 {
            p = (p + 1) % partitions;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_stable_and_in_range() {
        for n in 1..20 {
            for key in ["a", "b", "user-17", ""] {
                let p = partition_for_key(key.as_bytes(), n);
                assert!((0..n).contains(&p));
                assert_eq!(p, partition_for_key(key.as_bytes(), n));
            }
        }
    }

    #[test]
    fn sticky_partition_moves_only_when_its_batch_is_sealed() {
        let mut s = StickyPartitioner::new();
        let (mut t, mut one) = (None, None);
        let first = s.partition(&mut t, 4);
        assert_eq!(s.partition(&mut t, 4), first);
        s.batch_sealed(&mut t, (first + 1) % 4, 4);
        assert_eq!(s.partition(&mut t, 4), first, "another partition's batch");
        s.batch_sealed(&mut t, first, 4);
        assert_ne!(s.partition(&mut t, 4), first);
        assert_eq!(s.partition(&mut one, 1), 0);
    }
}
