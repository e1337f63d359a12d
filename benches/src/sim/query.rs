//! Read-only questions about a simulation: who sees what, what happened, what it cost.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rumor_core::{Instant, Status};

use super::{
    Cluster, FalseFailure, Life, Log, Network, NodeState, Recording, Reports, Seen, SimConfig,
    SimMember, Views,
};

impl<N: SimMember> Cluster<N> {
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The simulation's seed.
    pub fn seed(&self) -> u64 {
        self.cfg.seed
    }

    /// The simulation's settings.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// How many nodes were added (whatever their state).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s name.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s current address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Node `i`'s lifecycle state.
    pub fn state(&self, i: usize) -> NodeState {
        self.nodes[i].state()
    }

    /// Whether node `i`'s process exists (up or paused).
    pub fn is_running(&self, i: usize) -> bool {
        matches!(self.nodes[i].life, Life::Up | Life::Paused { .. })
    }

    /// Whether node `i` was told to leave since its last (re)start.
    pub fn is_leaving(&self, i: usize) -> bool {
        self.nodes[i].leaving
    }

    /// Indexes of the nodes whose process exists (up or paused).
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.is_running(i))
    }

    /// The protocol node itself, for anything the simulator does not wrap.
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i].node
    }

    /// What `observer` holds about node `member` (by its current name), as of the
    /// observer's last step.
    ///
    /// # Panics
    /// In a [`Recording::Lean`] run, which mirrors no table (as every table query).
    pub fn seen(&self, observer: usize, member: usize) -> Option<Seen> {
        self.views().get(observer, &self.nodes[member].name)
    }

    /// The status `observer` holds for node `member`, if `member` is in its table.
    pub fn status_of(&self, observer: usize, member: usize) -> Option<Status> {
        self.seen(observer, member).map(|s| s.status)
    }

    /// Everything `observer` holds, as `(name, what it holds)` sorted by name, as of its
    /// last step (itself included).
    pub fn view(&self, observer: usize) -> Vec<(String, Seen)> {
        self.views()
            .table(observer)
            .map(|(name, seen)| (name.to_owned(), seen))
            .collect()
    }

    /// How many running nodes other than `member` hold it with `status`.
    pub fn count_seeing(&self, member: usize, status: Status) -> usize {
        self.running()
            .filter(|&o| o != member && self.status_of(o, member) == Some(status))
            .count()
    }

    /// Whether every running node other than `member` holds it with `status`.
    pub fn all_see(&self, member: usize, status: Status) -> bool {
        self.running()
            .all(|o| o == member || self.status_of(o, member) == Some(status))
    }

    /// Whether every running node holds every running, non-leaving node (itself included)
    /// as `Alive` at its current address, and holds nobody else as `Alive`.
    pub fn converged(&self) -> bool {
        let live: Vec<usize> = self.running().filter(|&i| !self.nodes[i].leaving).collect();
        // Cheap necessary condition first: the right number of alive members everywhere.
        if !live
            .iter()
            .all(|&o| self.views().alive_count(o) == live.len())
        {
            return false;
        }
        live.iter().all(|&o| {
            live.iter().all(|&x| {
                self.seen(o, x)
                    .is_some_and(|s| s.status == Status::Alive && s.addr == self.nodes[x].addr)
            })
        })
    }

    /// The invariant checker, to set its options (e.g. [`Views::forget_absent_after`]).
    pub fn views_mut(&mut self) -> &mut Views {
        &mut self.views
    }

    /// The per-observer mirrors of the member tables.
    ///
    /// # Panics
    /// In a [`Recording::Lean`] run, which mirrors no table.
    pub fn views(&self) -> &Views {
        assert!(
            self.cfg.recording == Recording::Full,
            "member tables are only mirrored with Recording::Full"
        );
        &self.views
    }

    /// Who reports whom as up, from the events alone (any recording level).
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Whether every running, non-leaving node reports every other one up (joined and not
    /// since failed, left or reaped; a suspect is still up), and reports no other node up.
    /// Derived from events, so it works for any [`SimMember`] and in lean runs; it is
    /// cached until a report or a node's lifecycle changes.
    pub fn all_up(&self) -> bool {
        let key = (self.reports.version(), self.lifecycle);
        let (version, lifecycle, answer) = self.all_up_memo.get();
        if (version, lifecycle) == key {
            return answer;
        }
        let answer = self.compute_all_up();
        self.all_up_memo.set((key.0, key.1, answer));
        answer
    }

    fn compute_all_up(&self) -> bool {
        let live = |i: usize| self.is_running(i) && !self.nodes[i].leaving;
        let (up, down): (Vec<usize>, Vec<usize>) = (0..self.nodes.len()).partition(|&i| live(i));
        up.iter().all(|&o| {
            self.reports.up_count(o) == up.len() - 1
                && down.iter().all(|&x| !self.reports.is_up(o, x))
        })
    }

    /// Time spent inside the members' calls so far (zero unless
    /// [`SimConfig::measure_cpu`]): the simulator is single-threaded, so this is their CPU
    /// time measured with the monotonic clock, its own cost subtracted.
    pub fn member_cpu(&self) -> std::time::Duration {
        self.cpu.total()
    }

    /// Every event every node reported.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The network model.
    pub fn net(&self) -> &Network {
        &self.net
    }

    /// The network model, to change links mid-run.
    pub fn net_mut(&mut self) -> &mut Network {
        self.lifecycle += 1;
        &mut self.net
    }

    /// Every `Failed` declaration about a member that was actually healthy and reachable.
    pub fn false_failures(&self) -> &[FalseFailure] {
        &self.false_failures
    }

    /// Datagrams the nodes rejected, counted by the `Debug` form of the reason.
    pub fn rejected_datagrams(&self) -> &BTreeMap<String, u64> {
        &self.rejected
    }

    /// Queue events processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// A fingerprint of every delivery and event so far: equal seeds give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }
}
