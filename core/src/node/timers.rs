//! Pulled timers: `poll_timeout` reports the earliest deadline, `handle_timeout` runs
//! whatever is due. Node-wide deadlines live in [`Timers`]; per-member ones (suspicion,
//! reaping) live in the member slots. A spurious or early call does nothing.

use super::transmit::Outgoing;
use super::{Node, Phase};

use crate::member::{Status, Transition};
use crate::time::{Duration, Instant};

/// Node-wide deadlines; `None` when not armed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    /// Set once the node has seen its first `now`.
    pub(super) started: bool,
    /// End of the current protocol period: judge the probe, start the next.
    pub(super) probe: Option<Instant>,
    pub(super) gossip: Option<Instant>,
    pub(super) push_pull: Option<Instant>,
    pub(super) join: Option<Instant>,
}

impl Timers {
    pub(super) const UNARMED: Timers = Timers {
        started: false,
        probe: None,
        gossip: None,
        push_pull: None,
        join: None,
    };
}

/// Keeps the smallest of the deadlines offered.
struct Earliest(Option<Instant>);

impl Earliest {
    fn offer(&mut self, t: Option<Instant>) {
        if let Some(t) = t {
            self.0 = Some(self.0.map_or(t, |e| e.min(t)));
        }
    }
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Arms the periodic timers at the node's first input, with random phases so nodes
    /// started together do not probe in lockstep.
    pub(super) fn start(&mut self, now: Instant) {
        if self.timers.started {
            return;
        }
        self.timers.started = true;
        self.local_mut().since = now;
        let p = self.config.probe_interval.as_millis();
        let g = self.config.gossip_interval.as_millis();
        let s = self.push_pull_interval().as_millis();
        self.timers.probe = Some(now + Duration::from_millis(self.rand_below(p)));
        self.timers.gossip = Some(now + Duration::from_millis(self.rand_below(g)));
        self.timers.push_pull = Some(now + Duration::from_millis(s / 2 + self.rand_below(s)));
    }

    fn rand_below(&mut self, n: u64) -> u64 {
        self.rng.below(n.min(u64::from(u32::MAX)) as usize) as u64
    }

    /// The earliest time at which [`Node::handle_timeout`] has work to do, or `None` once the
    /// node has left. Before the first input it is [`Instant::ZERO`], so a driver that
    /// follows the contract starts the node at once.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Left {
            return None;
        }
        if !self.timers.started {
            return Some(Instant::ZERO);
        }
        let mut e = Earliest(None);
        e.offer(self.timers.gossip);
        if self.phase == Phase::Running {
            e.offer(self.timers.probe);
            e.offer(self.timers.push_pull);
            e.offer(self.timers.join);
            if let Some(p) = &self.probe
                && !p.acked()
                && !p.indirect_sent()
            {
                e.offer(Some(p.ack_deadline));
            }
        }
        for h in &self.helping {
            e.offer(Some(h.nack_at));
        }
        for &t in self.table.timed() {
            e.offer(
                self.table
                    .get(usize::from(t))
                    .and_then(|s| self.member_deadline(s)),
            );
        }
        e.0
    }

    fn member_deadline(&self, s: &crate::member::Slot) -> Option<Instant> {
        if s.pending.has(Transition::Reaped) {
            // Reaped already: the slot waits for the application to hear of it.
            return None;
        }
        match s.status {
            Status::Suspect => s.suspicion.as_ref().map(|sus| sus.deadline()),
            Status::Failed | Status::Left => Some(s.since + self.config.reap_timeout),
            Status::Alive => None,
        }
    }

    /// Runs every timer due at `now`. Calling it early, late or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Left {
            return;
        }
        self.start(now);
        self.expire_helping(now);
        self.expire_members(now);
        if self.phase == Phase::Running {
            self.grace_stalled_probe(now);
            if let Some(p) = self.probe
                && !p.acked()
                && !p.indirect_sent()
                && p.ack_deadline <= now
            {
                self.probe_indirectly(now);
            }
            if due(self.timers.probe, now) {
                self.finish_probe(now);
                self.start_probe(now);
            }
            if due(self.timers.push_pull, now) {
                self.push_pull(now);
            }
            if due(self.timers.join, now) {
                self.retry_join(now);
            }
        }
        if due(self.timers.gossip, now) {
            self.timers.gossip = Some(now + self.config.gossip_interval);
            self.gossip_round();
        }
        self.check_leave_complete();
    }

    /// A probe whose next deadline passed long before this call (the caller was stalled:
    /// the ack may be waiting, unread, in its socket) is not judged now: its remaining
    /// deadlines move so that the overdue one falls `probe_timeout` from now, once per
    /// probe. "Long" is more than half of `probe_timeout`; a driver that calls on time is
    /// never that late.
    fn grace_stalled_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.as_mut() else {
            return;
        };
        if p.acked() || p.graced() {
            return;
        }
        let overdue = if p.indirect_sent() {
            self.timers.probe
        } else {
            Some(p.ack_deadline)
        };
        let Some(overdue) = overdue else {
            return;
        };
        let late = now.saturating_duration_since(overdue);
        if overdue > now || late <= self.config.probe_timeout.div(2) {
            return;
        }
        let shift = late + self.config.probe_timeout;
        p.set_graced();
        p.ack_deadline = p.ack_deadline + shift;
        self.timers.probe = self.timers.probe.map(|t| t + shift);
        self.stats.probes_graced += 1;
    }

    /// Helpers whose target stayed silent send the origin a nack.
    fn expire_helping(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.helping.len() {
            if self.helping[i].nack_at <= now {
                let h = self.helping.swap_remove(i);
                self.enqueue(Outgoing::Nack {
                    to: h.origin,
                    seq: h.origin_seq,
                });
            } else {
                i += 1;
            }
        }
    }

    /// Suspicions that ran out become failures; old failures and leaves are reaped: the
    /// reap is recorded in the slot, which is freed once `poll_event` reports it, so a mass
    /// reap loses no event.
    fn expire_members(&mut self, now: Instant) {
        // Walk the timed list from its end: entries leave it as they expire.
        let mut k = self.table.timed().len();
        while k > 0 {
            k -= 1;
            let Some(&t) = self.table.timed().get(k) else {
                continue;
            };
            let i = usize::from(t);
            let Some(s) = self.table.get(i) else {
                continue;
            };
            if self.member_deadline(s).is_none_or(|d| d > now) {
                continue;
            }
            if s.status == Status::Suspect {
                let inc = s.incarnation;
                crate::fmt::debug!("{} declared failed", s.name.as_str());
                self.set_failed(now, i, inc);
            } else {
                self.stats.members_reaped += 1;
                self.table.record(i, Transition::Reaped);
            }
        }
    }
}

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}
