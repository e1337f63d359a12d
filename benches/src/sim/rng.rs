//! The simulator's seeded pseudo-random generator.

/// SplitMix64: tiny, fast, and fully determined by its seed.
///
/// Every random choice the simulator makes (loss, jitter, duplication, per-node seeds)
/// comes from one of these, so a run is reproduced exactly by its seed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed` (any value, zero included).
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A value uniformly distributed in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            // Lemire's multiply-shift: bias below 2^-64 * range, irrelevant here.
            Some(range) => ((u128::from(self.next_u64()) * u128::from(range)) >> 64) as u64,
            None => self.next_u64(),
        }
    }

    /// A float uniformly distributed in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (`p <= 0` never, `p >= 1` always).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }
}

/// The SplitMix64 finaliser: a good 64-bit mixing function, also used to derive seeds.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let x = a.up_to(9);
            assert_eq!(x, b.up_to(9));
            assert!(x <= 9);
            let u = a.unit();
            assert_eq!(u, b.unit());
            assert!((0.0..1.0).contains(&u));
        }
        assert!(!a.chance(0.0));
        assert!(a.chance(1.0));
        assert_eq!(a.up_to(0), 0);
    }

    #[test]
    fn chance_is_roughly_calibrated() {
        let mut r = SplitMix64::new(7);
        let hits = (0..10_000).filter(|_| r.chance(0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
