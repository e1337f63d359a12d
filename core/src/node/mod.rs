//! The membership state machine.

mod commands;
mod events;
mod evidence;
mod merge;
mod probe;
mod receive;
mod self_claims;
mod sync;
mod timers;
mod transmit;
mod verify;

use core::net::SocketAddr;

use crate::broadcast::{self, Queue, Subject};
use crate::config::{Config, ConfigError};
use crate::crypto::{Keyring, Plaintext, Sealer};
use crate::event::Event;
use crate::member::{Member, Pending, Slot, Status};
use crate::name::fingerprint;
use crate::name::{Identity, Name};
use crate::rand::Rng;
use crate::render::{Members, Render};
use crate::stats::Stats;
use crate::table::Table;
use crate::tags::Tags;
use crate::time::{Duration, Instant};
use crate::user_event::{USER_EVENT_NAME_MAX, UserEvent, UserEventError, UserEvents};
use crate::wire::MAX_COUNTER;

pub use self::evidence::Unreachable;
use self::evidence::{VERIFICATIONS, Verification};
use self::merge::Tombstone;
use self::probe::Probe;
use self::sync::SyncSession;
use self::timers::Timers;
use self::transmit::Outgoing;
use self::verify::{ANSWERED, Answered, Secret};

/// Outgoing messages waiting for `poll_transmit` (acks, pings, nacks, gossip rounds).
const OUTBOX: usize = 16;
/// Members evicted to make room that are remembered, so stale claims cannot bring them back.
const EVICTED: usize = 8;
/// Push-pull exchanges in flight at once.
const SYNCS: usize = 4;
/// Indirect probes this node helps with at once.
const HELPING: usize = 4;
/// Seeds remembered by `join`.
pub const MAX_SEEDS: usize = 8;
/// Non-member events (reaps, refusals, conflicts, join and leave completion) waiting for
/// `poll_event`. Member transitions wait in their own slots and cannot overflow.
const EVENTS: usize = 8;

/// An instruction to send `len` bytes of the caller's buffer to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes written at the start of the buffer given to `poll_transmit`.
    pub len: usize,
}

/// Why [`Node::join`] refused a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum JoinError {
    /// More than [`MAX_SEEDS`] distinct seeds at once.
    TooManySeeds,
    /// The node was built with [`Node::unconfigured`] and not configured yet.
    Unconfigured,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JoinError::TooManySeeds => write!(f, "too many seeds (at most {MAX_SEEDS})"),
            JoinError::Unconfigured => f.write_str("the node has no identity yet (call configure)"),
        }
    }
}

impl core::error::Error for JoinError {}

/// Why [`Node::force_leave`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ForceLeaveError {
    /// No member has that name.
    UnknownMember,
    /// That is this node (use [`Node::leave`]).
    Local,
    /// The member is alive or suspect: it would refute the claim at once.
    Live,
    /// This node has left, or is not configured.
    NotRunning,
}

impl core::fmt::Display for ForceLeaveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ForceLeaveError::UnknownMember => "no member has that name",
            ForceLeaveError::Local => "that is this node; leave it instead",
            ForceLeaveError::Live => {
                "the member is alive or suspect; only a failed one can be forced out"
            }
            ForceLeaveError::NotRunning => "this node is not in a cluster",
        })
    }
}

impl core::error::Error for ForceLeaveError {}

/// Where the node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The leave has been gossiped, or the node is not configured yet: it is silent. First,
    /// so its tag is zero (see [`Node::unconfigured`]).
    Left,
    Running,
    /// `leave` was called; the Left update is being gossiped.
    Leaving,
}

/// Joining through seeds, with exponential backoff.
#[derive(Debug)]
struct Join {
    /// Seeds still to be answered.
    seeds: heapless::Vec<SocketAddr, MAX_SEEDS>,
    /// Every seed ever given, newest last: the way back into the cluster when a partition
    /// outlasted the reap timeout and the two sides forgot each other.
    remembered: heapless::Vec<SocketAddr, MAX_SEEDS>,
    /// The seed the next attempt starts with.
    next: usize,
    backoff: Duration,
}

