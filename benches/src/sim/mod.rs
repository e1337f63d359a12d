//! A deterministic discrete-event simulator for clusters of [`rumor_core::Node`]s.
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
mod engine;
mod invariants;
mod net;
mod observe;
mod query;
mod queue;
mod rng;
mod trace;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use rumor_core::{Config, DropReason, Identity, Instant, Node};

pub use builder::{ClusterBuilder, node_name, sim_addr};
pub use invariants::{Seen, Views};
pub use net::{Arrivals, DropCause, LinkProfile, NetStats, Network};
pub use observe::{Detections, Log, ObsKind, Observation, UserDelivery};
pub use rng::{SplitMix64, mix64};
pub use trace::TraceHash;

use queue::Queue;

/// Most transmits or events one node may produce after a single input before the
/// simulator declares it runaway.
const MAX_BURST: usize = 100_000;

/// Size of the buffer handed to `poll_transmit`; larger than any sane `max_datagram`.
const SCRATCH_LEN: usize = 65_536;

/// Settings of the simulation itself (the nodes' settings are their [`Config`]s).
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

struct SimNode<const M: usize, const U: usize> {
    name: String,
    addr: SocketAddr,
    config: Config,
    node: Box<Node<M, U>>,
    life: Life,
    /// Bumped by every restart; invalidates the previous incarnation's timers.
    generation: u32,
    /// The instant of the one valid timer in the queue for this node.
    armed: Option<Instant>,
    /// Whether `leave` was called since the last (re)start.
    leaving: bool,
}

impl<const M: usize, const U: usize> SimNode<M, U> {
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

/// A simulated cluster of `Node<M, U>`s; see the [module documentation](self).
pub struct Sim<const M: usize, const U: usize> {
    cfg: SimConfig,
    now: Instant,
    nodes: Vec<SimNode<M, U>>,
    by_addr: BTreeMap<SocketAddr, usize>,
    by_name: BTreeMap<String, usize>,
    queue: Queue,
    net: Network,
    views: Views,
    log: Log,
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

impl<const M: usize, const U: usize> fmt::Debug for Sim<M, U> {
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

impl<const M: usize, const U: usize> Sim<M, U> {
    /// An empty simulation at virtual time zero.
    pub fn new(cfg: SimConfig) -> Self {
        Sim {
            now: Instant::ZERO,
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            by_name: BTreeMap::new(),
            queue: Queue::default(),
            net: Network::new(cfg.link, mix64(cfg.seed ^ 0x6E65_7477_6F72_6B00)),
            views: Views::new(cfg.seed, M),
            log: Log::default(),
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
    pub fn add_node(&mut self, name: &str, config: Config) -> usize {
        let addr = self.fresh_addr();
        self.add_node_at(name, addr, config)
    }

    /// Adds a node named `name` at `addr`. Returns its index.
    ///
    /// # Panics
    /// If `addr` is taken or the core rejects the name or config.
    pub fn add_node_at(&mut self, name: &str, addr: SocketAddr, config: Config) -> usize {
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
        self.settle(index);
        index
    }

    fn make_node(
        &self,
        index: usize,
        generation: u32,
        name: &str,
        addr: SocketAddr,
        config: &Config,
    ) -> Box<Node<M, U>> {
        let identity = Identity::new(name, addr)
            .unwrap_or_else(|e| panic!("invalid identity {name}@{addr}: {e:?}"));
        let seed = mix64(self.cfg.seed ^ mix64(((index as u64) << 32) | u64::from(generation)));
        Box::new(
            Node::new(identity, config.clone(), seed)
                .unwrap_or_else(|e| panic!("node {name} rejected its config: {e:?}")),
        )
    }
}
