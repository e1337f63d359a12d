//! An adversary for the simulator: it injects well-formed but hostile frames into a
//! plaintext cluster for a while, then stops; [`check_liveness`] then asks whether the
//! cluster got over it within a documented bound.
//!
//! Every frame is built by rumor-core's own encoder ([`rumor_core::forge`]), so the nodes
//! decode all of them and the attack exercises the protocol, not the parser. The frames
//! use any message and update kind, any counter up to [`MAX_COUNTER`] (0, the cap and
//! values around what the receiver holds), the names of real members, strangers and the
//! not-yet-started newcomer, and spoofed source addresses of real members and strangers.
//!
//! Every choice comes from a [`Choices`]: [`ByteChoices`] reads them from a byte string
//! (a fuzzer's input), [`SeededChoices`] draws them from a seed (scenario tests). The same
//! choices replay the same attack: each [`Injected`] frame is kept for the report.
//!
//! Some classes of frames break today's core (issue 10); [`Classes`] names them, and an
//! [`AttackConfig`] can leave them out so that a test passes until the fix lands.
//!
//! ```
//! use rumor_bench::adversary::{self, AttackConfig, SeededChoices};
//!
//! let mut sim = adversary::target_cluster(1);
//! let mut choices = SeededChoices::new(1);
//! let config = AttackConfig::default().excluding(adversary::Classes::KNOWN_BUGS);
//! let frames = adversary::attack(&mut sim, &mut choices, &config);
//! assert!(!frames.is_empty());
//! adversary::check_liveness(&mut sim).unwrap();
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use rumor_core::forge::{self, Message, Update};
use rumor_core::{Config, DropReason, Duration, Instant, MAX_COUNTER, Status, Tags};

use crate::sim::{ClusterBuilder, Sim, SplitMix64, node_name};

mod forged;
mod liveness;

pub use self::forged::{Forged, ForgedMessage, ForgedUpdate};
pub use self::liveness::{Recovery, Violation, check_liveness};

/// Members of the attacked cluster before the newcomer arrives.
pub const NODES: usize = 5;
/// Member slots of each node: the cluster and the newcomer fill 6 of 8, so a few forged
/// strangers fill the table.
pub const MEMBERS: usize = 8;
/// Dissemination queue entries of each node.
pub const UPDATES: usize = 16;
/// The attacked cluster.
pub type Target = Sim<MEMBERS, UPDATES>;

/// The name of the node started after the attack (the adversary may claim it first).
pub const NEWCOMER: &str = "newcomer";
/// Names of members that do not exist.
pub const STRANGERS: [&str; 3] = ["ghost-0", "ghost-1", "ghost-2"];
/// Counters this close to [`MAX_COUNTER`] (or closer) belong to the "at the cap" classes.
pub const CAP_ZONE: u32 = 1 << 20;

/// Most virtual time before the attacked cluster must have formed.
const FORM_BOUND: Duration = Duration::from_secs(60);
/// Most virtual time after the attack stops for the newcomer to join and every member to
/// see every other alive at its real address (stage 1 of [`check_liveness`]).
pub const CONVERGE_BOUND: Duration = Duration::from_secs(120);
/// In a plaintext cluster a forger may claim a name nobody holds yet at an incarnation far
/// above [`rumor_core::INCARNATION_WINDOW`] (a member never seen before is taken at any
/// incarnation, as a joiner must learn long-lived members). When that name is the
/// newcomer's, the newcomer cannot out-bid the claim (it refuses to jump that far) and gets
/// its name once every node has reaped the squatter's record (or forgotten it, if evicted
/// to make room). Likewise a live member that forged claims got declared failed and then
/// evicted from full tables everywhere is remembered as evicted at its incarnation (so
/// stale news cannot bring a dead member back), and nobody is left to tell it to refute:
/// it comes back once those tombstones expire, at the reap timeout. When only the
/// newcomer's name is wrong or members are missing after [`CONVERGE_BOUND`], the stage-1
/// bound is [`Config::local`]'s `reap_timeout` plus [`CONVERGE_BOUND`].
pub fn squat_bound() -> Duration {
    Config::local().reap_timeout + CONVERGE_BOUND
}
/// Most virtual time for every member to refute a suspicion about itself and for
/// everybody to hear the refutation (stage 2).
pub const REFUTE_BOUND: Duration = Duration::from_secs(30);
/// Virtual time in which every member must receive a push-pull chunk (stage 3): two push-pull
/// intervals of [`Config::local`] and a little.
pub const PUSH_PULL_BOUND: Duration = Duration::from_secs(35);
/// Most virtual time for a user event to reach every member (stage 4, once per member).
pub const EVENT_BOUND: Duration = Duration::from_secs(30);