/// An indirect probe this node runs for another member.
#[derive(Clone, Copy, Debug)]
struct Helping {
    /// Sequence number of our ping to the target.
    seq: u32,
    origin: SocketAddr,
    origin_seq: u32,
    nack_at: Instant,
}

/// A SWIM + Lifeguard membership node: a sans-IO state machine.
///
/// `MEMBERS` is the capacity of the member table, the local node included; `UPDATES` the
/// capacity of the dissemination queue. Nothing grows past them: see the crate docs for the
/// driving contract, and [`size_of`](core::mem::size_of) for the exact footprint.
///
/// Its methods, by kind:
///
/// - **construction**: [`new`](Self::new); [`unconfigured`](Self::unconfigured) then
///   [`configure`](Self::configure) for a node placed in a `static` before its identity is known.
/// - **commands** (queue work; drain the outputs afterwards): [`join`](Self::join),
///   [`leave`](Self::leave), [`force_leave`](Self::force_leave), [`set_tags`](Self::set_tags),
///   [`send_user_event`](Self::send_user_event), [`set_keyring`](Self::set_keyring),
///   [`set_plaintext`](Self::set_plaintext), [`keyring_mut`](Self::keyring_mut).
/// - **inputs**: [`handle_datagram`](Self::handle_datagram),
///   [`handle_timeout`](Self::handle_timeout).
/// - **outputs** (drain after every input or command): [`poll_transmit`](Self::poll_transmit),
///   [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout).
/// - **queries** (no side effect): [`members`](Self::members), [`member`](Self::member),
///   [`local`](Self::local), [`stats`](Self::stats), [`config`](Self::config),
///   [`capacity`](Self::capacity), [`is_leaving`](Self::is_leaving),
///   [`plaintext`](Self::plaintext), [`keyring`](Self::keyring), [`render`](Self::render).
pub struct Node<const MEMBERS: usize, const UPDATES: usize> {
    config: Config,
    /// Slot 0 is the local node; the others are free or hold a member.
    table: Table<MEMBERS>,
    queue: Queue<UPDATES>,
    user: UserEvents,
    outbox: heapless::Deque<Outgoing, OUTBOX>,
    syncs: heapless::Vec<SyncSession, SYNCS>,
    events: heapless::Deque<Event, EVENTS>,
    rng: Rng,
    stats: Stats,
    seq: u32,
    probe: Option<Probe>,
    probe_order: heapless::Vec<u16, MEMBERS>,
    probe_pos: usize,
    /// Alternates the next probe between round-robin and a random suspect.
    probe_suspect_next: bool,
    helping: heapless::Vec<Helping, HELPING>,
    /// Lifeguard local health score, `0..config.awareness_max`.
    awareness: u8,
    timers: Timers,
    join: Join,
    phase: Phase,
    /// Claims of our name from another address; only the first is refuted (a previous
    /// life's record), the others are a name conflict.
    foreign_claims: u8,
    /// Keys and nonce state when encryption is on.
    sealer: Option<Sealer>,
    /// What to do about plaintext while `sealer` is set.
    plaintext: Plaintext,
    /// Fingerprints of recently refused newcomers, so each is reported once.
    refused: heapless::Deque<u32, 16>,
    /// Members recently evicted to make room: a claim at their incarnation or lower is
    /// stale news, not a comeback, until they would have been reaped.
    evicted: heapless::Deque<Tombstone, EVICTED>,
    /// Per slot, the keyed fingerprint of the member's address once it answered a ping of
    /// ours (0: not verified); see `verify.rs`.
    verified: [u32; MEMBERS],
    /// Challenges answered recently (see `verify.rs`).
    answered: heapless::Deque<Answered, ANSWERED>,
    /// Verification pings outstanding (see `evidence.rs`).
    verifications: [Verification; VERIFICATIONS],
    /// Keys verification, drawn from the seed.
    secret: Secret,
    /// Fingerprints of recent name conflicts (name and other address), so each is
    /// reported once.
    conflicts: heapless::Deque<u32, 8>,
    /// No stranger is asked for its table before this instant (see `sync.rs`).
    strangers_quiet_until: Instant,
}

