//! Clock conversions: smoltcp and embassy count microseconds, rumor-core counts milliseconds.

use rumor_core::Instant;

/// The rumor instant of a smoltcp timestamp (instants before smoltcp's origin clamp to zero).
pub fn from_smoltcp(now: smoltcp::time::Instant) -> Instant {
    Instant::from_millis(u64::try_from(now.total_millis()).unwrap_or(0))
}

/// The smoltcp timestamp of a rumor instant (saturating far in the future).
pub fn to_smoltcp(at: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(i64::try_from(at.as_millis()).unwrap_or(i64::MAX / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_clamps() {
        let t = Instant::from_millis(123_456);
        assert_eq!(from_smoltcp(to_smoltcp(t)), t);
        assert_eq!(
            from_smoltcp(smoltcp::time::Instant::from_millis(-5)),
            Instant::ZERO
        );
        // Sub-millisecond parts are dropped, never rounded up past a deadline.
        assert_eq!(
            from_smoltcp(smoltcp::time::Instant::from_micros(1_999)),
            Instant::from_millis(1)
        );
        let far = to_smoltcp(Instant::from_millis(u64::MAX));
        assert!(far > smoltcp::time::Instant::from_secs(1_i64 << 40));
    }
}
