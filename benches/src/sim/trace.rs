//! A running fingerprint of everything observable in a run, to prove determinism.

/// A 64-bit hash folded over the run's deliveries and events (FNV-1a over bytes,
/// finished with a SplitMix64 mix). Equal seeds must give equal hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xCBF2_9CE4_8422_2325)
    }
}

impl TraceHash {
    /// Folds `bytes` into the hash.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    /// Folds an integer into the hash.
    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        super::rng::mix64(self.0)
    }
}