/// A source of the adversary's choices.
pub trait Choices {
    /// The next choice byte.
    fn byte(&mut self) -> u8;
    /// Whether the choices have run out (the attack then stops).
    fn exhausted(&self) -> bool;

    /// A value from two bytes.
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A value from four bytes.
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A value in `0..n` (`n` at most 256; 0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()).checked_rem(n).unwrap_or(0)
    }
}

/// Choices read from a byte string, one after the other; zeros once it runs out.
#[derive(Clone, Debug)]
pub struct ByteChoices<'a> {
    rest: &'a [u8],
    exhausted: bool,
}

impl<'a> ByteChoices<'a> {
    /// Choices taken from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        ByteChoices {
            rest: bytes,
            exhausted: false,
        }
    }
}

impl Choices for ByteChoices<'_> {
    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => {
                self.exhausted = true;
                0
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.exhausted
    }
}

/// Choices drawn from a seeded generator; they never run out.
#[derive(Clone, Debug)]
pub struct SeededChoices(SplitMix64);

impl SeededChoices {
    /// Choices drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededChoices(SplitMix64::new(seed))
    }
}

impl Choices for SeededChoices {
    fn byte(&mut self) -> u8 {
        self.0.next_u64() as u8
    }

    fn exhausted(&self) -> bool {
        false
    }
}

/// A set of frame classes: properties of a forged frame that matter because some of them
/// break today's core.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Classes(u8);

impl Classes {
    /// No class.
    pub const NONE: Classes = Classes(0);
    /// A Lamport time (a user event's or a push-pull's) within [`CAP_ZONE`] of the cap.
    /// Issue 10 item 1: the node's clock reaches the cap and every later push-pull is
    /// dropped as malformed, so nobody can join.
    pub const LAMPORT_CAP: Classes = Classes(1);
    /// An incarnation (in an update or a ping's suspicion) within [`CAP_ZONE`] of the cap.
    /// Issue 10 item 1: its owner cannot out-bid the claim.
    pub const INCARNATION_CAP: Classes = Classes(1 << 1);
    /// An `Alive` (or alive `State`) about a real member or the newcomer at an address
    /// other than its own. Issue 10 item 3: nodes follow whichever address claims last.
    pub const ADDRESS_CLAIM: Classes = Classes(1 << 2);
    /// A `Left` (or left `State`) about a real member or the newcomer. Issue 10 item 4
    /// reports that, with forged strangers filling the table, the member's slot is evicted;
    /// this class alone broke nothing in 200 seeds (the member refutes), so it is not in
    /// [`Classes::KNOWN_BUGS`].
    pub const FORGED_LEFT: Classes = Classes(1 << 3);
    /// An `Alive` (or alive `State`) about [`STRANGERS`]`[2]`: with the newcomer's name and
    /// the other strangers, more names than a table of [`MEMBERS`] holds, so failed ones are
    /// evicted. Issue 10 item 4 (found by this adversary): an evicted failed member is
    /// re-admitted by a stale claim at the same or a lower incarnation, which the
    /// simulator's invariants 1 and 2 reject.
    pub const TABLE_OVERFLOW: Classes = Classes(1 << 4);
    /// Every class that breaks the core as of issue 10: all but [`Classes::FORGED_LEFT`].
    pub const KNOWN_BUGS: Classes = Classes(0b1_0111);

