//! What a node knows about each member, and the read-only view it gives out.

use core::net::SocketAddr;

use crate::name::Name;
use crate::suspicion::Suspicion;
use crate::tags::Tags;
use crate::time::Instant;

/// A member's state as this node believes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Answering probes, or not yet suspected.
    Alive,
    /// Missed a probe; it has until the suspicion timeout to refute.
    Suspect,
    /// Left the cluster gracefully.
    Left,
    /// Declared failed after its suspicion timed out.
    Failed,
}

impl Status {
    /// `alive`, `suspect`, `left` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Left => "left",
            Status::Failed => "failed",
        }
    }

    /// Alive or suspect: still part of the cluster as far as this node knows.
    pub const fn is_live(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member transition to report through `poll_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Joined,
    Updated,
    Suspected,
    Left,
    Failed,
    /// Reaped: the slot is freed once this is reported.
    Reaped,
}

impl Transition {
    /// Every transition, in report order.
    const ALL: [Transition; 6] = [
        Transition::Joined,
        Transition::Updated,
        Transition::Suspected,
        Transition::Left,
        Transition::Failed,
        Transition::Reaped,
    ];

    /// Its bit in [`Pending`].
    const fn bit(self) -> u8 {
        match self {
            Transition::Joined => 1,
            Transition::Updated => 2,
            Transition::Suspected => 4,
            Transition::Left => 8,
            Transition::Failed => 16,
            Transition::Reaped => 32,
        }
    }
}

/// Member transitions not yet reported through `poll_event`, kept in the member's own slot so
/// a burst of changes (a join learning 100 members at once) never overflows a queue: a set of
/// [`Transition`]s, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending(u8);

impl Pending {
    pub(crate) const NONE: Pending = Pending(0);

    /// Records a transition, forgetting earlier ones the new one supersedes.
    pub(crate) fn record(&mut self, what: Transition) {
        let bad_news =
            Transition::Suspected.bit() | Transition::Left.bit() | Transition::Failed.bit();
        self.0 = match what {
            // Back to life: earlier bad news is stale.
            Transition::Joined => what.bit(),
            Transition::Left | Transition::Failed => (self.0 & !bad_news) | what.bit(),
            Transition::Updated | Transition::Suspected | Transition::Reaped => self.0 | what.bit(),
        };
    }

    /// Whether `what` is waiting to be reported.
    pub(crate) fn has(self, what: Transition) -> bool {
        self.0 & what.bit() != 0
    }

    /// Takes the first pending transition in report order.
    pub(crate) fn take(&mut self) -> Option<Transition> {
        for what in Transition::ALL {
            if self.has(what) {
                self.0 &= !what.bit();
                return Some(what);
            }
        }
        None
    }
}

/// One entry of the member table.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) name: Name,
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u32,
    pub(crate) status: Status,
    pub(crate) tags: Tags,
    /// When `status` last changed (drives reaping).
    pub(crate) since: Instant,
    /// Present while `status` is `Suspect`.
    pub(crate) suspicion: Option<Suspicion>,
    pub(crate) pending: Pending,
}

impl Slot {
    /// A free slot: every byte zero, so a table of them needs no initial image in flash
    /// (see `Node::unconfigured`).
    pub(crate) const EMPTY: Slot = Slot {
        name: Name::new(),
        addr: SocketAddr::V4(core::net::SocketAddrV4::new(
            core::net::Ipv4Addr::UNSPECIFIED,
            0,
        )),
        incarnation: 0,
        status: Status::Alive,
        tags: Tags::new(),
        since: Instant::ZERO,
        suspicion: None,
        pending: Pending::NONE,
    };
}

/// A read-only view of one member.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub(crate) slot: &'a Slot,
    pub(crate) local: bool,
}

impl<'a> Member<'a> {
    /// Its unique name.
    pub fn name(&self) -> &'a str {
        &self.slot.name
    }

    /// The address it advertises.
    pub fn addr(&self) -> SocketAddr {
        self.slot.addr
    }

    /// Its status as this node believes it.
    pub fn status(&self) -> Status {
        self.slot.status
    }

    /// Its incarnation number (raised by the member itself to refute suspicion, leave or
    /// change tags).
    pub fn incarnation(&self) -> u32 {
        self.slot.incarnation
    }

    /// Its tags.
    pub fn tags(&self) -> &'a Tags {
        &self.slot.tags
    }

    /// True for the node's own entry.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// When its status last changed, in this node's clock.
    pub fn status_since(&self) -> Instant {
        self.slot.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_transitions_report_in_order_and_coalesce() {
        let mut p = Pending::default();
        p.record(Transition::Joined);
        p.record(Transition::Suspected);
        p.record(Transition::Failed);
        assert_eq!(p.take(), Some(Transition::Joined));
        assert_eq!(p.take(), Some(Transition::Failed));
        assert_eq!(p.take(), None);
        p.record(Transition::Failed);
        p.record(Transition::Joined);
        assert_eq!(p.take(), Some(Transition::Joined));
        assert_eq!(p, Pending::default());
        // A reap is reported last, and a comeback cancels it.
        p.record(Transition::Failed);
        p.record(Transition::Reaped);
        assert!(p.has(Transition::Reaped));
        assert_eq!(p.take(), Some(Transition::Failed));
        assert_eq!(p.take(), Some(Transition::Reaped));
        p.record(Transition::Reaped);
        p.record(Transition::Joined);
        assert_eq!((p.take(), p.take()), (Some(Transition::Joined), None));
    }
}
