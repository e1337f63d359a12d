//! [foca](https://docs.rs/foca) 2 as a [`SimMember`], so that `rumor-sim --compare foca`
//! runs it through the same simulator, network and scenarios as rumor.
//!
//! foca pushes its timers to the runtime (`Runtime::submit_after`) instead of offering a
//! deadline, so the adapter keeps them in its own heap and offers the earliest as
//! [`SimMember::poll_timeout`]. That heap, and copying each datagram foca hands over, is
//! work every foca runtime does, so it is counted in foca's CPU time.
//!
//! Mapping to rumor's vocabulary:
//! - identity: name + address + a renewal counter ([`FocaId`]); a member declared down
//!   renews itself and rejoins, as a rumor node refutes a failure with a new incarnation;
//!   the renewal counter is folded into the reported incarnation (`bump << 16 | inc`);
//! - `MemberUp` is [`Event::MemberJoined`], `MemberDown` is [`Event::MemberFailed`] (foca
//!   has no separate "left"), `Active` is [`Event::Joined`];
//! - joining: foca's `announce` is one-shot, so the adapter retries it with rumor's join
//!   backoff until foca reports `Active`;
//! - user events ride on foca's custom broadcasts ([`UserEvents`]).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::rc::Rc;

use foca::{
    BroadcastHandler, Foca, Invalidates, Notification, PeriodicParams, PostcardCodec, Runtime,
    State, Timer,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rumor_core::{
    Config, DropReason, Duration, Event, Instant, JoinError, MAX_SEEDS, Name, Status, Tags,
    Transmit, USER_EVENT_NAME_MAX, USER_PAYLOAD_MAX, UserEvent, UserEventError,
};
use serde::{Deserialize, Serialize};

use crate::sim::SimMember;

/// A foca identity: the member's name and address (what a rumor member carries too) and
/// a renewal counter, bumped when the member finds itself declared down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FocaId {
    /// The member's name.
    pub name: Name,
    /// The member's address (foca's `Identity::Addr`: one live identity per address).
    pub addr: SocketAddr,
    /// Renewals so far; the higher one wins an address conflict.
    pub bump: u16,
}

impl foca::Identity for FocaId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(FocaId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

impl FocaId {
    /// The incarnation reported to the simulator: renewals first, then foca's own counter,
    /// so that it only grows for one name.
    fn folded(&self, incarnation: u16) -> u32 {
        (u32::from(self.bump) << 16) | u32::from(incarnation)
    }
}

/// foca's settings plus the join retry policy the adapter applies around `announce`.
#[derive(Clone, Debug)]
pub struct FocaConfig {
    /// foca's own config.
    pub foca: foca::Config,
    /// First delay before announcing again to the seeds.
    pub join_retry_initial: Duration,
    /// Longest delay between announces.
    pub join_retry_max: Duration,
}

impl FocaConfig {
    /// foca settings matching rumor's `config` for a cluster of `n` members:
    /// - probe period, probe timeout (foca's `probe_rtt`), indirect probes and packet size
    ///   taken as they are;
    /// - `max_transmissions` = rumor's retransmit limit, `retransmit_mult * ceil(log10(n + 1))`;
    /// - `suspect_to_down_after` = rumor's *shortest* Lifeguard suspicion timeout,
    ///   `suspicion_mult * max(1, log10 n) * probe_interval` (foca's own `new_lan` formula).
    ///   rumor starts a suspicion at `suspicion_max_timeout_mult` times that and shrinks it
    ///   as independent confirmations arrive, so foca gets the faster, less careful end;
    /// - periodic gossip every `gossip_interval` to `gossip_nodes` members;
    /// - periodic announce (foca's anti-entropy) and announce to down members (partition
    ///   healing) every `push_pull_interval` to one member, as rumor's push-pull and
    ///   reconnect;
    /// - down members forgotten after `reap_timeout`; `notify_down_members` on.
    pub fn matching(config: &Config, n: usize) -> Self {
        let ms = |d: Duration| std::time::Duration::from_millis(d.as_millis());
        let n = n.max(1) as f64;
        let retransmits = f64::from(config.retransmit_mult) * (n + 1.0).log10().ceil();
        let suspicion = f64::from(config.suspicion_mult)
            * n.log10().max(1.0)
            * config.probe_interval.as_millis() as f64;
        let nz = |v: usize| NonZeroUsize::new(v.max(1)).unwrap_or(NonZeroUsize::MIN);
        let periodic = |every: Duration, members: usize| {
            Some(PeriodicParams {
                frequency: ms(every),
                num_members: nz(members),
            })
        };
        FocaConfig {
            foca: foca::Config {
                probe_period: ms(config.probe_interval),
                probe_rtt: ms(config.probe_timeout),
                num_indirect_probes: nz(usize::from(config.indirect_checks)),
                max_transmissions: NonZeroU8::new(retransmits.clamp(1.0, 255.0) as u8)
                    .unwrap_or(NonZeroU8::MIN),
                suspect_to_down_after: std::time::Duration::from_millis(suspicion as u64),
                remove_down_after: Some(ms(config.reap_timeout)),
                max_packet_size: nz(config.max_datagram),
                notify_down_members: true,
                periodic_announce: periodic(config.push_pull_interval, 1),
                periodic_announce_to_down_members: periodic(config.push_pull_interval, 1),
                periodic_gossip: periodic(config.gossip_interval, usize::from(config.gossip_nodes)),
            },
            join_retry_initial: config.join_retry_initial,
            join_retry_max: config.join_retry_max,
        }
    }
}

/// A pending foca timer.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    at: Instant,
    timer: Timer<FocaId>,
    seq: u64,
}

