//! The node's private pseudo-random generator (xoshiro128++ seeded through splitmix64).
//!
//! Randomness only picks probe orders, helpers and gossip peers, so it need not be
//! cryptographic, but it must be reproducible: the same seed gives the same run.

/// A small, fast, seedable PRNG.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u32; 4],
}

impl Rng {
    /// The state of a node not configured yet (all zero: xoshiro's one stuck state, never
    /// drawn from before `configure` seeds it).
    pub(crate) const UNSEEDED: Rng = Rng { s: [0; 4] };

    /// Seed from a `u64`; every seed, zero included, gives a usable state.
    pub(crate) const fn new(seed: u64) -> Self {
        const fn splitmix(x: u64) -> u64 {
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        let a = splitmix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let b = splitmix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(2)));
        Rng {
            s: [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32 | 1],
        }
    }

    /// The next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(7).wrapping_add(s[0]);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        result
    }

    /// A value in `0..n`, or 0 when `n` is 0 (Lemire's multiply-shift, bias < 2^-32 * n).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((u64::from(self.next_u32()) * n as u64) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_stay_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.below(13);
            assert_eq!(x, b.below(13));
            assert!(x < 13);
        }
        assert_eq!(Rng::new(0).below(0), 0);
        assert_ne!(Rng::new(1).next_u32(), Rng::new(2).next_u32());
    }
}
