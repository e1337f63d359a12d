//! A deterministic discrete-event simulator for clusters of [`rumor_core::Node`]s, or of any
//! other implementation behind the [`SimMember`] trait (`rumor-sim --compare foca` runs
//! foca through it).
//!
//! Time is virtual (milliseconds); every node has a virtual [`SocketAddr`] (no socket is
//! ever opened); one event queue orders datagram arrivals, node timers and resumes by
//! `(instant, sequence number)`; one seeded generator drives every random choice. The same
//! [`SimConfig::seed`] therefore reproduces a run exactly, which [`Sim::trace_hash`]
//! fingerprints.
//!
//! Each node is driven as the core's contract asks: after every input (datagram, timer or
//! command) the simulator drains its transmits and events, re-arms its timer at
//! `poll_timeout()`, and refreshes the node's mirror in [`Views`], checking the invariants
//! documented there after every single step.
//!
//! Two recording levels ([`Recording`]): `Full` (the default: every table mirrored and
//! checked after every step, every event logged) for tests, and `Lean` for clusters of
//! thousands of nodes, where only the events about [watched](Cluster::watch) members are
//! logged and tables are not mirrored. Both keep the event-derived [`Reports`]
//! ([`Cluster::all_up`]) and the false-failure count.
//!
//! Faults: per-link loss, latency, jitter and duplication ([`LinkProfile`]), partitions
//! ([`Sim::partition`]), crashes ([`Sim::crash`]), pauses with a bounded receive buffer
//! ([`Sim::pause`]) and restarts under the same name at a new address ([`Sim::restart`]).
//!
//! ```
//! use rumor_bench::sim::{ClusterBuilder, ObsKind};
//! use rumor_core::{Config, Duration, Instant};
//!
//! let mut sim = ClusterBuilder::new(10).seed(7).config(Config::lan()).build::<16, 16>();
//! let converged = sim.run_until_pred(Instant::from_secs(30), |s| s.converged());
//! assert!(converged.is_some());
//! sim.crash(3);
//! sim.run_for(Duration::from_secs(60));
//! let detections = sim.log().detections(ObsKind::Failed, sim.name(3));
//! assert_eq!(detections.count(), 9);
//! println!("first detection at {:?}", detections.first());
//! ```

mod builder;
mod commands;
mod cpu;
mod engine;
mod invariants;
mod member;
mod net;
mod observe;
mod query;
mod queue;
mod reports;
mod rng;
mod trace;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use rumor_core::{DropReason, Instant, Node};

pub use builder::{ClusterBuilder, node_name, sim_addr};
pub use invariants::{Seen, Views};
pub use member::SimMember;
pub use net::{Arrivals, DropCause, LinkProfile, NetStats, Network};
pub use observe::{Detections, Log, ObsKind, Observation, UserDelivery};
pub use reports::Reports;
pub use rng::{SplitMix64, mix64};
pub use trace::TraceHash;

use cpu::CpuMeter;
use invariants::Deliveries;
use queue::Queue;

/// Most transmits or events one node may produce after a single input before the
/// simulator declares it runaway.
const MAX_BURST: usize = 100_000;

/// Size of the buffer handed to `poll_transmit`; larger than any sane `max_datagram`.
const SCRATCH_LEN: usize = 65_536;

/// Settings of the simulation itself (the nodes' settings are their own configs).
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds the network and every node: the same seed reproduces the same run.
    pub seed: u64,
    /// The profile of every link without an override.
    pub link: LinkProfile,
    /// How many bytes a paused node's receive buffer holds (like a kernel socket buffer;
    /// the default is Linux's `rmem_default`). Later arrivals are dropped.
    pub pause_buffer_bytes: usize,
    /// Most queue events one simulator may process in its lifetime; exceeding it panics.
    pub max_steps: u64,
    /// Most queue events processed at one virtual instant; exceeding it panics, which
    /// catches a node that keeps asking to be woken "now".
    pub max_steps_per_instant: u64,
    /// Whether a node stops (as if its process exited) once it reports
    /// [`Event::LeaveComplete`](rumor_core::Event::LeaveComplete).
    pub stop_after_leave: bool,
    /// How much is mirrored, checked and logged after every step.
    pub recording: Recording,
    /// Whether to add up the time spent inside the members ([`Cluster::member_cpu`]); off
    /// by default, as it costs two clock reads per call.
    pub measure_cpu: bool,
    /// Whether a crashed node's host answers datagrams with ICMP port unreachable, handed
    /// to the sender ([`SimMember::handle_unreachable`]) when the datagram would have
    /// arrived, as a real host whose process died does. Off by default: a crash then
    /// looks like a host gone silent, and the existing baselines stay comparable. A
    /// paused node never answers (its socket is still open).
    pub icmp: bool,
}