impl Ord for Pending {
    /// Reversed for the max-heap: earliest first; at one instant, foca's own timer order
    /// (indirect probes before the next probe), then submission order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, &other.timer, other.seq).cmp(&(self.at, &self.timer, self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The runtime foca talks to: it collects datagrams, timers and notifications.
#[derive(Debug, Default)]
struct Io {
    now: Instant,
    seq: u64,
    timers: BinaryHeap<Pending>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    /// Set by `Notification::Active`.
    active: bool,
}

impl Runtime<FocaId> for Io {
    fn notify(&mut self, notification: Notification<'_, FocaId>) {
        let event = match notification {
            Notification::MemberUp(id) => Event::MemberJoined {
                name: id.name.clone(),
                addr: id.addr,
            },
            Notification::MemberDown(id) => Event::MemberFailed {
                name: id.name.clone(),
                addr: id.addr,
            },
            Notification::Active => {
                self.active = true;
                return;
            }
            _ => return,
        };
        self.events.push_back(event);
    }

    fn send_to(&mut self, to: FocaId, data: &[u8]) {
        self.outbox.push_back((to.addr, data.to_vec()));
    }

    fn submit_after(&mut self, timer: Timer<FocaId>, after: std::time::Duration) {
        self.seq += 1;
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.timers.push(Pending {
            at: self.now + Duration::from_millis(after),
            timer,
            seq: self.seq,
        });
    }
}

/// Joining through seeds until foca reports `Active`.
#[derive(Debug, Default)]
struct Join {
    seeds: Vec<SocketAddr>,
    next: Option<Instant>,
    backoff: Duration,
    reported: bool,
}

/// foca's custom-broadcast handler carrying user events: an item is
/// `[origin len][origin][ltime u32 LE][name len][name][payload]`, identified by
/// `(origin, ltime)`. New items are handed to the adapter through a shared inbox.
#[derive(Debug)]
pub struct UserEvents {
    seen: BTreeSet<(Name, u32)>,
    inbox: Rc<RefCell<VecDeque<UserEvent>>>,
}

/// Identifies one user event among foca's custom broadcasts.
#[derive(Debug, PartialEq, Eq)]
pub struct EventKey(Name, u32);

impl Invalidates for EventKey {
    fn invalidates(&self, other: &Self) -> bool {
        self == other
    }
}

/// A custom broadcast that is not a well-formed user event.
#[derive(Clone, Copy, Debug)]
pub struct BadUserEvent;

impl fmt::Display for BadUserEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed user event broadcast")
    }
}

impl std::error::Error for BadUserEvent {}

impl UserEvents {
    fn encode(event: &UserEvent) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + event.origin.len() + event.name.len());
        out.push(event.origin.len() as u8);
        out.extend_from_slice(event.origin.as_bytes());
        out.extend_from_slice(&event.ltime.to_le_bytes());
        out.push(event.name.len() as u8);
        out.extend_from_slice(event.name.as_bytes());
        out.extend_from_slice(&event.payload);
        out
    }

    fn decode(data: &[u8]) -> Option<UserEvent> {
        let (&len, rest) = data.split_first()?;
        let (origin, rest) = rest.split_at_checked(usize::from(len))?;
        let (ltime, rest) = rest.split_first_chunk::<4>()?;
        let (&len, rest) = rest.split_first()?;
        let (name, payload) = rest.split_at_checked(usize::from(len))?;
        Some(UserEvent {
            origin: Name::try_from(std::str::from_utf8(origin).ok()?).ok()?,
            ltime: u32::from_le_bytes(*ltime),
            name: heapless::String::try_from(std::str::from_utf8(name).ok()?).ok()?,
            payload: heapless::Vec::from_slice(payload).ok()?,
        })
    }
}