impl<const M: usize, const U: usize> core::fmt::Debug for Node<M, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.local_slot().name)
            .field("members", &self.members().count())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<const MEMBERS: usize, const UPDATES: usize> Node<MEMBERS, UPDATES> {
    /// A node that knows only itself. `seed` drives every random choice (probe order,
    /// helpers, gossip peers): give each node its own, e.g. from a hardware RNG.
    pub fn new(identity: Identity, config: Config, seed: u64) -> Result<Self, ConfigError> {
        let mut node = Self::unconfigured();
        node.configure(identity, config, seed)?;
        Ok(node)
    }

    /// A node with no identity yet, built at compile time: put it in a `static` (e.g. a
    /// `static_cell::ConstStaticCell`) and [`Node::configure`] it in place, so a board never
    /// holds a second copy of the node on its stack. It is silent and lists no member (not
    /// even itself) until configured.
    ///
    /// Every byte of it is zero, so such a `static` lands in `.bss` and costs no flash for
    /// an initial image (its size is in `docs/ARCHITECTURE.md`, "Memory budget"). The types are chosen for that: no
    /// `Option` here keeps its `None` in a spare value of a field, and the config, seed and
    /// backoff stay zero until `configure` sets them. rumor-embedded's memory-budget
    /// script checks that the firmware's node is in `.bss`.
    pub const fn unconfigured() -> Self {
        const { assert!(MEMBERS >= 1, "a node needs at least its own slot") };
        Node {
            table: Table::empty(),
            queue: Queue::new(),
            user: UserEvents::new(),
            outbox: heapless::Deque::new(),
            syncs: heapless::Vec::new(),
            events: heapless::Deque::new(),
            rng: Rng::UNSEEDED,
            stats: Stats::ZERO,
            seq: 0,
            probe: None,
            probe_order: heapless::Vec::new(),
            probe_pos: 0,
            probe_suspect_next: false,
            helping: heapless::Vec::new(),
            awareness: 0,
            timers: Timers::UNARMED,
            join: Join {
                seeds: heapless::Vec::new(),
                remembered: heapless::Vec::new(),
                next: 0,
                backoff: Duration::ZERO,
            },
            config: Config::UNSET,
            phase: Phase::Left,
            foreign_claims: 0,
            sealer: None,
            plaintext: Plaintext::Refuse,
            refused: heapless::Deque::new(),
            evicted: heapless::Deque::new(),
            verified: [0; MEMBERS],
            answered: heapless::Deque::new(),
            verifications: [Verification::NONE; VERIFICATIONS],
            secret: Secret::ZERO,
            conflicts: heapless::Deque::new(),
            strangers_quiet_until: Instant::ZERO,
        }
    }

    /// Gives the node its identity, config and seed, in place, forgetting any previous
    /// protocol state (a fresh start, as after a reboot). The keyring, its nonce counter and
    /// the plaintext policy are kept: a node that had encryption on keeps it. On error
    /// nothing changes.
    pub fn configure(
        &mut self,
        identity: Identity,
        config: Config,
        seed: u64,
    ) -> Result<(), ConfigError> {
        config.validate()?;
        if MEMBERS < 2 || MEMBERS > usize::from(u16::MAX) || UPDATES == 0 {
            return Err(ConfigError::BadCapacity);
        }
        self.table.reset(Slot {
            name: identity.name,
            addr: identity.addr,
            incarnation: 0,
            status: Status::Alive,
            tags: identity.tags,
            since: Instant::ZERO,
            suspicion: None,
            pending: Pending::NONE,
        });
        self.queue.clear();
        self.user.clear();
        self.outbox.clear();
        self.syncs.clear();
        self.events.clear();
        self.rng = Rng::new(seed);
        self.stats = Stats::ZERO;
        self.seq = 0;
        self.probe = None;
        self.probe_order.clear();
        self.probe_pos = 0;
        self.probe_suspect_next = false;
        self.helping.clear();
        self.awareness = 0;
        self.timers = Timers::UNARMED;
        self.join.seeds.clear();
        self.join.remembered.clear();
        self.join.next = 0;
        self.join.backoff = config.join_retry_initial;
        self.config = config;
        self.phase = Phase::Running;
        self.foreign_claims = 0;
        self.refused.clear();
        self.evicted.clear();
        self.verified = [0; MEMBERS];
        self.answered.clear();
        self.verifications = [Verification::NONE; VERIFICATIONS];
        self.secret = Secret::new(seed);
        self.conflicts.clear();
        self.strangers_quiet_until = Instant::ZERO;
        Ok(())
    }

    // ---- internals shared by the submodules ----

    fn local_slot(&self) -> &Slot {
        // Slot 0 exists in every table of two slots or more (`configure` checks), and holds
        // this node once configured.
        self.table.local().unwrap_or_else(|| unreachable!())
    }

    fn local_mut(&mut self) -> &mut Slot {
        self.table.local_mut().unwrap_or_else(|| unreachable!())
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.table.find(name)
    }

    /// Members alive or suspect, the local node included.
    fn live_count(&self) -> usize {
        self.table.live()
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn retransmit_limit(&self) -> u8 {
        broadcast::retransmit_limit(self.config.retransmit_mult, self.live_count())
    }

    fn local_fingerprint(&self) -> u32 {
        fingerprint(&self.local_slot().name)
    }

    fn push_event(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.stats.events_lost += 1;
        }
    }

    /// Queues news of `subject`; the only way into the queue, so every update a full
    /// queue loses is counted.
    fn broadcast(&mut self, subject: Subject) {
        match self.queue.push(subject) {
            broadcast::Pushed::Queued => {}
            broadcast::Pushed::Evicted | broadcast::Pushed::Dropped => {
                self.stats.updates_evicted += 1;
            }
        }
    }

    /// Takes in a user event: a new one is buffered and gossiped; every event it evicts
    /// before the application polled it or before its last retransmission is counted, and
    /// so is one too old to judge.
    fn accept_user_event(&mut self, event: UserEvent) {
        use crate::user_event::Accepted;
        match self.user.accept(event) {
            Accepted::Duplicate => {}
            Accepted::Stale => self.stats.user_events_stale += 1,
            Accepted::New { slot, evicted } => {
                let subject = Subject::User(slot as u8);
                if let Some(evicted) = evicted {
                    if !evicted.delivered {
                        self.stats.user_events_lost += 1;
                    }
                    if self.queue.contains(subject) {
                        self.stats.user_events_cut += 1;
                        self.queue.remove(subject);
                    }
                }
                self.broadcast(subject);
            }
        }
    }

    /// Forgets slot `i` and every reference to it.
    fn free_slot(&mut self, i: usize) -> Option<Slot> {
        let slot = self.table.remove(i)?;
        self.queue.remove(Subject::Member(i as u16));
        if self
            .probe
            .as_ref()
            .is_some_and(|p| usize::from(p.target) == i)
        {
            self.probe = None;
        }
        for k in 0..self.table.timed().len() {
            // Only suspects have a suspicion, and suspects are in the timed list.
            let t = usize::from(self.table.timed()[k]);
            if let Some(sus) = self.table.get_mut(t).and_then(|s| s.suspicion.as_mut())
                && sus.accuser() == Some(i as u16)
            {
                sus.set_accuser(None);
            }
        }
        Some(slot)
    }

    /// Name of the member in slot `i` or, if there is none (an anonymous accusation, or
    /// the accuser was forgotten), `or`.
    fn name_of<'a>(&'a self, i: Option<u16>, or: &'a Name) -> &'a Name {
        i.and_then(|i| self.table.get(usize::from(i)))
            .map_or(or, |s| &s.name)
    }

    fn check_leave_complete(&mut self) {
        if self.phase == Phase::Leaving
            && (!self.queue.contains(Subject::Member(0)) || self.live_count() == 0)
        {
            self.phase = Phase::Left;
            self.queue.remove(Subject::Member(0));
            self.outbox.clear();
            self.push_event(Event::LeaveComplete);
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_amplify;
#[cfg(test)]
mod tests_counters;
#[cfg(test)]
mod tests_edges;
#[cfg(test)]
mod tests_encrypt;
#[cfg(test)]
mod tests_events;
