//! Merging what others say into the member table: the SWIM incarnation rules, refutation,
//! Lifeguard confirmations, and the bounded-table policy.
//!
//! | claim about X   | accepted when                                   | result          |
//! |-----------------|-------------------------------------------------|-----------------|
//! | alive(inc)      | X unknown, or inc > known inc (and X's known address while X is live) | Alive |
//! | alive(inc)      | X live, inc > known inc, another address        | name conflict   |
//! | suspect(inc)    | X alive with inc >= known, or suspect at a lower inc | Suspect    |
//! | suspect(inc)    | X suspect at the same inc                       | + confirmation  |
//! | failed(inc)     | X suspect with inc >= known                     | Failed          |
//! | failed(inc)     | X alive with inc >= known                       | Suspect, shortest timeout |
//! | left(inc)       | X not left and inc >= known                     | Left            |
//!
//! A claim more than `INCARNATION_WINDOW` above the known incarnation (an evicted member's
//! tombstone included) is ignored. A claim about the local node that contradicts it
//! (suspect, failed, left, or alive with other data at an incarnation not below ours) is
//! refuted with a higher incarnation, except an alive from another address after the first
//! (a name conflict). See `docs/PROTOCOL.md`.

use core::net::SocketAddr;

use super::{Node, Phase};
use crate::broadcast::Subject;
use crate::event::Event;
use crate::member::{Pending, Slot, Status, Transition};
use crate::name::{fingerprint, fnv1a};
use crate::suspicion::{Suspicion, min_timeout};
use crate::tags::Tags;
use crate::time::Instant;
use crate::user_event::UserEvent;
use crate::wire::{INCARNATION_WINDOW, MAX_COUNTER, Update, WireStatus};

impl<const M: usize, const U: usize> Node<M, U> {
    /// Applies one validated update. In a push-pull state, a failure is only taken as a
    /// suspicion, as memberlist does: the member gets a chance to refute.
    pub(super) fn merge(&mut self, now: Instant, update: Update<'_>) {
        match update {
            Update::Alive {
                name,
                incarnation,
                addr,
                tags,
            } => self.merge_alive(now, name, incarnation, addr.into(), tags),
            Update::Suspect {
                name,
                incarnation,
                from,
            } => {
                if from == name {
                    // Anonymous (see `update_for`): starts a suspicion, confirms nothing.
                    self.merge_suspect(now, name, incarnation, 0, None);
                } else {
                    let accuser = self.find(from).map(|i| i as u16);
                    self.merge_suspect(now, name, incarnation, fingerprint(from), accuser);
                }
            }
            Update::Failed { name, incarnation } => self.merge_failed(now, name, incarnation),
            Update::Left { name, incarnation } => self.merge_left(now, name, incarnation),
            Update::User {
                origin,
                ltime,
                name,
                payload,
            } => {
                let (Ok(origin), Ok(name), Ok(payload)) = (
                    crate::name::name(origin),
                    heapless::String::try_from(name),
                    heapless::Vec::from_slice(payload),
                ) else {
                    return;
                };
                if self.user.too_far(ltime) {
                    self.stats.ltimes_too_far += 1;
                    return;
                }
                self.accept_user_event(UserEvent {
                    origin,
                    ltime,
                    name,
                    payload,
                });
            }
            Update::State {
                name,
                incarnation,
                addr,
                tags,
                status,
            } => match status {
                WireStatus::Alive => self.merge_alive(now, name, incarnation, addr.into(), tags),
                WireStatus::Suspect | WireStatus::Failed => {
                    // An anonymous accusation: confirms nothing, but starts a suspicion.
                    self.merge_suspect(now, name, incarnation, 0, None);
                }
                WireStatus::Left => self.merge_left(now, name, incarnation),
            },
        }
    }

