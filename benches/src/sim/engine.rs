//! The event loop: running virtual time forward and driving each node by the contract.

use std::net::SocketAddr;

use rumor_core::{Duration, Event, Instant, Unreachable};

use super::queue::Pending;
use super::{
    Cluster, Delivery, FalseFailure, Life, MAX_BURST, ObsKind, Observation, Recording, SimMember,
    UserDelivery,
};

impl<N: SimMember> Cluster<N> {
    /// Processes every event up to and including `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(at) = self.queue.next_at() {
            if at > until {
                break;
            }
            self.run_instant(at);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Runs until `pred` holds, checking it now and after each virtual instant's events.
    /// Returns the first instant at which it held, or `None` (with the clock at
    /// `deadline`) if it never did by `deadline`.
    pub fn run_until_pred(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&Self) -> bool,
    ) -> Option<Instant> {
        if pred(self) {
            return Some(self.now);
        }
        while let Some(at) = self.queue.next_at() {
            if at > deadline {
                break;
            }
            self.run_instant(at);
            if pred(self) {
                return Some(self.now);
            }
        }
        self.now = self.now.max(deadline);
        None
    }

    fn run_instant(&mut self, at: Instant) {
        if at != self.now {
            self.steps_at_instant = 0;
        }
        self.now = at;
        while self.queue.next_at() == Some(at) {
            let Some((_, what)) = self.queue.pop() else {
                break;
            };
            self.steps += 1;
            self.steps_at_instant += 1;
            assert!(
                self.steps <= self.cfg.max_steps,
                "[seed {:#x}, t={}ms] step limit {} exceeded",
                self.cfg.seed,
                at.as_millis(),
                self.cfg.max_steps
            );
            assert!(
                self.steps_at_instant <= self.cfg.max_steps_per_instant,
                "[seed {:#x}, t={}ms] livelock: over {} steps at one instant, the last one {}",
                self.cfg.seed,
                at.as_millis(),
                self.cfg.max_steps_per_instant,
                self.describe(&what)
            );
            self.dispatch(at, what);
        }
    }

    fn dispatch(&mut self, at: Instant, what: Pending) {
        match what {
            Pending::Arrival {
                from_node,
                from,
                to,
                bytes,
            } => {
                self.arrive(from_node, from, to, bytes);
            }
            Pending::Timer { node, generation } => {
                let n = &mut self.nodes[node];
                if n.generation != generation || n.armed != Some(at) {
                    return; // superseded by a later re-arm or a restart
                }
                n.armed = None;
                if matches!(n.life, Life::Up) {
                    self.cpu.time(|| n.node.handle_timeout(at));
                    self.settle(node);
                }
            }
            Pending::Resume { node, generation } => {
                let n = &mut self.nodes[node];
                let due = matches!(n.life, Life::Paused { until, .. } if until == at);
                if n.generation == generation && due {
                    self.resume(node);
                }
            }
        }
    }

    /// A short description of a pending event, for panic messages.
    fn describe(&self, what: &Pending) -> String {
        let who = |i: usize| format!("node {i} ({})", self.nodes[i].name);
        match what {
            Pending::Arrival {
                from_node,
                to,
                bytes,
                ..
            } => {
                let to = self
                    .by_addr
                    .get(to)
                    .map_or_else(|| to.to_string(), |&i| who(i));
                format!(
                    "a {}-byte datagram from {} to {to}",
                    bytes.len(),
                    who(*from_node)
                )
            }
            Pending::Timer { node, .. } => format!("a timer of {}", who(*node)),
            Pending::Resume { node, .. } => format!("the resume of {}", who(*node)),
        }
    }

    fn arrive(&mut self, from_node: usize, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let Some(&dest) = self.by_addr.get(&to) else {
            self.net.stats_mut().unroutable += 1;
            return;
        };
        if !self.net.reachable(from_node, dest) {
            self.net.stats_mut().partitioned += 1;
            return;
        }
        let capacity = self.cfg.pause_buffer_bytes;
        let refused = self.cfg.icmp && matches!(self.nodes[from_node].life, Life::Up);
        match &mut self.nodes[dest].life {
            Life::Up => self.deliver(Some(from_node), dest, from, &bytes),
            Life::Paused {
                buffer,
                bytes: used,
                ..
            } => {
                if *used + bytes.len() <= capacity {
                    *used += bytes.len();
                    buffer.push_back((from_node, from, bytes));
                } else {
                    self.net.stats_mut().buffer_overflow += 1;
                }
            }
            Life::Crashed if refused => {
                self.net.stats_mut().to_down_node += 1;
                self.net.stats_mut().port_unreachable += 1;
                let (now, node) = (self.now, &mut self.nodes[from_node].node);
                self.cpu
                    .time(|| node.handle_unreachable(now, to, Unreachable::Port, &bytes));
                self.settle(from_node);
            }
            Life::Crashed | Life::Stopped => self.net.stats_mut().to_down_node += 1,
        }
    }

    pub(super) fn deliver(
        &mut self,
        from_node: Option<usize>,
        i: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.net.stats_mut().delivered += 1;
        if let Some(tap) = self.tap.as_mut() {
            tap(&Delivery {
                at: self.now,
                from_node,
                from,
                to_node: i,
                bytes,
            });
        }
        self.trace.write_u64(self.now.as_millis());
        self.trace.write_u64(i as u64);
        self.trace.write(bytes);
        let (now, node) = (self.now, &mut self.nodes[i].node);
        self.last_verdict = self.cpu.time(|| node.handle_datagram(now, from, bytes));
        if let Err(reason) = self.last_verdict {
            *self.rejected.entry(format!("{reason:?}")).or_default() += 1;
        }
        self.settle(i);
    }

    fn resume(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Life::Paused { buffer, .. } = std::mem::replace(&mut n.life, Life::Up) else {
            return;
        };
        n.armed = None;
        self.lifecycle += 1;
        for (from_node, from, bytes) in buffer {
            if !matches!(self.nodes[i].life, Life::Up) {
                break;
            }
            self.deliver(Some(from_node), i, from, &bytes);
        }
        if matches!(self.nodes[i].life, Life::Up) {
            let (now, node) = (self.now, &mut self.nodes[i].node);
            self.cpu.time(|| node.handle_timeout(now));
            self.settle(i);
        }
    }

    /// After any input to node `i`: send its transmits, record its events, check the
    /// invariants against its member table, and re-arm its timer.
    pub(super) fn settle(&mut self, i: usize) {
        let now = self.now;
        for burst in 0.. {
            let n = &mut self.nodes[i];
            let scratch = &mut self.scratch;
            let Some(t) = self.cpu.time(|| n.node.poll_transmit(now, scratch)) else {
                break;
            };
            assert!(
                burst < MAX_BURST,
                "node {i} ({}) transmits without end",
                n.name
            );
            assert!(
                t.len <= n.max_datagram && t.len <= self.scratch.len(),
                "[seed {:#x}, t={}ms] node {i} ({}) wrote {} bytes, over max_datagram {}",
                self.cfg.seed,
                now.as_millis(),
                n.name,
                t.len,
                n.max_datagram
            );
            self.send(i, t.to, t.len);
        }

        let mut events = Vec::new();
        let node = &mut self.nodes[i].node;
        while let Some(event) = self.cpu.time(|| node.poll_event()) {
            assert!(
                events.len() < MAX_BURST,
                "node {i} reports events without end"
            );
            events.push(event);
        }
        let mut stop = false;
        for event in &events {
            stop |= self.observe(i, event);
        }

        if self.cfg.recording == Recording::Full {
            let n = &self.nodes[i];
            let mut pass = self.views.pass(now, i, &n.name);
            n.node
                .visit_members(&mut |name, status, incarnation, addr| {
                    pass.member(name, status, incarnation, addr);
                });
            pass.finish();
        }

        let n = &mut self.nodes[i];
        if stop {
            n.life = Life::Stopped;
            n.armed = None;
            self.lifecycle += 1;
            return;
        }
        if !matches!(n.life, Life::Up) {
            return;
        }
        let wake = self.cpu.time(|| n.node.poll_timeout()).map(|w| w.max(now));
        if wake != n.armed {
            n.armed = wake;
            if let Some(at) = wake {
                let generation = n.generation;
                self.queue.push(
                    at,
                    Pending::Timer {
                        node: i,
                        generation,
                    },
                );
            }
        }
    }

    fn send(&mut self, i: usize, to: SocketAddr, len: usize) {
        let stats = self.net.stats_mut();
        stats.sent += 1;
        stats.sent_bytes += len as u64;
        let Some(&dest) = self.by_addr.get(&to) else {
            self.net.stats_mut().unroutable += 1;
            return;
        };
        let Ok(arrivals) = self.net.route(self.now, i, dest) else {
            return;
        };
        let from = self.nodes[i].addr;
        for at in arrivals.iter() {
            let bytes = self.scratch[..len].to_vec();
            self.queue.push(
                at,
                Pending::Arrival {
                    from_node: i,
                    from,
                    to,
                    bytes,
                },
            );
        }
    }

    /// Records one event of node `i`; returns whether the node should now stop.
    fn observe(&mut self, i: usize, event: &Event) -> bool {
        let (kind, member, _) = Observation::parts(&self.nodes[i].name, event);
        self.trace.write_u64(self.now.as_millis());
        self.trace.write_u64(i as u64);
        self.trace.write_u64(kind as u64);
        self.trace.write(member.as_bytes());
        let up = match kind {
            ObsKind::Joined | ObsKind::Updated => Some(true),
            ObsKind::Failed | ObsKind::Left | ObsKind::Reaped => Some(false),
            _ => None,
        };
        if let Some(up) = up
            && let Some(m) = self.index_of(member)
            && m != i
        {
            self.reports.set(i, m, up);
        }
        let keep = self.cfg.recording == Recording::Full
            || kind == ObsKind::User
            || self.watched.contains(member);
        if keep {
            let obs = Observation::from_event(self.now, i, &self.nodes[i].name, event);
            self.log.record(obs);
        } else {
            self.log.count(kind);
        }
        let mut stop = false;
        match event {
            Event::User(user) => {
                let delivery = UserDelivery {
                    at: self.now,
                    observer: i,
                    name: user.name.as_str().to_owned(),
                    payload: user.payload.to_vec(),
                    ltime: u64::from(user.ltime),
                    origin: user.origin.as_str().to_owned(),
                };
                self.deliveries.deliver(&delivery);
                self.log.record_user(delivery);
            }
            Event::MemberReaped { name } => self.views.forget(i, name),
            Event::MemberFailed { name, addr } => {
                if let Some(member) = self.index_of(name)
                    && member != i
                    && self.is_healthy_for(i, member, *addr)
                {
                    self.false_failures.push(FalseFailure {
                        at: self.now,
                        observer: i,
                        member,
                    });
                }
            }
            Event::LeaveComplete => stop = self.cfg.stop_after_leave,
            _ => {}
        }
        stop
    }

    /// Whether `member` is up, not leaving, at `addr`, and reachable from `observer`.
    fn is_healthy_for(&self, observer: usize, member: usize, addr: SocketAddr) -> bool {
        let m = &self.nodes[member];
        matches!(m.life, Life::Up)
            && !m.leaving
            && m.addr == addr
            && self.net.reachable(observer, member)
    }

    pub(super) fn expect_up(&self, i: usize, what: &str) {
        assert!(
            matches!(self.nodes[i].life, Life::Up),
            "node {i} ({}) cannot {what}: it is {:?}",
            self.nodes[i].name,
            self.nodes[i].state()
        );
    }
}
