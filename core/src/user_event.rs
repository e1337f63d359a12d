//! User events: small named payloads spread to every member, ordered by a Lamport clock and
//! delivered once per node.

use crate::name::{FNV_OFFSET, Name, fnv1a};
use crate::wire::{LTIME_WINDOW, MAX_COUNTER};

/// Longest user event name, in bytes.
pub const USER_EVENT_NAME_MAX: usize = 32;
/// Largest user event payload, in bytes.
pub const USER_PAYLOAD_MAX: usize = 64;
/// User events held for retransmission, push-pull replay and local delivery at once; when
/// full, the oldest (first buffered) is evicted, and counted if it was not delivered locally
/// or was still being gossiped.
pub(crate) const USER_EVENT_BUFFER: usize = 8;
/// Events remembered for de-duplication: the ones with the highest Lamport times. Anything
/// at or below the highest time forgotten is too old to judge and is dropped (counted).
const SEEN: usize = 64;

/// A user event as delivered to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UserEvent {
    /// The member that sent it.
    pub origin: Name,
    /// Its Lamport time.
    pub ltime: u32,
    /// Its name, e.g. `deploy`.
    pub name: heapless::String<USER_EVENT_NAME_MAX>,
    /// Its payload.
    pub payload: heapless::Vec<u8, USER_PAYLOAD_MAX>,
}

/// Why [`Node::send_user_event`](crate::Node::send_user_event) refused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum UserEventError {
    /// The name is empty or longer than [`USER_EVENT_NAME_MAX`].
    BadName,
    /// The payload is longer than [`USER_PAYLOAD_MAX`].
    PayloadTooLarge,
    /// The node has left the cluster.
    NotRunning,
}

impl core::fmt::Display for UserEventError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UserEventError::BadName => {
                write!(f, "event name must be 1-{USER_EVENT_NAME_MAX} bytes")
            }
            UserEventError::PayloadTooLarge => {
                write!(f, "event payload exceeds {USER_PAYLOAD_MAX} bytes")
            }
            UserEventError::NotRunning => f.write_str("the node has left the cluster"),
        }
    }
}

impl core::error::Error for UserEventError {}

/// A buffered event: waiting to be delivered locally and/or gossiped.
#[derive(Clone, Debug)]
pub(crate) struct Buffered {
    pub(crate) event: UserEvent,
    pub(crate) delivered: bool,
}

/// The event's fingerprint, to remember it compactly: FNV-1a of origin, name and payload,
/// each followed by a 0xff separator (a byte no UTF-8 name contains).
fn fingerprint(e: &UserEvent) -> u32 {
    let parts: [&[u8]; 3] = [e.origin.as_bytes(), e.name.as_bytes(), &e.payload];
    parts
        .iter()
        .fold(FNV_OFFSET, |h, part| fnv1a(fnv1a(h, part), &[0xff]))
}

/// The Lamport clock, the seen set and the buffer.
///
/// One window rules de-duplication and replay: the seen set keeps the [`SEEN`] events with
/// the highest Lamport times, and `forgotten` is one above the highest time it ever dropped.
/// Every event accepted at or above `forgotten` is still in the seen set, so an event is
/// delivered at most once: below `forgotten` nothing is accepted (it might be one forgotten)
/// and nothing is replayed by push-pull (receivers could not judge it either).
#[derive(Debug)]
pub(crate) struct UserEvents {
    /// Next Lamport time to stamp: above every time seen, or [`MAX_COUNTER`] once there
    /// (it never goes past, so every clock this node sends is valid on the wire).
    pub(crate) clock: u32,
    /// Events older than this were sent before we joined and are not replayed.
    floor: u32,
    /// Events older than this are too old to judge: the seen set forgot one at `forgotten - 1`.
    forgotten: u32,
    /// `(ltime, fingerprint)` of the events accepted with the highest times, in no order.
    seen: heapless::Vec<(u32, u32), SEEN>,
    buffer: heapless::Vec<Buffered, USER_EVENT_BUFFER>,
    /// Index of the oldest buffered event, the next one evicted once the buffer is full
    /// (always 0 before): the buffer is a ring in arrival order.
    oldest: usize,
}

/// What [`UserEvents::accept`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// New: buffered at `slot`, in place of the oldest event if the buffer was full.
    New {
        /// Buffer index of the event.
        slot: usize,
        /// The event evicted to make room, if any: whether it had been delivered locally.
        evicted: Option<Evicted>,
    },
    /// Already seen, or from before the join.
    Duplicate,
    /// Older than anything the seen set can still judge: a replay of an event delivered
    /// already, or an event lost (never delivered here).
    Stale,
}

/// The oldest buffered event, evicted for a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Whether the application had polled it.
    pub(crate) delivered: bool,
}