    fn merge_alive(&mut self, now: Instant, name: &str, inc: u32, addr: SocketAddr, tags: &[u8]) {
        let Ok(tags) = Tags::from_encoded(tags) else {
            return;
        };
        if name == self.local_slot().name.as_str() {
            let local = self.local_slot();
            let (known, differs) = (local.incarnation, addr != local.addr || tags != local.tags);
            let at = local.addr;
            if (inc > known || (inc == known && differs)) && !self.too_far(known, inc) {
                if addr == at || self.first_foreign_claim() {
                    self.refute(inc);
                } else {
                    // Another live node keeps claiming our name: report it, do not race.
                    let name = self.local_slot().name.clone();
                    self.name_conflict(name, addr);
                }
            }
            return;
        }
        let Some(i) = self.find(name) else {
            self.insert(now, name, inc, addr, tags);
            return;
        };
        let Some(s) = self.table.get(i) else {
            return;
        };
        let (known, status) = (s.incarnation, s.status);
        if inc <= known {
            if inc < known && status == Status::Left {
                // A stale claim that a member that left is alive: tell the sender otherwise.
                self.regossip(i);
            }
            return;
        }
        if status.is_live() && s.addr != addr {
            // A live member keeps its address (memberlist does the same): the claim is a
            // second process with its name, or the member restarted elsewhere and takes
            // its name back once this record has failed or left.
            let name = s.name.clone();
            self.name_conflict(name, addr);
            return;
        }
        if self.too_far(known, inc) {
            return;
        }
        let Some(s) = self.table.get_mut(i) else {
            return;
        };
        let was_live = s.status.is_live();
        let changed = s.addr != addr || s.tags != tags;
        s.incarnation = inc;
        s.addr = addr;
        s.tags = tags;
        if s.status != Status::Alive {
            s.since = now;
        }
        s.suspicion = None;
        self.table.set_status(i, Status::Alive);
        if !was_live {
            self.table.record(i, Transition::Joined);
        } else if changed {
            self.table.record(i, Transition::Updated);
        }
        self.broadcast(Subject::Member(i as u16));
    }

    /// Tracks a newcomer: a free slot, else the slot of the oldest failed or left member
    /// that may make room (see [`Self::evictable`]), else the newcomer is refused (live
    /// members already tracked are never dropped).
    fn insert(&mut self, now: Instant, name: &str, inc: u32, addr: SocketAddr, tags: Tags) {
        let Ok(name) = crate::name::name(name) else {
            return;
        };
        let fp = fingerprint(&name);
        if let Some(evicted_at) = self.tombstone(now, fp) {
            if inc <= evicted_at {
                self.stats.evicted_claims_stale += 1;
                return;
            }
            // The tombstone is what this node knows of the member: a comeback moves its
            // incarnation at most the window, like any claim about a known member.
            if self.too_far(evicted_at, inc) {
                return;
            }
        }
        let mut pending = Pending::default();
        pending.record(Transition::Joined);
        let slot = Slot {
            name,
            addr,
            incarnation: inc,
            status: Status::Alive,
            tags,
            since: now,
            suspicion: None,
            pending,
        };
        if self.table.is_full() {
            // The oldest failed or left member makes room, if one may.
            let grace = self.eviction_grace();
            let victim = self
                .table
                .timed()
                .iter()
                .map(|&t| usize::from(t))
                .filter_map(|t| Some((t, self.table.get(t)?)))
                .filter(|(_, s)| Self::evictable(s, now, grace))
                .min_by_key(|(_, s)| s.since)
                .map(|(t, _)| t);
            let Some(victim) = victim else {
                self.refuse(slot.name, addr);
                return;
            };
            if let Some(gone) = self.table.get(victim) {
                let tombstone = Tombstone {
                    name: fingerprint(&gone.name),
                    incarnation: gone.incarnation,
                    until: gone.since + self.config.reap_timeout,
                };
                if self.evicted.is_full() {
                    self.evicted.pop_front();
                }
                let _ = self.evicted.push_back(tombstone);
            }
            self.free_slot(victim);
            self.stats.members_evicted += 1;
        }
        if let Some(i) = self.table.insert(slot) {
            // A comeback at a higher incarnation, now tracked: its tombstone has served (a
            // refused one keeps it, so stale news stays stale).
            if let Some(k) = self.evicted.iter().position(|t| t.name == fp) {
                forget_at(&mut self.evicted, k);
            }
            self.broadcast(Subject::Member(i as u16));
        }
    }

    /// The incarnation the member with name fingerprint `fp` was evicted at, while its
    /// tombstone lasts (until its record would have been reaped).
    pub(super) fn tombstone(&self, now: Instant, fp: u32) -> Option<u32> {
        self.evicted
            .iter()
            .find(|t| t.name == fp && now < t.until)
            .map(|t| t.incarnation)
    }

    /// Whether a full table may give slot `s` to a newcomer at `now`: the member failed or
    /// left, the application has heard of it (nothing pending: member events are never
    /// lost), and it has been so for `grace`, the time a live member gets to refute a claim
    /// about it (a forged `Left` cannot make room for a forged newcomer).
    fn evictable(s: &Slot, now: Instant, grace: crate::time::Duration) -> bool {
        !s.status.is_live() && s.pending == Pending::NONE && s.since + grace <= now
    }

    /// How long a failed or left member keeps its slot before a newcomer may take it: the
    /// shortest suspicion timeout, as a suspected member gets to refute.
    fn eviction_grace(&self) -> crate::time::Duration {
        let cfg = &self.config;
        min_timeout(cfg.suspicion_mult, self.live_count(), cfg.probe_interval)
    }