    /// Whether every class of `other` is in `self`.
    pub const fn contains(self, other: Classes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a class.
    pub const fn intersects(self, other: Classes) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` without the classes of `other`.
    #[must_use]
    pub const fn without(self, other: Classes) -> Classes {
        Classes(self.0 & !other.0)
    }

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Classes) -> Classes {
        Classes(self.0 | other.0)
    }
}

impl fmt::Debug for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Classes::LAMPORT_CAP, "LAMPORT_CAP"),
            (Classes::INCARNATION_CAP, "INCARNATION_CAP"),
            (Classes::ADDRESS_CLAIM, "ADDRESS_CLAIM"),
            (Classes::FORGED_LEFT, "FORGED_LEFT"),
            (Classes::TABLE_OVERFLOW, "TABLE_OVERFLOW"),
        ];
        let mut set = f.debug_set();
        for (class, name) in names {
            if self.contains(class) {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}

/// How the adversary attacks.
#[derive(Clone, Debug)]
pub struct AttackConfig {
    /// Most virtual time the attack lasts.
    pub duration: Duration,
    /// Most frames injected.
    pub max_frames: usize,
    /// Most updates per frame.
    pub max_updates: usize,
    /// Classes of frames never injected: a frame that would belong to one is changed to
    /// avoid it (a counter is moved out of the cap zone, an address claim names the
    /// member's own address, a `Left` becomes a `Suspect`, the last stranger's name
    /// becomes the first's).
    pub excluded: Classes,
}

impl Default for AttackConfig {
    /// 20 s, at most 64 frames of at most 4 updates each, nothing excluded.
    fn default() -> Self {
        AttackConfig {
            duration: Duration::from_secs(20),
            max_frames: 64,
            max_updates: 4,
            excluded: Classes::NONE,
        }
    }
}

impl AttackConfig {
    /// This config, never injecting frames of `classes`.
    #[must_use]
    pub fn excluding(mut self, classes: Classes) -> Self {
        self.excluded = self.excluded.union(classes);
        self
    }
}

/// One frame the adversary injected: enough to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// When.
    pub at: Instant,
    /// The receiving node.
    pub to: usize,
    /// The (spoofed) source address.
    pub from: SocketAddr,
    /// The frame.
    pub frame: Forged,
    /// The classes it belongs to.
    pub classes: Classes,
    /// What the node answered.
    pub verdict: Result<(), DropReason>,
}

/// The attacked cluster: [`NODES`] members of capacity [`MEMBERS`] with
/// [`Config::local`] over LAN links, formed (every member sees every other alive).
///
/// # Panics
/// If it does not form within a minute of virtual time.
pub fn target_cluster(seed: u64) -> Target {
    let mut sim = ClusterBuilder::new(NODES)
        .seed(seed)
        .config(Config::local())
        .build();
    // An evicted member is remembered until it would have been reaped (rumor-core's
    // tombstones), not forever.
    sim.views_mut()
        .forget_absent_after(Config::local().reap_timeout);
    let formed = sim.run_until_pred(sim.now() + FORM_BOUND, |s| s.converged());
    assert!(
        formed.is_some(),
        "the cluster did not form (seed {seed:#x})"
    );
    sim
}

/// The address of stranger `k`: never a node's (outside the simulator's range).
pub fn stranger_addr(k: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(203, 0, 113, 1 + (k % 250) as u8), 7946))
}

/// Attacks `sim` with frames chosen by `choices` until the config's duration or frame
/// budget is spent or the choices run out. Returns every frame injected, in order.
///
/// # Panics
/// If a simulator invariant breaks during the attack (see [`crate::sim::Views`]).
pub fn attack(sim: &mut Target, choices: &mut dyn Choices, config: &AttackConfig) -> Vec<Injected> {
    let mut frames = Vec::new();
    attack_into(sim, choices, config, &mut frames);
    frames
}

/// [`attack`], appending each frame to `frames` as soon as it is injected, so that the
/// frames that led to a panicking simulator invariant are still at hand.
///
/// # Panics
/// If a simulator invariant breaks during the attack (see [`crate::sim::Views`]).
pub fn attack_into(
    sim: &mut Target,
    choices: &mut dyn Choices,
    config: &AttackConfig,
    frames: &mut Vec<Injected>,
) {
    let start = frames.len();
    let end = sim.now() + config.duration;
    while frames.len() - start < config.max_frames && !choices.exhausted() {
        let gap = Duration::from_millis(u64::from(choices.byte()) * 4);
        if sim.now() + gap > end {
            break;
        }
        sim.run_for(gap);
        let mut forger = Forger {
            sim,
            choices: &mut *choices,
            excluded: config.excluded,
            classes: Classes::NONE,
        };
        let Some((to, from, frame)) = forger.frame(config.max_updates) else {
            continue;
        };
        let classes = forger.classes;
        let Ok(bytes) = frame.encode(Config::local().cluster_id) else {
            // Too large for one datagram: the adversary could not send it either.
            continue;
        };
        // Recorded before it is handed over: a panic inside still leaves it in `frames`.
        frames.push(Injected {
            at: sim.now(),
            to,
            from,
            frame,
            classes,
            verdict: Ok(()),
        });
        let verdict = sim.inject_datagram(to, from, &bytes);
        if let Some(last) = frames.last_mut() {
            last.verdict = verdict;
        }
    }
}

/// Picks one frame's parts from the choices.
struct Forger<'s, 'c> {
    sim: &'s Target,
    choices: &'c mut dyn Choices,
    excluded: Classes,
    /// The classes of the frame being built.
    classes: Classes,
}

impl Forger<'_, '_> {
    fn frame(&mut self, max_updates: usize) -> Option<(usize, SocketAddr, Forged)> {
        let running: Vec<usize> = self.sim.running().collect();
        let to = *running.get(self.choices.below(running.len()))?;
        let from = self.address();
        let message = self.message(to);
        let in_sync = matches!(
            message,
            ForgedMessage::SyncRequest { .. } | ForgedMessage::SyncResponse { .. }
        );
        let count = self.choices.below(max_updates + 1);
        let updates = (0..count).map(|_| self.update(to, in_sync)).collect();
        Some((to, from, Forged { message, updates }))
    }

    /// A real member's address or a stranger's.
    fn address(&mut self) -> SocketAddr {
        let k = self.choices.below(NODES + STRANGERS.len());
        if k < NODES {
            self.sim.addr(k)
        } else {
            stranger_addr(k - NODES)
        }
    }

    /// A real member's name (often the receiver's), a stranger's, or the newcomer's.
    fn name(&mut self, to: usize) -> String {
        let k = self.choices.below(NODES + STRANGERS.len() + 2);
        match k {
            k if k < NODES => node_name(k),
            k if k < NODES + STRANGERS.len() => STRANGERS[k - NODES].to_owned(),
            k if k == NODES + STRANGERS.len() => NEWCOMER.to_owned(),
            _ => self.sim.name(to).to_owned(),
        }
    }

    /// Whether `name` is a member an attack can hurt (a real one or the newcomer).
    fn is_member(&self, name: &str) -> bool {
        name == NEWCOMER || self.sim.index_of(name).is_some()
    }

    /// A counter: around what `to` holds about `name` (`known`), or at an edge.
    fn counter(&mut self, known: u32, cap_class: Classes) -> u32 {
        let v = match self.choices.byte() % 10 {
            0 => 0,
            1 => 1,
            2 => known,
            3 => known.saturating_add(1),
            4 => known.saturating_add(u32::from(self.choices.byte())),
            5 => known.saturating_sub(1),
            6 => MAX_COUNTER - 1,
            7 => MAX_COUNTER,
            8 => MAX_COUNTER - u32::from(self.choices.u16()),
            _ => self.choices.u32() & MAX_COUNTER,
        }
        .min(MAX_COUNTER);
        if v < MAX_COUNTER - CAP_ZONE {
            v
        } else if self.excluded.intersects(cap_class) {
            // Out of the cap zone, still far ahead.
            v - CAP_ZONE - 1
        } else {
            self.classes = self.classes.union(cap_class);
            v
        }
    }

    /// The incarnation `to` holds for `name` (0 when it holds none).
    fn known_incarnation(&self, to: usize, name: &str) -> u32 {
        self.sim
            .views()
            .get(to, name)
            .map_or(0, |seen| seen.incarnation)
    }

    /// The newest Lamport time `to` delivered (0 when none).
    fn known_ltime(&self, to: usize) -> u32 {
        let newest = self
            .sim
            .log()
            .user_deliveries()
            .iter()
            .filter(|d| d.observer == to)
            .map(|d| d.ltime)
            .max()
            .unwrap_or(0);
        u32::try_from(newest).unwrap_or(MAX_COUNTER)
    }

    fn seq(&mut self) -> u32 {
        match self.choices.byte() % 4 {
            0 => 0,
            1 => u32::MAX,
            _ => u32::from(self.choices.u16()),
        }
    }

    fn message(&mut self, to: usize) -> ForgedMessage {
        match self.choices.byte() % 8 {
            0 | 1 => {
                let target = self.name(to);
                let suspected = if self.choices.byte() & 1 == 0 {
                    None
                } else {
                    let known = self.known_incarnation(to, &target);
                    Some(self.counter(known, Classes::INCARNATION_CAP))
                };
                ForgedMessage::Ping {
                    seq: self.seq(),
                    target,
                    suspected,
                }
            }
            2 => ForgedMessage::Ack { seq: self.seq() },
            3 => ForgedMessage::Nack { seq: self.seq() },
            4 => ForgedMessage::PingReq {
                seq: self.seq(),
                target: self.name(to),
                addr: self.address(),
            },
            5 => {
                let flags = self.choices.byte();
                let known = self.known_ltime(to);
                ForgedMessage::SyncRequest {
                    first: flags & 1 != 0,
                    join: flags & 2 != 0,
                    ltime: self.counter(known, Classes::LAMPORT_CAP),
                }
            }
            6 => {
                let known = self.known_ltime(to);
                ForgedMessage::SyncResponse {
                    ltime: self.counter(known, Classes::LAMPORT_CAP),
                }
            }
            _ => ForgedMessage::Gossip,
        }
    }

    fn tags(&mut self) -> Tags {
        match self.choices.byte() % 3 {
            0 => Tags::new().with("role", "forged").unwrap_or_default(),
            _ => Tags::new(),
        }
    }

    /// The subject of an alive claim: any name, but not [`STRANGERS`]`[2]` when
    /// [`Classes::TABLE_OVERFLOW`] is excluded.
    fn alive_name(&mut self, name: String) -> String {
        if name != STRANGERS[2] {
            name
        } else if self.excluded.contains(Classes::TABLE_OVERFLOW) {
            STRANGERS[0].to_owned()
        } else {
            self.classes = self.classes.union(Classes::TABLE_OVERFLOW);
            name
        }
    }

    /// An address for an alive claim about `name`; one other than the member's own only
    /// when [`Classes::ADDRESS_CLAIM`] is allowed.
    fn claimed_address(&mut self, name: &str) -> SocketAddr {
        let addr = self.address();
        let Some(own) = self.sim.index_of(name).map(|i| self.sim.addr(i)) else {
            if name == NEWCOMER {
                if self.excluded.contains(Classes::ADDRESS_CLAIM) {
                    return stranger_addr(STRANGERS.len());
                }
                self.classes = self.classes.union(Classes::ADDRESS_CLAIM);
            }
            return addr;
        };
        if addr == own {
            addr
        } else if self.excluded.contains(Classes::ADDRESS_CLAIM) {
            own
        } else {
            self.classes = self.classes.union(Classes::ADDRESS_CLAIM);
            addr
        }
    }

    fn status(&mut self, name: &str) -> Status {
        let status =
            [Status::Alive, Status::Suspect, Status::Failed, Status::Left][self.choices.below(4)];
        if status != Status::Left || !self.is_member(name) {
            status
        } else if self.excluded.contains(Classes::FORGED_LEFT) {
            Status::Suspect
        } else {
            self.classes = self.classes.union(Classes::FORGED_LEFT);
            status
        }
    }

    fn update(&mut self, to: usize, in_sync: bool) -> ForgedUpdate {
        let kind = self.choices.byte() % 6;
        if kind == 5 {
            let known = self.known_ltime(to);
            let origin = self.name(to);
            let ltime = self.counter(known, Classes::LAMPORT_CAP);
            let name = format!("ev{}", self.choices.byte() % 4);
            let payload = vec![self.choices.byte(); self.choices.below(4)];
            return ForgedUpdate::User {
                origin,
                ltime,
                name,
                payload,
            };
        }
        let name = self.name(to);
        let known = self.known_incarnation(to, &name);
        let incarnation = self.counter(known, Classes::INCARNATION_CAP);
        if in_sync {
            let status = self.status(&name);
            let (name, addr) = if status == Status::Alive {
                let name = self.alive_name(name);
                let addr = self.claimed_address(&name);
                (name, addr)
            } else {
                let addr = self.address();
                (name, addr)
            };
            return ForgedUpdate::State {
                name,
                incarnation,
                addr,
                tags: self.tags(),
                status,
            };
        }
        match kind {
            0 | 1 => {
                let name = self.alive_name(name);
                ForgedUpdate::Alive {
                    addr: self.claimed_address(&name),
                    tags: self.tags(),
                    name,
                    incarnation,
                }
            }
            2 => ForgedUpdate::Suspect {
                from: self.name(to),
                name,
                incarnation,
            },
            3 => ForgedUpdate::Failed { name, incarnation },
            _ => match self.status(&name) {
                Status::Left => ForgedUpdate::Left { name, incarnation },
                _ => ForgedUpdate::Failed { name, incarnation },
            },
        }
    }
}

/// Runs one whole adversarial trial: forms the cluster with `seed`, attacks it with
/// `choices` under `config`, and checks liveness. On a violation, returns it with the
/// frames that led to it.
///
/// # Errors
/// The violation, and every injected frame.
pub fn trial(
    seed: u64,
    choices: &mut dyn Choices,
    config: &AttackConfig,
) -> Result<(Recovery, Vec<Injected>), (Violation, Vec<Injected>)> {
    let mut sim = target_cluster(seed);
    let frames = attack(&mut sim, choices, config);
    match check_liveness(&mut sim) {
        Ok(recovery) => Ok((recovery, frames)),
        Err(violation) => Err((violation, frames)),
    }
}

/// Replays `frames` (from [`attack`], possibly trimmed) against a fresh cluster of `seed`,
/// at their original instants, then checks liveness: for minimising a finding by hand.
///
/// # Errors
/// The violation, if one is found.
pub fn replay(seed: u64, frames: &[Injected]) -> Result<Recovery, Violation> {
    let mut sim = target_cluster(seed);
    for f in frames {
        sim.run_until(f.at);
        let bytes = f
            .frame
            .encode(Config::local().cluster_id)
            .expect("an injected frame encodes");
        let _ = sim.inject_datagram(f.to, f.from, &bytes);
    }
    check_liveness(&mut sim)
}

/// Shrinks `frames` to a smaller list for which `fails` still holds: drops whole frames,
/// then single updates, one at a time, as long as `fails` keeps holding (a greedy
/// one-minimal reduction). `fails` typically [`replay`]s the frames and matches the
/// violation (catching a panic, for a simulator invariant).
pub fn minimize(frames: &[Injected], mut fails: impl FnMut(&[Injected]) -> bool) -> Vec<Injected> {
    let mut best = frames.to_vec();
    let mut i = 0;
    while i < best.len() {
        let mut candidate = best.clone();
        candidate.remove(i);
        if fails(&candidate) {
            best = candidate;
        } else {
            i += 1;
        }
    }
    for f in 0..best.len() {
        let mut u = 0;
        while u < best[f].frame.updates.len() {
            let mut candidate = best.clone();
            candidate[f].frame.updates.remove(u);
            if fails(&candidate) {
                best = candidate;
            } else {
                u += 1;
            }
        }
    }
    best
}