impl UserEvents {
    pub(crate) const fn new() -> Self {
        UserEvents {
            clock: 0,
            floor: 0,
            forgotten: 0,
            seen: heapless::Vec::new(),
            buffer: heapless::Vec::new(),
            oldest: 0,
        }
    }

    /// Forgets everything (a node reconfigured in place).
    pub(crate) fn clear(&mut self) {
        self.clock = 0;
        self.floor = 0;
        self.forgotten = 0;
        self.seen.clear();
        self.buffer.clear();
        self.oldest = 0;
    }

    /// Witnesses a remote clock value (Lamport receive rule), stopping at [`MAX_COUNTER`].
    pub(crate) fn witness(&mut self, ltime: u32) {
        if ltime >= self.clock {
            self.clock = ltime.saturating_add(1).min(MAX_COUNTER);
        }
    }

    /// True when `ltime` is more than [`LTIME_WINDOW`] ahead of the clock: a running node
    /// does not take it in (see `docs/PROTOCOL.md`, counters).
    pub(crate) fn too_far(&self, ltime: u32) -> bool {
        ltime.saturating_sub(self.clock) > LTIME_WINDOW
    }

    /// Catches up with a peer's clock (the next time it would stamp).
    pub(crate) fn catch_up(&mut self, clock: u32) {
        self.clock = self.clock.max(clock);
    }

    /// After joining: events stamped before the seed's `clock` are history, not news.
    pub(crate) fn set_floor(&mut self, clock: u32) {
        self.floor = self.floor.max(clock);
        self.catch_up(clock);
    }

    /// Takes in an event (local or remote): new ones are remembered and buffered.
    pub(crate) fn accept(&mut self, event: UserEvent) -> Accepted {
        let ltime = event.ltime;
        self.witness(ltime);
        if ltime < self.floor {
            return Accepted::Duplicate;
        }
        if ltime < self.forgotten {
            return Accepted::Stale;
        }
        let fp = fingerprint(&event);
        if self.seen.contains(&(ltime, fp)) {
            return Accepted::Duplicate;
        }
        self.remember(ltime, fp);
        let (slot, evicted) = self.buffer(event);
        Accepted::New { slot, evicted }
    }

    /// Adds a new event to the seen set; when full, the one with the lowest time (maybe this
    /// one) is forgotten, and with it every time up to its own.
    fn remember(&mut self, ltime: u32, fp: u32) {
        if self.seen.is_full() {
            let lowest = self
                .seen
                .iter()
                .enumerate()
                .min_by_key(|&(_, &(t, _))| t)
                .map(|(k, &(t, _))| (k, t));
            let Some((k, t)) = lowest else {
                return;
            };
            if ltime <= t {
                self.forgotten = self.forgotten.max(ltime.saturating_add(1));
                return;
            }
            self.seen.swap_remove(k);
            self.forgotten = self.forgotten.max(t.saturating_add(1));
        }
        // Cannot fail: not full.
        let _ = self.seen.push((ltime, fp));
    }

    /// Buffers a new event, in place of the oldest one when full; returns its index and
    /// what was evicted.
    fn buffer(&mut self, event: UserEvent) -> (usize, Option<Evicted>) {
        let entry = Buffered {
            event,
            delivered: false,
        };
        let victim = self.oldest;
        match self.buffer.push(entry) {
            Ok(()) => (self.buffer.len() - 1, None),
            Err(entry) => {
                self.oldest = (victim + 1) % USER_EVENT_BUFFER;
                let Some(slot) = self.buffer.get_mut(victim) else {
                    return (victim, None);
                };
                let old = core::mem::replace(slot, entry);
                let evicted = Evicted {
                    delivered: old.delivered,
                };
                (victim, Some(evicted))
            }
        }
    }

    /// Stamps a local event with the next Lamport time (at the cap, the cap again).
    pub(crate) fn stamp(&mut self) -> u32 {
        let t = self.clock;
        self.clock = self.clock.saturating_add(1).min(MAX_COUNTER);
        t
    }

