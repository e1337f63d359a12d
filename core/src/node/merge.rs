//! Merging what others say into the member table: the SWIM incarnation rules, refutation,
//! Lifeguard confirmations, and the bounded-table policy.
//!
//! | claim about X   | accepted when                                   | result          |
//! |-----------------|-------------------------------------------------|-----------------|
//! | alive(inc)      | X unknown, or inc > known inc                   | Alive           |
//! | suspect(inc)    | X alive with inc >= known, or suspect at a lower inc | Suspect    |
//! | suspect(inc)    | X suspect at the same inc                       | + confirmation  |
//! | failed(inc)     | X suspect with inc >= known                     | Failed          |
//! | failed(inc)     | X alive with inc >= known                       | Suspect, shortest timeout |
//! | left(inc)       | X not left and inc >= known                     | Left            |
//!
//! A claim about the local node that contradicts it (suspect, failed, left, or alive with
//! other data at an incarnation not below ours) is refuted with a higher incarnation.

use core::net::SocketAddr;

use super::{Node, Phase};
use crate::broadcast::Subject;
use crate::event::Event;
use crate::member::{Pending, Slot, Status};
use crate::suspicion::{Suspicion, fingerprint, min_timeout};
use crate::tags::Tags;
use crate::time::Instant;
use crate::user_event::UserEvent;
use crate::wire::{MAX_COUNTER, Update, WireStatus};

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
                let accuser = self.find(from).map(|i| i as u16);
                self.merge_suspect(now, name, incarnation, fingerprint(from), accuser);
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
            let differs = addr != local.addr || tags != local.tags;
            if inc > local.incarnation || (inc == local.incarnation && differs) {
                if addr != local.addr {
                    self.foreign_claim(addr);
                }
                self.refute(inc);
            }
            return;
        }
        let Some(i) = self.find(name) else {
            self.insert(now, name, inc, addr, tags);
            return;
        };
        let Some(s) = self.table.get_mut(i) else {
            return;
        };
        if inc <= s.incarnation {
            if inc < s.incarnation && s.status == Status::Left {
                // A stale claim that a member that left is alive: tell the sender otherwise.
                self.correct(i);
            }
            return;
        }
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
            self.table.record(i, Pending::JOINED);
        } else if changed {
            self.table.record(i, Pending::UPDATED);
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
        let mut pending = Pending::default();
        pending.record(Pending::JOINED);
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
            self.free_slot(victim);
            self.stats.members_evicted += 1;
        }
        if let Some(i) = self.table.insert(slot) {
            self.broadcast(Subject::Member(i as u16));
        }
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
    /// Only for members that left: a leave is the member's own word and final. A failure is
    /// an opinion that a refutation may be overturning right now (after a partition heals,
    /// re-spreading old failures made hundreds of false ones in the simulator).
    fn correct(&mut self, i: usize) {
        let subject = Subject::Member(i as u16);
        if !self.queue.contains(subject) {
            self.broadcast(subject);
        }
    }

    fn refuse(&mut self, name: crate::name::Name, addr: SocketAddr) {
        self.stats.members_refused += 1;
        let fp = fingerprint(&name);
        if self.refused.iter().any(|&r| r == fp) {
            return;
        }
        if self.refused.is_full() {
            self.refused.pop_front();
        }
        let _ = self.refused.push_back(fp);
        self.push_event(Event::MemberRefused { name, addr });
    }

    /// Someone else claims our name from `addr`. A restarted node refutes its previous
    /// life's record once; a second claim from another address means two live nodes share
    /// the name.
    fn foreign_claim(&mut self, addr: SocketAddr) {
        self.foreign_claims = self.foreign_claims.saturating_add(1);
        if self.foreign_claims >= 2 {
            self.stats.name_conflicts += 1;
            let name = self.local_slot().name.clone();
            self.push_event(Event::NameConflict { name, other: addr });
        }
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
        self.queue.push(Subject::Member(0));
    }

    /// A negative claim (suspect, failed, left) about `name` at `inc`: refuted when it is
    /// about the local node; otherwise the slot of the member it accuses, if tracked.
    fn accused(&mut self, name: &str, inc: u32) -> Option<usize> {
        if name == self.local_slot().name.as_str() {
            if inc >= self.local_slot().incarnation {
                self.refute(inc);
            }
            return None;
        }
        self.find(name)
    }

    fn merge_suspect(
        &mut self,
        now: Instant,
        name: &str,
        inc: u32,
        from: u32,
        accuser: Option<u16>,
    ) {
        if let Some(i) = self.accused(name, inc) {
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
            self.correct(i);
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
        self.table.record(i, Pending::SUSPECTED);
        self.stats.suspicions += 1;
        self.broadcast(Subject::Member(i as u16));
    }

    fn merge_failed(&mut self, now: Instant, name: &str, inc: u32) {
        let Some(i) = self.accused(name, inc) else {
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
        let Some(i) = self.accused(name, inc) else {
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
        self.table.record(i, Pending::LEFT);
        self.broadcast(Subject::Member(i as u16));
    }
}
