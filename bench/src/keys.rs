//! Which key a record gets: uniform, zipfian (a few hot keys, a long
//! tail) or sequential over `n` distinct ids.

use anyhow::bail;

use crate::zipf::Zipf;
use sluice_client::rng::SplitMix64;

#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform(u64),
    Zipf(Zipf),
    Sequential { n: u64, next: u64 },
}

impl KeyChooser {
    /// `None` when `n` is 0 (keyless records).
    pub fn new(n: u64, distribution: &str, exponent: f64) -> anyhow::Result<Option<Self>> {
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(match distribution {
            "uniform" => Self::Uniform(n),
            "zipf" => Self::Zipf(Zipf::new(n, exponent)),
            "sequential" => Self::Sequential { n, next: 0 },
            other => bail!("records.key_distribution {other:?}: uniform, zipf or sequential"),
        }))
    }

    /// A key id in `0..n`; with zipf, id 0 is the hottest.
    pub fn next(&mut self, rng: &mut SplitMix64) -> u64 {
        match self {
            Self::Uniform(n) => rng.below(*n),
            Self::Zipf(z) => z.sample(rng) - 1,
            Self::Sequential { n, next } => {
                let id = *next;
                *next = (*next + 1) % *n;
                id
            }
        }
    }
}