    /// Buffer indexes, oldest event first.
    fn by_age(&self) -> impl Iterator<Item = usize> + '_ {
        let len = self.buffer.len();
        (0..len).map(move |k| (self.oldest + k) % len)
    }

    /// Next undelivered event (oldest first), marked delivered.
    pub(crate) fn next_undelivered(&mut self) -> Option<UserEvent> {
        let i = self
            .by_age()
            .find(|&i| self.buffer.get(i).is_some_and(|b| !b.delivered))?;
        let b = self.buffer.get_mut(i)?;
        b.delivered = true;
        Some(b.event.clone())
    }

    /// The event buffered at index `i`, to gossip.
    pub(crate) fn get(&self, i: usize) -> Option<&UserEvent> {
        self.buffer.get(i).map(|b| &b.event)
    }

    /// How many events are buffered.
    pub(crate) fn len(&self) -> usize {
        self.buffer.len()
    }

    /// The `k`-th oldest buffered event, for push-pull replay; `None` when it is too old
    /// for the seen set to judge (the receiver could not either).
    pub(crate) fn replay(&self, k: usize) -> Option<&UserEvent> {
        let i = self.by_age().nth(k)?;
        self.get(i).filter(|e| e.ltime >= self.forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(origin: &str, ltime: u32, payload: &[u8]) -> UserEvent {
        UserEvent {
            origin: crate::name::name(origin).unwrap(),
            ltime,
            name: heapless::String::try_from("deploy").unwrap(),
            payload: heapless::Vec::from_slice(payload).unwrap(),
        }
    }

    fn new_at(slot: usize) -> Accepted {
        Accepted::New {
            slot,
            evicted: None,
        }
    }

    #[test]
    fn duplicates_and_history_are_dropped_once_delivered() {
        let mut u = UserEvents::new();
        assert_eq!(u.accept(ev("a", 3, b"x")), new_at(0));
        assert_eq!(u.accept(ev("a", 3, b"x")), Accepted::Duplicate);
        assert_eq!(u.accept(ev("b", 3, b"x")), new_at(1));
        assert_eq!(u.clock, 4);
        assert!(u.next_undelivered().is_some());
        assert!(u.next_undelivered().is_some());
        assert!(u.next_undelivered().is_none());
        u.set_floor(10);
        assert_eq!(u.accept(ev("c", 9, b"")), Accepted::Duplicate);
        assert_eq!(u.stamp(), 10);
    }

    #[test]
    fn a_full_buffer_evicts_the_oldest_event_delivered_or_not() {
        let mut u = UserEvents::new();
        for i in 0..USER_EVENT_BUFFER as u32 {
            assert_eq!(u.accept(ev("a", i, b"")), new_at(i as usize));
        }
        // Slot 1 delivered, slot 0 not: age decides, not delivery.
        u.next_undelivered();
        let evicting = |slot, delivered| Accepted::New {
            slot,
            evicted: Some(Evicted { delivered }),
        };
        assert_eq!(u.accept(ev("a", 100, b"")), evicting(0, true));
        assert_eq!(u.accept(ev("a", 101, b"")), evicting(1, false));
        // Delivery and replay go oldest first: 2..=7, then 100, 101.
        let times: std::vec::Vec<u32> = (0..u.len())
            .filter_map(|k| u.replay(k).map(|e| e.ltime))
            .collect();
        assert_eq!(times, [2, 3, 4, 5, 6, 7, 100, 101]);
        assert_eq!(u.next_undelivered().map(|e| e.ltime), Some(2));
        // A full turn of the ring comes back to slot 0.
        for t in 200..206 {
            u.accept(ev("a", t, b""));
        }
        assert_eq!(u.accept(ev("a", 300, b"")), evicting(0, false));
    }

    #[test]
    fn the_window_keeps_the_highest_times_and_judges_nothing_below() {
        let mut u = UserEvents::new();
        for t in 10..10 + SEEN as u32 {
            u.accept(ev("a", t, b""));
        }
        let is_new = |a| matches!(a, Accepted::New { .. });
        // Full, nothing forgotten yet: a new low event is judged (and forgotten at once).
        assert!(is_new(u.accept(ev("b", 5, b""))));
        assert_eq!(u.accept(ev("b", 5, b"")), Accepted::Stale);
        assert!(is_new(u.accept(ev("b", 6, b""))));
        // A new high one forgets the lowest remembered (10): 10 and below are stale now.
        assert!(is_new(u.accept(ev("b", 500, b""))));
        assert_eq!(u.accept(ev("a", 10, b"")), Accepted::Stale);
        assert_eq!(u.accept(ev("a", 11, b"")), Accepted::Duplicate);
        assert_eq!(u.accept(ev("c", 10, b"")), Accepted::Stale);
        // Everything accepted at 11 or later is remembered: another event at 11 is judged.
        assert!(is_new(u.accept(ev("c", 11, b""))));
    }

    #[test]
    fn events_the_window_cannot_judge_are_not_replayed() {
        let mut u = UserEvents::new();
        for t in 100..100 + SEEN as u32 {
            u.accept(ev("a", t, b""));
        }
        // Buffered (it is new) but forgotten at once: delivered here, never replayed.
        u.accept(ev("b", 50, b""));
        let replayed: std::vec::Vec<u32> = (0..u.len())
            .filter_map(|k| u.replay(k).map(|e| e.ltime))
            .collect();
        assert_eq!(replayed, [157, 158, 159, 160, 161, 162, 163]);
        let delivered: std::vec::Vec<u32> =
            core::iter::from_fn(|| u.next_undelivered().map(|e| e.ltime)).collect();
        assert_eq!(delivered, [157, 158, 159, 160, 161, 162, 163, 50]);
    }
}
