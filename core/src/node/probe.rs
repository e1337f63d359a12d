//! The probe cycle: each protocol period pings one member directly, asks helpers to ping
//! it indirectly when the direct ping goes unanswered, and judges the outcome at the end of
//! the period (Lifeguard's local health score scales the period and timeout).

use super::Node;
use super::evidence::Quote;
use super::transmit::Outgoing;
use crate::member::Status;
use crate::time::{Duration, Instant};

/// The probe of the current protocol period.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub(super) target: u16,
    pub(super) seq: u32,
    /// When the direct ping is given up and helpers are asked.
    pub(super) ack_deadline: Instant,
    pub(super) expected_nacks: u8,
    pub(super) nacks: u8,
    /// The start of the direct ping as sent, to recognise it quoted in an ICMP error.
    pub(super) quote: Quote,
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

    pub(super) fn indirect_sent(&self) -> bool {
        self.flags & Self::INDIRECT_SENT != 0
    }

    pub(super) fn set_indirect_sent(&mut self) {
        self.flags |= Self::INDIRECT_SENT;
    }

    pub(super) fn graced(&self) -> bool {
        self.flags & Self::GRACED != 0
    }

    pub(super) fn set_graced(&mut self) {
        self.flags |= Self::GRACED;
    }
}

impl<const M: usize, const U: usize> Node<M, U> {
    pub(super) fn scaled(&self, d: Duration) -> Duration {
        d.saturating_mul(u64::from(self.awareness) + 1)
    }

    /// Judges the probe of the period that just ended (Lifeguard: missing nacks count
    /// against our own health, not only against the target).
    pub(super) fn finish_probe(&mut self, now: Instant) {
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
    pub(super) fn start_probe(&mut self, now: Instant) {
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
            quote: Quote::NONE,
            flags: 0,
        });
        self.enqueue(Outgoing::Ping {
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
    pub(super) fn probe_indirectly(&mut self, _now: Instant) {
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
                self.enqueue(Outgoing::PingReq {
                    to,
                    seq: p.seq,
                    target: name.clone(),
                    addr,
                });
            }
        }
        self.probe = Some(p);
    }
}