/// How much the simulator mirrors, checks and logs after every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recording {
    /// Every member table is mirrored in [`Views`] and checked against the invariants after
    /// every step, and every event is logged. For tests.
    #[default]
    Full,
    /// No table is mirrored or checked (datagram sizes still are), and the [`Log`] keeps
    /// only the events about [watched](Cluster::watch) members and user events (its
    /// totals still count everything). The table queries (`converged`, `seen`, `view`,
    /// ...) panic; use [`Cluster::all_up`] and [`Cluster::reports`]. For large clusters.
    Lean,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            link: LinkProfile::LAN,
            pause_buffer_bytes: 212_992,
            max_steps: 200_000_000,
            max_steps_per_instant: 1_000_000,
            stop_after_leave: true,
            recording: Recording::Full,
            measure_cpu: false,
            icmp: false,
        }
    }
}

/// The lifecycle state of a simulated node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running normally.
    Up,
    /// Frozen: processes nothing, buffers arrivals until resumed.
    Paused,
    /// Gone without a word: processes and sends nothing until restarted.
    Crashed,
    /// Exited after a graceful leave (see [`SimConfig::stop_after_leave`]).
    Stopped,
}

/// An observer declared a member `Failed` while the member was up, not paused, not
/// leaving, at the reported address, and in the observer's partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FalseFailure {
    /// When it was declared.
    pub at: Instant,
    /// Index of the observer.
    pub observer: usize,
    /// Index of the member declared failed.
    pub member: usize,
}

enum Life {
    Up,
    Paused {
        until: Instant,
        buffer: VecDeque<(usize, SocketAddr, Vec<u8>)>,
        bytes: usize,
    },
    Crashed,
    Stopped,
}

struct SimNode<N: SimMember> {
    name: String,
    addr: SocketAddr,
    config: N::Config,
    max_datagram: usize,
    node: Box<N>,
    life: Life,
    /// Bumped by every restart; invalidates the previous incarnation's timers.
    generation: u32,
    /// The instant of the one valid timer in the queue for this node.
    armed: Option<Instant>,
    /// Whether `leave` was called since the last (re)start.
    leaving: bool,
}

impl<N: SimMember> SimNode<N> {
    fn state(&self) -> NodeState {
        match self.life {
            Life::Up => NodeState::Up,
            Life::Paused { .. } => NodeState::Paused,
            Life::Crashed => NodeState::Crashed,
            Life::Stopped => NodeState::Stopped,
        }
    }
}

/// One datagram as it is handed to a node; see [`Sim::set_tap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// When it is handed over.
    pub at: Instant,
    /// The sending node, or `None` for a datagram injected with [`Sim::inject_datagram`].
    pub from_node: Option<usize>,
    /// The source address the receiver sees.
    pub from: SocketAddr,
    /// The receiving node.
    pub to_node: usize,
    /// The datagram.
    pub bytes: &'a [u8],
}