impl BroadcastHandler<FocaId> for UserEvents {
    type Key = EventKey;
    type Error = BadUserEvent;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&FocaId>,
    ) -> Result<Option<EventKey>, BadUserEvent> {
        let event = UserEvents::decode(data).ok_or(BadUserEvent)?;
        let key = (event.origin.clone(), event.ltime);
        if !self.seen.insert(key.clone()) {
            return Ok(None);
        }
        self.inbox.borrow_mut().push_back(event);
        Ok(Some(EventKey(key.0, key.1)))
    }
}

type Inner = Foca<FocaId, PostcardCodec, SmallRng, UserEvents>;

/// One foca instance with the runtime around it; see the [module docs](self).
pub struct FocaMember {
    foca: Inner,
    io: Io,
    config: FocaConfig,
    join: Join,
    user_inbox: Rc<RefCell<VecDeque<UserEvent>>>,
    user_clock: u32,
    left: bool,
}

impl fmt::Debug for FocaMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FocaMember")
            .field("identity", self.foca.identity())
            .field("members", &self.foca.num_members())
            .field("timers", &self.io.timers.len())
            .finish_non_exhaustive()
    }
}

impl FocaMember {
    /// The foca instance, for anything the adapter does not wrap.
    pub fn foca(&self) -> &Foca<FocaId, PostcardCodec, SmallRng, UserEvents> {
        &self.foca
    }

    fn announce_to_seeds(&mut self) {
        for &addr in &self.join.seeds {
            let dst = FocaId {
                name: Name::new(),
                addr,
                bump: 0,
            };
            // Only fails on encoding; counted nowhere because it cannot happen here.
            let _ = self.foca.announce(dst, &mut self.io);
        }
    }

    fn drain_notifications(&mut self) {
        if self.io.active && !self.join.reported {
            self.join.reported = true;
            self.join.next = None;
            if let Some(&via) = self.join.seeds.first() {
                self.io.events.push_back(Event::Joined { via });
            }
        }
        let mut inbox = self.user_inbox.borrow_mut();
        self.io.events.extend(inbox.drain(..).map(Event::User));
    }
}

impl SimMember for FocaMember {
    type Config = FocaConfig;

    fn config_from(config: &Config, cluster_size: usize) -> FocaConfig {
        FocaConfig::matching(config, cluster_size)
    }

    fn create(name: &str, addr: SocketAddr, config: &FocaConfig, seed: u64) -> Self {
        let id = FocaId {
            name: Name::try_from(name).unwrap_or_else(|_| panic!("name {name} too long")),
            addr,
            bump: 0,
        };
        let inbox = Rc::new(RefCell::new(VecDeque::new()));
        let handler = UserEvents {
            seen: BTreeSet::new(),
            inbox: Rc::clone(&inbox),
        };
        let foca = Foca::with_custom_broadcast(
            id,
            config.foca.clone(),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            handler,
        );
        FocaMember {
            foca,
            io: Io::default(),
            config: config.clone(),
            join: Join {
                backoff: config.join_retry_initial,
                ..Join::default()
            },
            user_inbox: inbox,
            user_clock: 0,
            left: false,
        }
    }

    fn max_datagram(config: &FocaConfig) -> usize {
        config.foca.max_packet_size.get()
    }

    fn capacity() -> usize {
        usize::MAX
    }

    fn join(&mut self, now: Instant, seed: SocketAddr) -> Result<(), JoinError> {
        self.io.now = now;
        if !self.join.seeds.contains(&seed) {
            if self.join.seeds.len() == MAX_SEEDS {
                return Err(JoinError::TooManySeeds);
            }
            self.join.seeds.push(seed);
        }
        self.join.backoff = self.config.join_retry_initial;
        self.join.next = Some(now);
        self.join.reported = false;
        self.io.active = false;
        Ok(())
    }

