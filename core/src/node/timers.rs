//! Pulled timers: `poll_timeout` reports the earliest deadline, `handle_timeout` runs
//! whatever is due. Node-wide deadlines live in [`Timers`]; per-member ones (suspicion,
//! reaping) live in the member slots. A spurious or early call does nothing.

use core::net::SocketAddr;

use super::transmit::{Outgoing, SyncSession};
use super::{Node, Phase};
use crate::broadcast::Subject;
use crate::member::{Pending, Status};
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

/// The probe of the current protocol period.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub(super) target: u16,
    pub(super) seq: u32,
    /// When the direct ping is given up and helpers are asked.
    pub(super) ack_deadline: Instant,
    pub(super) expected_nacks: u8,
    pub(super) nacks: u8,
    /// [`Probe::ACKED`] and [`Probe::INDIRECT_SENT`]: one byte rather than two `bool`s, so
    /// `Option<Probe>` needs a tag of its own and `None` is all zero bytes (see
    /// [`Node::unconfigured`]).
    flags: u8,
}

impl Probe {
    const ACKED: u8 = 1;
    const INDIRECT_SENT: u8 = 2;
    const GRACED: u8 = 4;

    pub(super) fn acked(&self) -> bool {
        self.flags & Self::ACKED != 0
    }

    pub(super) fn set_acked(&mut self) {
        self.flags |= Self::ACKED;
    }

    fn indirect_sent(&self) -> bool {
        self.flags & Self::INDIRECT_SENT != 0
    }

    fn set_indirect_sent(&mut self) {
        self.flags |= Self::INDIRECT_SENT;
    }

    fn graced(&self) -> bool {
        self.flags & Self::GRACED != 0
    }

    fn set_graced(&mut self) {
        self.flags |= Self::GRACED;
    }
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
        if s.pending.has(Pending::REAPED) {
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
                self.send(Outgoing::Nack {
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
                self.table.record(i, Pending::REAPED);
            }
        }
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.saturating_mul(u64::from(self.awareness) + 1)
    }