    /// Gossips what we know of slot `i` again, for a peer whose claim showed it missed it.
    /// Only when the news is no longer queued, so stale claims cannot reset it forever.
    ///
    /// Only for members that left (a leave is the member's own word and final) and for the
    /// local node's own state. A failure is an opinion that a refutation may be overturning
    /// right now (after a partition heals, re-spreading old failures made hundreds of false
    /// ones in the simulator).
    fn regossip(&mut self, i: usize) {
        let subject = Subject::Member(i as u16);
        if !self.queue.contains(subject) {
            self.broadcast(subject);
        }
    }

    fn refuse(&mut self, name: crate::name::Name, addr: SocketAddr) {
        self.stats.members_refused += 1;
        if first_report(&mut self.refused, fingerprint(&name)) {
            self.push_event(Event::MemberRefused { name, addr });
        }
    }

    /// Someone else claims our name from another address. True the first time: a
    /// restarted node refutes its previous life's record once; after that, claims from
    /// another address mean two live nodes share the name.
    fn first_foreign_claim(&mut self) -> bool {
        self.foreign_claims = self.foreign_claims.saturating_add(1);
        self.foreign_claims == 1
    }

    /// `name` is claimed from `other` while this node holds it live elsewhere: reported
    /// once per incident (a name and the other address), as long as it is remembered.
    fn name_conflict(&mut self, name: crate::name::Name, other: SocketAddr) {
        let fp = fnv1a(
            fingerprint(&name),
            &crate::wire::WireAddr::from(other).bytes(),
        );
        if first_report(&mut self.conflicts, fp) {
            self.stats.name_conflicts += 1;
            self.push_event(Event::NameConflict { name, other });
        }
    }

    /// True when `incarnation` is more than [`INCARNATION_WINDOW`] above `known`: the claim
    /// is ignored and counted (docs/PROTOCOL.md, counters).
    fn too_far(&mut self, known: u32, incarnation: u32) -> bool {
        let far = incarnation.saturating_sub(known) > INCARNATION_WINDOW;
        if far {
            self.stats.incarnations_too_far += 1;
        }
        far
    }

    /// Raises our incarnation above `inc` and gossips that we are alive (or, while leaving,
    /// does nothing: the leave stands).
    pub(super) fn refute(&mut self, inc: u32) {
        if self.phase != Phase::Running {
            return;
        }
        self.stats.refutations += 1;
        let max = self.config.awareness_max.saturating_sub(1);
        self.awareness = self.awareness.saturating_add(1).min(max);
        let local = self.local_mut();
        local.incarnation = local
            .incarnation
            .max(inc)
            .saturating_add(1)
            .min(MAX_COUNTER);
        self.broadcast(Subject::Member(0));
    }

    /// A negative claim (suspect, failed, left) about `name` at `inc`: refuted when it is
    /// about the local node; otherwise the slot of the member it accuses, if tracked.
    fn refute_or_find_accused(&mut self, name: &str, inc: u32) -> Option<usize> {
        if name == self.local_slot().name.as_str() {
            self.refute_accusation(inc);
            return None;
        }
        let i = self.find(name)?;
        let known = self.table.get(i)?.incarnation;
        (!self.too_far(known, inc)).then_some(i)
    }

    /// A claim that this node is suspect, failed or left at `inc`: refuted when not below
    /// our incarnation and not absurdly above it. Below it, the sender missed our last
    /// refutation (which others may not have applied yet, e.g. while our previous life's
    /// record was still alive at another address): it is gossiped again.
    pub(super) fn refute_accusation(&mut self, inc: u32) {
        let known = self.local_slot().incarnation;
        if inc >= known {
            if !self.too_far(known, inc) {
                self.refute(inc);
            }
        } else if self.phase == Phase::Running {
            self.regossip(0);
        }
    }

    fn merge_suspect(
        &mut self,
        now: Instant,
        name: &str,
        inc: u32,
        from: u32,
        accuser: Option<u16>,
    ) {
        if let Some(i) = self.refute_or_find_accused(name, inc) {
            self.suspect(now, i, inc, from, accuser);
        }
    }

    /// Suspects slot `i` at `inc` on the word of `from` (a name fingerprint; 0 is
    /// anonymous), or counts a confirmation of an existing suspicion.
    pub(super) fn suspect(
        &mut self,
        now: Instant,
        i: usize,
        inc: u32,
        from: u32,
        accuser: Option<u16>,
    ) {
        self.raise_suspicion(now, i, inc, from, accuser, false);
    }