    fn leave(&mut self, now: Instant) {
        self.io.now = now;
        if !self.left {
            self.left = true;
            self.join.next = None;
            // Only fails on encoding; the member stops right after anyway.
            let _ = self.foca.leave_cluster(&mut self.io);
            self.io.events.push_back(Event::LeaveComplete);
        }
    }

    fn set_tags(&mut self, _now: Instant, _tags: Tags) {
        panic!("foca keeps metadata in its identity: the simulator cannot set foca tags");
    }

    fn send_user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
    ) -> Result<(), UserEventError> {
        self.io.now = now;
        if name.is_empty() || name.len() > USER_EVENT_NAME_MAX {
            return Err(UserEventError::BadName);
        }
        if payload.len() > USER_PAYLOAD_MAX {
            return Err(UserEventError::PayloadTooLarge);
        }
        self.user_clock += 1;
        let event = UserEvent {
            origin: self.foca.identity().name.clone(),
            ltime: self.user_clock,
            name: heapless::String::try_from(name).map_err(|_| UserEventError::BadName)?,
            payload: heapless::Vec::from_slice(payload)
                .map_err(|_| UserEventError::PayloadTooLarge)?,
        };
        self.foca
            .add_broadcast(&UserEvents::encode(&event))
            .map_err(|_| UserEventError::PayloadTooLarge)?;
        self.drain_notifications();
        Ok(())
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        _from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        self.io.now = now;
        let result = self.foca.handle_data(bytes, &mut self.io);
        self.drain_notifications();
        result.map_err(|e| match e {
            foca::Error::DataTooBig => DropReason::Oversized,
            foca::Error::MalformedPacket
            | foca::Error::Decode(_)
            | foca::Error::CustomBroadcast(_) => DropReason::Malformed,
            _ => DropReason::Ignored,
        })
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.io.now = now;
        if self.join.next.is_some_and(|t| t <= now) {
            self.announce_to_seeds();
            self.join.next = Some(now + self.join.backoff);
            self.join.backoff =
                (self.join.backoff + self.join.backoff).min(self.config.join_retry_max);
        }
        while self.io.timers.peek().is_some_and(|p| p.at <= now) {
            let Some(due) = self.io.timers.pop() else {
                break;
            };
            // Errors here are foca's own diagnostics (e.g. a probe cycle cut short); the
            // protocol goes on.
            let _ = self.foca.handle_timer(due.timer, &mut self.io);
        }
        self.drain_notifications();
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let (to, data) = self.io.outbox.pop_front()?;
        let len = data.len().min(buf.len());
        buf[..len].copy_from_slice(&data[..len]);
        Some(Transmit { to, len })
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.io.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.io.timers.peek().map(|p| p.at);
        match (timer, self.join.next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn visit_members(&self, f: &mut dyn FnMut(&str, Status, u32, SocketAddr)) {
        let me = self.foca.identity();
        let status = if self.left {
            Status::Left
        } else {
            Status::Alive
        };
        f(&me.name, status, me.folded(0), me.addr);
        for m in self.foca.iter_membership_state() {
            let status = match m.state() {
                State::Alive => Status::Alive,
                State::Suspect => Status::Suspect,
                State::Down => Status::Failed,
            };
            let id = m.id();
            f(&id.name, status, id.folded(m.incarnation()), id.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_events_round_trip() {
        let event = UserEvent {
            origin: Name::try_from("node-1").unwrap(),
            ltime: 7,
            name: heapless::String::try_from("deploy").unwrap(),
            payload: heapless::Vec::from_slice(b"v2").unwrap(),
        };
        assert_eq!(UserEvents::decode(&UserEvents::encode(&event)), Some(event));
        assert_eq!(UserEvents::decode(&[3, b'a']), None);
    }

    #[test]
    fn matching_settings_follow_rumor() {
        let c = FocaConfig::matching(&Config::lan(), 50);
        assert_eq!(c.foca.probe_period, std::time::Duration::from_secs(1));
        assert_eq!(c.foca.probe_rtt, std::time::Duration::from_millis(500));
        assert_eq!(c.foca.num_indirect_probes.get(), 3);
        assert_eq!(c.foca.max_packet_size.get(), 1400);
        // 4 * ceil(log10(51)) = 8; 4 * log10(50) s = 6.79 s.
        assert_eq!(c.foca.max_transmissions.get(), 8);
        assert_eq!(c.foca.suspect_to_down_after.as_millis(), 6795);
    }
}
