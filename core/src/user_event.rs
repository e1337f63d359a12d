//! User events: small named payloads spread to every member, ordered by a Lamport clock and
//! delivered once per node.

use crate::name::Name;
use crate::wire::{LTIME_WINDOW, MAX_COUNTER};

/// Longest user event name, in bytes.
pub const USER_EVENT_NAME_MAX: usize = 32;
/// Largest user event payload, in bytes.
pub const USER_PAYLOAD_MAX: usize = 64;
/// User events held for retransmission and delivery at once; when full, the oldest is
/// dropped (and counted).
pub(crate) const USER_EVENT_BUFFER: usize = 8;
/// Recently seen events remembered for de-duplication.
const SEEN: usize = 64;
/// An event whose Lamport time is this far behind the newest one seen is too old to judge,
/// and is dropped as a probable duplicate (Serf does the same with its event buffer).
const SEEN_WINDOW: u32 = 256;

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
        f.write_str(match self {
            UserEventError::BadName => "event name must be 1-32 bytes",
            UserEventError::PayloadTooLarge => "event payload exceeds 64 bytes",
            UserEventError::NotRunning => "the node has left the cluster",
        })
    }
}

impl core::error::Error for UserEventError {}

/// A buffered event: waiting to be delivered locally and/or gossiped.
#[derive(Clone, Debug)]
pub(crate) struct Buffered {
    pub(crate) event: UserEvent,
    pub(crate) delivered: bool,
}

/// FNV-1a, to remember events compactly.
fn fingerprint(e: &UserEvent) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let parts: [&[u8]; 3] = [e.origin.as_bytes(), e.name.as_bytes(), &e.payload];
    for part in parts {
        for &b in part {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0193);
    }
    h
}

/// The Lamport clock, the seen set and the buffer.
#[derive(Debug)]
pub(crate) struct UserEvents {
    /// Next Lamport time to stamp: above every time seen, or [`MAX_COUNTER`] once there
    /// (it never goes past, so every clock this node sends is valid on the wire).
    pub(crate) clock: u32,
    /// Events older than this were sent before we joined and are not replayed.
    floor: u32,
    seen: heapless::Deque<(u32, u32), SEEN>,
    pub(crate) buffer: heapless::Vec<Buffered, USER_EVENT_BUFFER>,
}

/// What [`UserEvents::accept`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// New: buffered at this index.
    New(usize),
    /// Already seen, too old, or from before the join.
    Duplicate,
    /// New, but the buffer evicted an undelivered event for it.
    NewEvicting(usize),
}

impl UserEvents {
    pub(crate) const fn new() -> Self {
        UserEvents {
            clock: 0,
            floor: 0,
            seen: heapless::Deque::new(),
            buffer: heapless::Vec::new(),
        }
    }

    /// Forgets everything (a node reconfigured in place).
    pub(crate) fn clear(&mut self) {
        self.clock = 0;
        self.floor = 0;
        self.seen.clear();
        self.buffer.clear();
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

    /// Takes in an event (local or remote); `slot_freed` tells the caller which buffer index
    /// was recycled so it can drop its broadcast.
    pub(crate) fn accept(&mut self, event: UserEvent) -> Accepted {
        let ltime = event.ltime;
        self.witness(ltime);
        let newest = self.clock.saturating_sub(1);
        if ltime < self.floor || ltime.saturating_add(SEEN_WINDOW) < newest {
            return Accepted::Duplicate;
        }
        let fp = fingerprint(&event);
        if self.seen.iter().any(|&s| s == (ltime, fp)) {
            return Accepted::Duplicate;
        }
        if self.seen.is_full() {
            self.seen.pop_front();
        }
        // Cannot fail: one slot was just made free.
        let _ = self.seen.push_back((ltime, fp));
        let entry = Buffered {
            event,
            delivered: false,
        };
        if self.buffer.is_full() {
            // Prefer recycling an entry already delivered; otherwise the oldest.
            let victim = self.buffer.iter().position(|b| b.delivered).unwrap_or(0);
            let lost = !self.buffer[victim].delivered;
            self.buffer[victim] = entry;
            return if lost {
                Accepted::NewEvicting(victim)
            } else {
                Accepted::New(victim)
            };
        }
        let idx = self.buffer.len();
        // Cannot fail: not full.
        let _ = self.buffer.push(entry);
        Accepted::New(idx)
    }

    /// Stamps a local event with the next Lamport time (at the cap, the cap again).
    pub(crate) fn stamp(&mut self) -> u32 {
        let t = self.clock;
        self.clock = self.clock.saturating_add(1).min(MAX_COUNTER);
        t
    }

    /// Next undelivered event, marked delivered.
    pub(crate) fn next_undelivered(&mut self) -> Option<UserEvent> {
        let b = self.buffer.iter_mut().find(|b| !b.delivered)?;
        b.delivered = true;
        Some(b.event.clone())
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

    #[test]
    fn duplicates_and_history_are_dropped_once_delivered() {
        let mut u = UserEvents::new();
        assert_eq!(u.accept(ev("a", 3, b"x")), Accepted::New(0));
        assert_eq!(u.accept(ev("a", 3, b"x")), Accepted::Duplicate);
        assert_eq!(u.accept(ev("b", 3, b"x")), Accepted::New(1));
        assert_eq!(u.clock, 4);
        assert!(u.next_undelivered().is_some());
        assert!(u.next_undelivered().is_some());
        assert!(u.next_undelivered().is_none());
        u.set_floor(10);
        assert_eq!(u.accept(ev("c", 9, b"")), Accepted::Duplicate);
        assert_eq!(u.stamp(), 10);
    }

    #[test]
    fn a_full_buffer_recycles_delivered_events_first() {
        let mut u = UserEvents::new();
        for i in 0..USER_EVENT_BUFFER as u32 {
            u.accept(ev("a", i, b""));
        }
        u.next_undelivered();
        assert_eq!(u.accept(ev("a", 100, b"")), Accepted::New(0));
        assert_eq!(u.accept(ev("a", 101, b"")), Accepted::NewEvicting(0));
    }
}
