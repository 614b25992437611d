//! Offset newtypes: the four integers the log juggles, kept apart by type.
//!
//! - [`Offset`]: a Kafka record offset (`i64`), absolute within a partition.
//! - [`RelativeOffset`]: an offset minus its segment's base offset (`u32`),
//!   as stored in `.index` and `.timeindex` entries.
//! - [`FilePosition`]: a byte position inside one `.log` file (`u32`: a
//!   segment never exceeds `i32::MAX` bytes, see [`crate::limits`]).
//! - [`LeaderEpoch`]: the partition leader epoch stamped into each batch.
//!
//! # Invariants
//! - Offsets stored in a log are `>= 0`; [`RelativeOffset::between`] refuses
//!   an offset below the base or more than `u32::MAX` above it, so a relative
//!   offset always converts back to the absolute offset it came from.

use std::fmt;

/// An absolute record offset within one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The raw value.
    pub fn get(self) -> i64 {
        self.0
    }

    /// `self + n`, or `None` on overflow.
    pub fn checked_add(self, n: i64) -> Option<Offset> {
        self.0.checked_add(n).map(Offset)
    }

    /// The offset after this one (saturating: `i64::MAX` is never reached by
    /// a real log, and the append path rejects batches that would reach it).
    pub fn next(self) -> Offset {
        Offset(self.0.saturating_add(1))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An offset relative to its segment's base offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelativeOffset(pub u32);

impl RelativeOffset {
    /// `offset - base`, when it is representable in a `u32`.
    pub fn between(base: Offset, offset: Offset) -> Option<RelativeOffset> {
        let delta = offset.0.checked_sub(base.0)?;
        u32::try_from(delta).ok().map(RelativeOffset)
    }

    /// The absolute offset this relative offset names in a segment at `base`.
    pub fn absolute(self, base: Offset) -> Offset {
        Offset(base.0.saturating_add(i64::from(self.0)))
    }
}

/// A byte position inside one `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FilePosition(pub u32);

impl FilePosition {
    /// The position as a `u64` (file APIs take `u64`).
    pub fn get(self) -> u64 {
        u64::from(self.0)
    }
}

/// The leader epoch stamped into each batch's `partitionLeaderEpoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_offsets_round_trip_and_refuse_out_of_range() {
        let base = Offset(100);
        assert_eq!(
            RelativeOffset::between(base, Offset(105)),
            Some(RelativeOffset(5))
        );
        assert_eq!(RelativeOffset(5).absolute(base), Offset(105));
        assert_eq!(RelativeOffset::between(base, Offset(99)), None);
        let too_far = Offset(100 + i64::from(u32::MAX) + 1);
        assert_eq!(RelativeOffset::between(base, too_far), None);
        assert_eq!(Offset(i64::MAX).next(), Offset(i64::MAX));
    }
}
