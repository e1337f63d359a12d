//! What the scenario does to nodes: protocol commands and injected faults.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rumor_core::{DropReason, Duration, JoinError, Tags, UserEventError};

use super::queue::Pending;
use super::{Cluster, Delivery, Life, SimMember};

impl<N: SimMember> Cluster<N> {
    /// Node `i` joins the cluster through node `via`.
    pub fn join(&mut self, i: usize, via: usize) -> Result<(), JoinError> {
        let addr = self.nodes[via].addr;
        self.join_addr(i, addr)
    }

    /// Node `i` joins the cluster through whatever node owns `seed` (if any).
    pub fn join_addr(&mut self, i: usize, seed: SocketAddr) -> Result<(), JoinError> {
        self.expect_up(i, "join");
        let (now, node) = (self.now, &mut self.nodes[i].node);
        let result = self.cpu.time(|| node.join(now, seed));
        self.settle(i);
        result
    }

    /// Node `i` starts leaving gracefully. With [`SimConfig::stop_after_leave`] it stops
    /// once it reports [`Event::LeaveComplete`].
    ///
    /// [`SimConfig::stop_after_leave`]: super::SimConfig::stop_after_leave
    /// [`Event::LeaveComplete`]: rumor_core::Event::LeaveComplete
    pub fn leave(&mut self, i: usize) {
        self.expect_up(i, "leave");
        self.nodes[i].leaving = true;
        self.lifecycle += 1;
        let (now, node) = (self.now, &mut self.nodes[i].node);
        self.cpu.time(|| node.leave(now));
        self.settle(i);
    }

    /// Node `i` replaces its tags.
    pub fn set_tags(&mut self, i: usize, tags: Tags) {
        self.expect_up(i, "set tags");
        let (now, node) = (self.now, &mut self.nodes[i].node);
        self.cpu.time(|| node.set_tags(now, tags));
        self.settle(i);
    }

    /// Node `i` broadcasts a user event.
    pub fn send_user_event(
        &mut self,
        i: usize,
        name: &str,
        payload: &[u8],
    ) -> Result<(), UserEventError> {
        self.expect_up(i, "send a user event");
        let (now, node) = (self.now, &mut self.nodes[i].node);
        let result = self.cpu.time(|| node.send_user_event(now, name, payload));
        self.settle(i);
        result
    }

    /// Runs `f` on node `i` itself (e.g. to install a keyring), then drains and re-arms it
    /// as after any other input.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut N) -> R) -> R {
        let out = f(&mut self.nodes[i].node);
        self.settle(i);
        out
    }

    /// Shows every datagram handed to a node to `tap` (replacing any earlier tap).
    pub fn set_tap(&mut self, tap: impl FnMut(&Delivery<'_>) + 'static) {
        self.tap = Some(Box::new(tap));
    }

    /// Removes the tap.
    pub fn clear_tap(&mut self) {
        self.tap = None;
    }

    /// Hands `bytes` to node `i` now, as if sent from `from`, bypassing the network (for
    /// fuzzing and for forged or replayed traffic). Returns the node's verdict; a node that
    /// is not up ignores it and returns `Ok`.
    pub fn inject_datagram(
        &mut self,
        i: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        if !matches!(self.nodes[i].life, Life::Up) {
            return Ok(());
        }
        self.deliver(None, i, from, bytes);
        self.last_verdict
    }

    /// Node `i` crashes: it stops processing and sending, and datagrams to it are dropped.
    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.life = Life::Crashed;
        n.armed = None;
        self.lifecycle += 1;
    }

    /// Node `i` freezes for `duration` (a GC pause, a `SIGSTOP`, a VM migration): it
    /// processes nothing, arrivals are buffered up to [`SimConfig::pause_buffer_bytes`],
    /// and on resume it handles the buffered datagrams in arrival order, then its
    /// (late) timers. Pausing a paused node extends the pause.
    ///
    /// [`SimConfig::pause_buffer_bytes`]: super::SimConfig::pause_buffer_bytes
    pub fn pause(&mut self, i: usize, duration: Duration) {
        let until = self.now + duration;
        self.lifecycle += 1;
        let n = &mut self.nodes[i];
        match &mut n.life {
            Life::Up => {
                n.life = Life::Paused {
                    until,
                    buffer: VecDeque::new(),
                    bytes: 0,
                };
            }
            Life::Paused { until: current, .. } => *current = (*current).max(until),
            Life::Crashed | Life::Stopped => panic!("cannot pause node {i}: it is not running"),
        }
        let (node, generation) = (i, n.generation);
        if let Life::Paused { until, .. } = n.life {
            self.queue.push(until, Pending::Resume { node, generation });
        }
    }

    /// Node `i` restarts as a fresh node with the same name and config at `addr`, and
    /// joins through node `via`. Its old address goes dead: datagrams still in flight to
    /// it are dropped. Its invariant records start afresh.
    ///
    /// # Panics
    /// If `addr` belongs to another node.
    pub fn restart(&mut self, i: usize, addr: SocketAddr, via: usize) -> Result<(), JoinError> {
        if let Some(&owner) = self.by_addr.get(&addr) {
            assert_eq!(owner, i, "address {addr} belongs to node {owner}");
        }
        let old = self.nodes[i].addr;
        if self.by_addr.get(&old) == Some(&i) {
            self.by_addr.remove(&old);
        }
        let generation = self.nodes[i].generation + 1;
        let node = self.make_node(
            i,
            generation,
            &self.nodes[i].name,
            addr,
            &self.nodes[i].config,
        );
        let n = &mut self.nodes[i];
        n.node = node;
        n.addr = addr;
        n.generation = generation;
        n.life = Life::Up;
        n.armed = None;
        n.leaving = false;
        self.lifecycle += 1;
        self.by_addr.insert(addr, i);
        self.views.reset(i);
        self.deliveries.reset(i);
        self.reports.reset(i);
        self.settle(i);
        self.join(i, via)
    }

    /// Splits the network: the nodes of `groups[k]` form partition `k + 1`, every other
    /// node stays in partition 0; see [`Network::partition`](super::Network::partition).
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.lifecycle += 1;
        self.net.partition(groups);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.lifecycle += 1;
        self.net.heal();
    }

    /// Keeps every event about the member called `name` in the log, also in a
    /// [`Recording::Lean`](super::Recording::Lean) run (a full run keeps everything).
    pub fn watch(&mut self, name: &str) {
        self.watched.insert(name.to_owned());
    }
}