    /// [`Self::suspect`]; with `settled`, the suspicion starts at its shortest timeout, as if
    /// every confirmation had arrived.
    fn raise_suspicion(
        &mut self,
        now: Instant,
        i: usize,
        inc: u32,
        from: u32,
        accuser: Option<u16>,
        settled: bool,
    ) {
        let n = self.live_count();
        let cfg = &self.config;
        let min = min_timeout(cfg.suspicion_mult, n, cfg.probe_interval);
        let k = cfg.suspicion_mult.saturating_sub(2);
        let k = if settled || n.saturating_sub(2) < usize::from(k) {
            0
        } else {
            k
        };
        let max_mult = cfg.suspicion_max_timeout_mult;
        let Some(s) = self.table.get_mut(i) else {
            return;
        };
        if s.status == Status::Left && inc <= s.incarnation {
            // The accuser missed that the member left: tell it again.
            self.regossip(i);
            return;
        }
        if inc < s.incarnation || !s.status.is_live() {
            return;
        }
        if s.status == Status::Suspect && inc == s.incarnation {
            if let Some(sus) = s.suspicion.as_mut()
                && from != 0
                && sus.confirm(from)
            {
                sus.set_accuser(accuser);
                self.broadcast(Subject::Member(i as u16));
            }
            return;
        }
        let mut sus = Suspicion::new(now, min, max_mult, k, from);
        sus.set_accuser(accuser);
        s.incarnation = inc;
        s.since = now;
        s.suspicion = Some(sus);
        self.table.set_status(i, Status::Suspect);
        self.table.record(i, Transition::Suspected);
        self.stats.suspicions += 1;
        self.broadcast(Subject::Member(i as u16));
        if from != self.local_fingerprint() {
            self.verify_suspicion(i, settled);
        }
    }

    fn merge_failed(&mut self, now: Instant, name: &str, inc: u32) {
        let Some(i) = self.refute_or_find_accused(name, inc) else {
            return;
        };
        let Some(s) = self.table.get(i) else {
            return;
        };
        if inc < s.incarnation || !s.status.is_live() {
            return;
        }
        if s.status == Status::Suspect {
            self.set_failed(now, i, inc);
        } else {
            // News of a failure we never suspected (typically from across a healed
            // partition): suspect it at the shortest timeout instead, so a live member has
            // time to refute, and a dead one is declared soon enough.
            self.raise_suspicion(now, i, inc, 0, None, true);
        }
    }

    pub(super) fn merge_left(&mut self, now: Instant, name: &str, inc: u32) {
        let Some(i) = self.refute_or_find_accused(name, inc) else {
            return;
        };
        let Some(s) = self.table.get_mut(i) else {
            return;
        };
        if inc < s.incarnation || s.status == Status::Left {
            return;
        }
        s.incarnation = inc;
        s.since = now;
        s.suspicion = None;
        self.table.set_status(i, Status::Left);
        self.table.record(i, Transition::Left);
        self.broadcast(Subject::Member(i as u16));
    }

    /// Marks slot `i` failed at incarnation `inc` and spreads the news.
    pub(super) fn set_failed(&mut self, now: Instant, i: usize, inc: u32) {
        if let Some(s) = self.table.get_mut(i) {
            self.stats.failures += 1;
            s.incarnation = inc;
            s.since = now;
            s.suspicion = None;
            self.table.set_status(i, Status::Failed);
            self.table.record(i, Transition::Failed);
            self.broadcast(Subject::Member(i as u16));
        }
    }
}

/// True the first time `fp` is offered while remembered; remembers it (forgetting the
/// oldest when full).
fn first_report<const N: usize>(seen: &mut heapless::Deque<u32, N>, fp: u32) -> bool {
    if seen.iter().any(|&r| r == fp) {
        return false;
    }
    if seen.is_full() {
        seen.pop_front();
    }
    let _ = seen.push_back(fp);
    true
}

/// A member evicted to make room, remembered until it would have been reaped: news of it
/// at its incarnation or lower is stale (the simulator's invariant: an evicted member comes
/// back only at a higher incarnation, as a reaped one may come back at any).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tombstone {
    /// The member's name fingerprint.
    name: u32,
    /// The incarnation it was evicted at.
    incarnation: u32,
    /// When its record would have been reaped.
    until: Instant,
}

/// Removes entry `k` of `ring`, keeping the others in order.
fn forget_at<T, const N: usize>(ring: &mut heapless::Deque<T, N>, k: usize) {
    for _ in 0..k {
        if let Some(x) = ring.pop_front() {
            let _ = ring.push_back(x);
        }
    }
    ring.pop_front();
    for _ in k..ring.len() {
        if let Some(x) = ring.pop_front() {
            let _ = ring.push_back(x);
        }
    }
}
