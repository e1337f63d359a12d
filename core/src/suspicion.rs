//! Lifeguard's dynamic suspicion timeout, in integer arithmetic (no floats, no libm).
//!
//! A fresh suspicion gets the longest timeout; every independent confirmation (a suspect
//! message from another member) shrinks it towards the shortest:
//! `timeout = max(min, max - (max - min) * log(C + 1) / log(K + 1))`.

use core::num::NonZeroU16;

use crate::time::{Duration, Instant};

/// Confirmations remembered per suspicion, as name fingerprints.
const CONFIRMERS: usize = 4;

/// The suspicion of one member.
#[derive(Clone, Debug)]
pub(crate) struct Suspicion {
    pub(crate) start: Instant,
    min: Duration,
    max: Duration,
    /// Confirmations needed to reach `min`.
    k: u8,
    confirmers: heapless::Vec<u32, CONFIRMERS, u8>,
    /// Fingerprint of the member that raised it (not a confirmation).
    origin: u32,
    /// Index in the member table of the latest accuser, to name in re-gossip, plus one:
    /// with no spare bit pattern here, `Option<Suspicion>` gets a tag of its own and
    /// `None` is all zero bytes (see `Node::unconfigured`).
    accuser: Option<NonZeroU16>,
}

/// 16.16 fixed-point log2 of `x` (x >= 1).
fn log2_fixed(x: u64) -> u64 {
    if x <= 1 {
        return 0;
    }
    let int = 63 - u64::from(x.leading_zeros());
    // Normalize x into [1, 2) as a 1.31 fixed-point fraction, then square repeatedly.
    let mut y: u64 = if int >= 31 {
        x >> (int - 31)
    } else {
        x << (31 - int)
    };
    let mut frac = 0u64;
    for bit in (0..16).rev() {
        y = (y * y) >> 31;
        if y >= 1 << 32 {
            y >>= 1;
            frac |= 1 << bit;
        }
    }
    (int << 16) | frac
}

/// `max(1, log10(n))` as a 16.16 fixed-point number.
fn node_scale_fixed(n: usize) -> u64 {
    // log10(n) = log2(n) / log2(10); log2(10) = 3.321928 = 217706 / 65536.
    let l = log2_fixed(n.max(1) as u64) * 65536 / 217_706;
    l.max(1 << 16)
}

/// The shortest suspicion timeout for a cluster of `n` members.
pub(crate) fn min_timeout(mult: u8, n: usize, probe_interval: Duration) -> Duration {
    let ms = u64::from(mult)
        .saturating_mul(probe_interval.as_millis())
        .saturating_mul(node_scale_fixed(n))
        >> 16;
    Duration::from_millis(ms)
}

impl Suspicion {
    /// A suspicion raised at `now` by the member with fingerprint `origin`.
    pub(crate) fn new(now: Instant, min: Duration, max_mult: u8, k: u8, origin: u32) -> Self {
        Suspicion {
            start: now,
            min,
            max: min.saturating_mul(u64::from(max_mult.max(1))),
            k,
            confirmers: heapless::Vec::new(),
            origin,
            accuser: None,
        }
    }

    /// Index in the member table of the latest accuser.
    pub(crate) fn accuser(&self) -> Option<u16> {
        self.accuser.map(|a| a.get() - 1)
    }

    /// Names the latest accuser (`None`: forget it).
    pub(crate) fn set_accuser(&mut self, index: Option<u16>) {
        self.accuser = index.and_then(|i| NonZeroU16::new(i.checked_add(1)?));
    }

    /// Counts a confirmation from `who`; true when it was new and independent.
    pub(crate) fn confirm(&mut self, who: u32) -> bool {
        if who == self.origin
            || self.confirmers.contains(&who)
            || self.confirmers.len() >= usize::from(self.k)
        {
            return false;
        }
        self.confirmers.push(who).is_ok()
    }

    /// When the member is declared failed, given the confirmations so far.
    pub(crate) fn deadline(&self) -> Instant {
        let c = self.confirmers.len() as u64;
        let k = u64::from(self.k);
        if k == 0 {
            return self.start + self.min;
        }
        let span = (self.max - self.min).as_millis();
        // frac = log(C + 1) / log(K + 1), as 16.16.
        let frac = (log2_fixed(c + 1) << 16) / log2_fixed(k + 1).max(1);
        let shrink = ((u128::from(span) * u128::from(frac)) >> 16) as u64;
        let timeout = (self.max - Duration::from_millis(shrink)).max(self.min);
        self.start + timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_is_accurate() {
        assert_eq!(log2_fixed(1), 0);
        assert_eq!(log2_fixed(2), 1 << 16);
        assert_eq!(log2_fixed(1024), 10 << 16);
        let l3 = log2_fixed(3) as f64 / 65536.0;
        assert!((l3 - 1.584_962_5).abs() < 1e-3, "{l3}");
    }

    #[test]
    fn timeouts_match_memberlist() {
        let p = Duration::from_secs(1);
        // memberlist: n <= 10 gives 4 s, n = 100 gives 8 s, n = 1000 gives 12 s.
        assert_eq!(min_timeout(4, 5, p).as_millis(), 4000);
        assert!(min_timeout(4, 100, p).as_millis().abs_diff(8000) <= 2);
        assert!(min_timeout(4, 1000, p).as_millis().abs_diff(12000) <= 2);
    }

    #[test]
    fn confirmations_shrink_the_timeout_to_the_minimum() {
        // n = 100: 48 s with no confirmation, about 22.8 s with one, 8 s with two (K = 2).
        let min = Duration::from_secs(8);
        let mut s = Suspicion::new(Instant::ZERO, min, 6, 2, 1);
        assert_eq!(s.deadline().as_millis(), 48_000);
        assert!(!s.confirm(1), "the accuser is no confirmation");
        assert!(s.confirm(2));
        assert!(!s.confirm(2), "counted once");
        assert!(s.deadline().as_millis().abs_diff(22_763) < 50);
        assert!(s.confirm(3));
        assert_eq!(s.deadline().as_millis(), 8_000);
        assert!(!s.confirm(4));
    }
}
