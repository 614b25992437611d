//! A small seeded pseudo-random generator (SplitMix64), the one every
//! Sluice crate draws from: the producer's sticky partitioner, the
//! controller's election timeouts and its deterministic simulation, and the
//! benchmark's key and value sequences. Each needs repeatable or cheap
//! draws, not secret ones.
//!
//! It lives here because the broker and the benchmark both depend on this
//! crate already (the broker for its one Kafka connection implementation),
//! so no crate and no dependency is added for twenty lines. The `rand`
//! crates in the lock file come with raft-rs (0.8) and proptest (0.10,
//! tests only); neither is a dependency of the client or the benchmark,
//! and neither has SplitMix64, so using them would also change every
//! simulation seed's schedule.
//!
//! # Invariants
//! The sequence for a seed never changes: a failing simulation is
//! reproduced by `SLUICE_SEED`, which replays this sequence.
//!
//! # Caveats
//! Not for anything secret. `below` reduces by modulo: its bias is at
//! most `n / 2^64`, nothing for timeouts, partitions or key choice.

/// SplitMix64 (Steele, Lea and Flood, 2014): passes BigCrush; one add and
/// three multiply-xorshifts per draw.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` ≥ 1; 0 is treated as 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or(&v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<u64> = (0..8).map(|_| a.below(10)).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.below(10)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| *x < 10));
        assert_ne!(SplitMix64::new(8).next_u64(), SplitMix64::new(7).next_u64());
    }

    #[test]
    fn the_sequence_of_a_seed_is_fixed() {
        // Seed 0's first output, from the reference implementation: the
        // simulation's seeds replay only while this holds.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn floats_and_bytes_stay_in_range() {
        let mut r = SplitMix64::new(1);
        assert!(
            (0..1000)
                .map(|_| r.next_f64())
                .all(|x| (0.0..1.0).contains(&x))
        );
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(
            buf.iter().any(|b| *b != 0),
            "13 random bytes all zero: {buf:?}"
        );
    }
}
