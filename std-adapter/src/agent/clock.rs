//! The agent's clock: milliseconds since the agent started, as the core counts time.

use std::time::Duration;

use rumor_core::Instant;

/// Maps between tokio's monotonic clock and the core's millisecond [`Instant`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, rounded down to the millisecond. A sleep until [`Clock::at`]`(t)` wakes no
    /// earlier than `t`, so `now()` read after it is at least `t`.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_millis(self.origin.elapsed().as_millis() as u64)
    }

    /// `d` as the core counts time (milliseconds, saturating).
    pub(crate) fn duration(d: Duration) -> rumor_core::Duration {
        rumor_core::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The tokio instant of core time `t`.
    pub(crate) fn at(&self, t: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(t.as_millis())
    }
}