/// A callback shown every datagram handed to a node: for debugging, byte accounting and
/// capturing fuzz corpora.
pub type Tap = Box<dyn FnMut(&Delivery<'_>)>;

/// A simulated cluster of rumor `Node<M, U>`s; see the [module documentation](self).
pub type Sim<const M: usize, const U: usize> = Cluster<Node<M, U>>;

/// A simulated cluster of any [`SimMember`]s; see the [module documentation](self).
pub struct Cluster<N: SimMember> {
    cfg: SimConfig,
    now: Instant,
    nodes: Vec<SimNode<N>>,
    by_addr: BTreeMap<SocketAddr, usize>,
    by_name: BTreeMap<String, usize>,
    queue: Queue,
    net: Network,
    views: Views,
    /// What each node delivered, for the at-most-once invariant.
    deliveries: Deliveries,
    log: Log,
    reports: Reports,
    /// Members whose events a [`Recording::Lean`] log keeps.
    watched: BTreeSet<String>,
    /// `(reports version, lifecycle version, answer)` of the last [`Cluster::all_up`].
    all_up_memo: Cell<(u64, u64, bool)>,
    /// Bumped by every crash, pause, resume, stop, restart, leave and partition change.
    lifecycle: u64,
    cpu: CpuMeter,
    false_failures: Vec<FalseFailure>,
    rejected: BTreeMap<String, u64>,
    trace: TraceHash,
    steps: u64,
    steps_at_instant: u64,
    next_addr: u32,
    scratch: Vec<u8>,
    tap: Option<Tap>,
    /// What the last datagram handed to a node returned.
    last_verdict: Result<(), DropReason>,
}

impl<N: SimMember> fmt::Debug for Cluster<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.cfg.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<N: SimMember> Cluster<N> {
    /// An empty simulation at virtual time zero.
    pub fn new(cfg: SimConfig) -> Self {
        Cluster {
            now: Instant::ZERO,
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            by_name: BTreeMap::new(),
            queue: Queue::default(),
            net: Network::new(cfg.link, mix64(cfg.seed ^ 0x6E65_7477_6F72_6B00)),
            views: Views::new(cfg.seed, N::capacity()),
            deliveries: Deliveries::new(cfg.seed),
            log: Log::default(),
            reports: Reports::default(),
            watched: BTreeSet::new(),
            all_up_memo: Cell::new((u64::MAX, u64::MAX, false)),
            lifecycle: 0,
            cpu: CpuMeter::new(cfg.measure_cpu),
            false_failures: Vec::new(),
            rejected: BTreeMap::new(),
            trace: TraceHash::default(),
            steps: 0,
            steps_at_instant: 0,
            next_addr: 0,
            scratch: vec![0; SCRATCH_LEN],
            tap: None,
            last_verdict: Ok(()),
            cfg,
        }
    }

    // ----- building -------------------------------------------------------------------

    /// A virtual address no node has been given yet.
    pub fn fresh_addr(&mut self) -> SocketAddr {
        loop {
            let addr = sim_addr(self.next_addr);
            self.next_addr += 1;
            if !self.by_addr.contains_key(&addr) {
                return addr;
            }
        }
    }

    /// Adds a node named `name` at a fresh address; it does nothing until told to join.
    /// Returns its index.
    pub fn add_node(&mut self, name: &str, config: N::Config) -> usize {
        let addr = self.fresh_addr();
        self.add_node_at(name, addr, config)
    }

    /// Adds a node named `name` at `addr`. Returns its index.
    ///
    /// # Panics
    /// If `addr` is taken or the core rejects the name or config.
    pub fn add_node_at(&mut self, name: &str, addr: SocketAddr, config: N::Config) -> usize {
        assert!(
            !self.by_addr.contains_key(&addr),
            "address {addr} is already taken"
        );
        assert!(
            !self.by_name.contains_key(name),
            "name {name} is already taken"
        );
        let index = self.nodes.len();
        let node = self.make_node(index, 0, name, addr, &config);
        self.nodes.push(SimNode {
            name: name.to_owned(),
            addr,
            max_datagram: N::max_datagram(&config),
            config,
            node,
            life: Life::Up,
            generation: 0,
            armed: None,
            leaving: false,
        });
        self.by_addr.insert(addr, index);
        self.by_name.insert(name.to_owned(), index);
        self.views.reset(index);
        self.deliveries.reset(index);
        self.reports.reset(index);
        self.settle(index);
        index
    }

    fn make_node(
        &self,
        index: usize,
        generation: u32,
        name: &str,
        addr: SocketAddr,
        config: &N::Config,
    ) -> Box<N> {
        let seed = mix64(self.cfg.seed ^ mix64(((index as u64) << 32) | u64::from(generation)));
        Box::new(N::create(name, addr, config, seed))
    }
}
