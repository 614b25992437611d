//! Zipf-distributed ranks over `1..=n` without a table, so 100 M keys cost
//! nothing to set up: rejection-inversion sampling (W. Hörmann, G.
//! Derflinger, "Rejection-inversion to generate variates from monotone
//! discrete distributions", 1996), as in Apache Commons RNG's
//! `RejectionInversionZipfSampler`. Rank 1 is the hottest key.

use sluice_client::rng::SplitMix64;

/// Draws ranks `k` with probability proportional to `1 / k^exponent`.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// `n` ≥ 1 elements, `exponent` > 0.
    pub fn new(n: u64, exponent: f64) -> Self {
        let n = n.max(1) as f64;
        let mut z = Self {
            n,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            let u = self.h_integral_n + rng.next_f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_stay_in_range_and_follow_the_power_law() {
        let n = 1000;
        let z = Zipf::new(n, 1.0);
        let mut rng = SplitMix64::new(7);
        let mut counts = vec![0u64; n as usize + 1];
        let draws = 200_000;
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k), "rank {k} out of range");
            if let Some(c) = counts.get_mut(k as usize) {
                *c += 1;
            }
        }
        // P(1) = 1 / H(1000) ≈ 0.1336; P(1) / P(2) = 2.
        let p1 = counts.get(1).copied().unwrap_or(0) as f64 / draws as f64;
        assert!((p1 - 0.1336).abs() < 0.01, "p1 = {p1}");
        let ratio =
            counts.get(1).copied().unwrap_or(0) as f64 / counts.get(2).copied().unwrap_or(1) as f64;
        assert!((ratio - 2.0).abs() < 0.2, "p1/p2 = {ratio}");
    }
}