    /// Judges the probe of the period that just ended (Lifeguard: missing nacks count
    /// against our own health, not only against the target).
    fn finish_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else {
            return;
        };
        let max = self.config.awareness_max.saturating_sub(1);
        if p.acked() {
            self.awareness = self.awareness.saturating_sub(1);
        } else {
            self.stats.probes_failed += 1;
            let missed = if p.expected_nacks == 0 {
                1
            } else {
                p.expected_nacks.saturating_sub(p.nacks)
            };
            self.awareness = self.awareness.saturating_add(missed).min(max);
            let i = usize::from(p.target);
            if let Some(s) = self.table.get(i)
                && s.status.is_live()
            {
                let inc = s.incarnation;
                let me = self.local_fingerprint();
                self.suspect(now, i, inc, me, Some(0));
            }
        }
        self.stats.health_score = u64::from(self.awareness);
    }

    /// Picks the next member in shuffled round-robin order and pings it; every other
    /// period, a random suspect instead, if there is one.
    ///
    /// Probing suspects is what makes the buddy system reliable: the suspect learns of the
    /// suspicion from the ping and its ack carries the refutation back, so a node that
    /// missed every retransmission of a refutation still learns it before its suspicion
    /// times out (without it, 10 % loss gave a few false failures per 10 minutes at 50
    /// nodes in the simulator).
    fn start_probe(&mut self, now: Instant) {
        self.timers.probe = Some(now + self.scaled(self.config.probe_interval));
        self.probe_suspect_next = !self.probe_suspect_next;
        let suspect: heapless::Vec<usize, 1> = if self.probe_suspect_next {
            self.random_members(1, None, |s| s == Status::Suspect)
        } else {
            heapless::Vec::new()
        };
        let Some(target) = suspect
            .first()
            .copied()
            .or_else(|| self.next_probe_target())
        else {
            return;
        };
        let Some(s) = self.table.get(target) else {
            return;
        };
        let suspected = (s.status == Status::Suspect).then_some(s.incarnation);
        let (to, name) = (s.addr, s.name.clone());
        let seq = self.next_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            target: target as u16,
            seq,
            ack_deadline: now + self.scaled(self.config.probe_timeout),
            expected_nacks: 0,
            nacks: 0,
            flags: 0,
        });
        self.send(Outgoing::Ping {
            to,
            seq,
            target: name,
            suspected,
        });
    }

    fn next_probe_target(&mut self) -> Option<usize> {
        for _ in 0..2 {
            while self.probe_pos < self.probe_order.len() {
                let i = usize::from(self.probe_order[self.probe_pos]);
                self.probe_pos += 1;
                if self.table.get(i).is_some_and(|s| s.status.is_live()) {
                    return Some(i);
                }
            }
            self.reshuffle_probe_order();
        }
        None
    }

    /// A fresh random order of the live members (Fisher-Yates).
    fn reshuffle_probe_order(&mut self) {
        self.probe_order.clear();
        self.probe_pos = 0;
        for i in self.table.remote_range() {
            if self.table.get(i).is_some_and(|s| s.status.is_live()) {
                // Cannot fail: at most M - 1 entries.
                let _ = self.probe_order.push(i as u16);
            }
        }
        for i in (1..self.probe_order.len()).rev() {
            let j = self.rng.below(i + 1);
            self.probe_order.swap(i, j);
        }
    }

    /// Up to `k` distinct random members whose status passes `pick`, other than the local
    /// node and `exclude`. Random probes of the table first (cheap when the table is dense
    /// in candidates, the common case); if they come up short, reservoir sampling over the
    /// whole table, which is exact.
    pub(super) fn random_members<const K: usize>(
        &mut self,
        k: usize,
        exclude: Option<usize>,
        pick: impl Fn(Status) -> bool,
    ) -> heapless::Vec<usize, K> {
        let k = k.min(K);
        let mut chosen: heapless::Vec<usize, K> = heapless::Vec::new();
        let range = self.table.remote_range();
        if range.is_empty() || k == 0 {
            return chosen;
        }
        let eligible = |i: usize, chosen: &[usize]| {
            Some(i) != exclude
                && !chosen.contains(&i)
                && self.table.get(i).is_some_and(|s| pick(s.status))
        };
        for _ in 0..4 * k {
            let i = range.start + self.rng.below(range.len());
            if eligible(i, &chosen) {
                let _ = chosen.push(i);
                if chosen.len() == k {
                    return chosen;
                }
            }
        }
        chosen.clear();
        let mut seen = 0usize;
        for i in range {
            if !eligible(i, &[]) {
                continue;
            }
            seen += 1;
            if chosen.len() < k {
                let _ = chosen.push(i);
            } else {
                let j = self.rng.below(seen);
                if j < k {
                    chosen[j] = i;
                }
            }
        }
        chosen
    }

    /// The direct ping went unanswered: ask `indirect_checks` helpers to try.
    fn probe_indirectly(&mut self, _now: Instant) {
        let Some(mut p) = self.probe else {
            return;
        };
        p.set_indirect_sent();
        let target = usize::from(p.target);
        let Some((name, addr)) = self.table.get(target).map(|s| (s.name.clone(), s.addr)) else {
            self.probe = None;
            return;
        };
        let helpers: heapless::Vec<usize, 8> = self.random_members(
            usize::from(self.config.indirect_checks),
            Some(target),
            |st| st == Status::Alive,
        );
        for &h in &helpers {
            if let Some(to) = self.table.get(h).map(|s| s.addr) {
                self.stats.indirect_probes += 1;
                p.expected_nacks += 1;
                self.send(Outgoing::PingReq {
                    to,
                    seq: p.seq,
                    target: name.clone(),
                    addr,
                });
            }
        }
        self.probe = Some(p);
    }

    /// Sends the queued updates to a few random peers.
    fn gossip_round(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let peers: heapless::Vec<usize, 8> =
            self.random_members(usize::from(self.config.gossip_nodes), None, Status::is_live);
        for &p in &peers {
            if let Some(to) = self.table.get(p).map(|s| s.addr) {
                self.send(Outgoing::Gossip { to });
            }
        }
    }

    /// Memberlist's push-pull interval, scaled up past 32 members.
    fn push_pull_interval(&self) -> Duration {
        let n = self.live_count().max(1) as u64;
        let log2_ceil = u64::from(64 - (n - 1).leading_zeros());
        let mult = if n > 32 { log2_ceil - 5 + 1 } else { 1 };
        self.config.push_pull_interval.saturating_mul(mult)
    }

    /// Anti-entropy with one random live member; a reconnect attempt with one failed
    /// member so that a healed partition merges back (Serf's reconnect, over UDP); and, when
    /// a remembered seed is not a live member, a request carrying only our own state, so that
    /// two sides that reaped each other during a long partition still find each other
    /// without sending the table to an address that may no longer be in any cluster.
    fn push_pull(&mut self, now: Instant) {
        self.timers.push_pull = Some(now + self.push_pull_interval());
        let live: heapless::Vec<usize, 1> = self.random_members(1, None, Status::is_live);
        let failed: heapless::Vec<usize, 1> = self.random_members(1, None, |s| s == Status::Failed);
        for i in live.into_iter().chain(failed) {
            if let Some(to) = self.table.get(i).map(|s| s.addr) {
                self.start_sync(to, SyncSession::request(to, false));
            }
        }
        let remembered = &self.join.remembered;
        if !remembered.is_empty() {
            let seed = remembered[self.rng.below(remembered.len())];
            let is_live_member = self.table.remote_range().any(|i| {
                self.table
                    .get(i)
                    .is_some_and(|s| s.addr == seed && s.status.is_live())
            });
            if !is_live_member {
                self.start_sync(seed, SyncSession::own_state(seed));
            }
        }
    }

    fn retry_join(&mut self, now: Instant) {
        if self.join.seeds.is_empty() {
            self.timers.join = None;
            return;
        }
        // As many seeds as push-pull sessions fit, rotating, so every seed gets its turn.
        let n = self.join.seeds.len();
        for k in 0..n.min(super::SYNCS) {
            let to = self.join.seeds[(self.join.next + k) % n];
            self.start_sync(to, SyncSession::request(to, true));
        }
        self.join.next = (self.join.next + super::SYNCS) % n;
        self.timers.join = Some(now + self.join.backoff);
        self.join.backoff = (self.join.backoff.saturating_mul(2)).min(self.config.join_retry_max);
    }

    /// Queues a push-pull session, replacing an older one to the same peer.
    pub(super) fn start_sync(&mut self, to: SocketAddr, session: SyncSession) {
        self.syncs.retain(|s| s.to != to);
        if self.syncs.push(session).is_err() {
            self.stats.outbox_full += 1;
            return;
        }
        if matches!(session.kind, crate::wire::SyncKind::Request { .. }) {
            self.stats.syncs_started += 1;
        }
    }

    /// Marks slot `i` failed at incarnation `inc` and spreads the news.
    pub(super) fn set_failed(&mut self, now: Instant, i: usize, inc: u32) {
        if let Some(s) = self.table.get_mut(i) {
            self.stats.failures += 1;
            s.incarnation = inc;
            s.since = now;
            s.suspicion = None;
            self.table.set_status(i, Status::Failed);
            self.table.record(i, crate::member::Pending::FAILED);
            self.broadcast(Subject::Member(i as u16));
        }
    }
}

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}
