//! When a burst of member events is due, for both consumers that coalesce them (event
//! handlers and render targets): after a quiet period with no new event, at the latest a
//! maximum wait after its first event, and at once when it holds a leave or a failure (a
//! load balancer must stop sending traffic to a member that is gone, not wait out a quiet
//! period meant for bursts of joins).

use tokio::time::{Duration, Instant};

/// The timing of one pending burst; empty when nothing is pending.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Burst {
    first: Option<Instant>,
    last: Option<Instant>,
    /// When the burst's first removal arrived.
    removal: Option<Instant>,
}

impl Burst {
    /// Records an event at `now`; `removal` when it is a leave or a failure.
    pub(crate) fn add(&mut self, now: Instant, removal: bool) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        if removal {
            self.removal.get_or_insert(now);
        }
    }

    /// When the burst is due, with `quiet` and `max_wait`, if anything is pending.
    pub(crate) fn due_at(&self, quiet: Duration, max_wait: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        let due = (last + quiet).min(first + max_wait);
        Some(self.removal.map_or(due, |r| due.min(r)))
    }

    /// Forgets the burst (it was delivered).
    pub(crate) fn clear(&mut self) {
        *self = Burst::default();
    }
}
