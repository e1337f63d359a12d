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

/// Member transitions not yet reported through `poll_event`, kept in the member's own slot so
/// a burst of changes (a join learning 100 members at once) never overflows a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending(u8);

impl Pending {
    pub(crate) const NONE: Pending = Pending(0);
    pub(crate) const JOINED: u8 = 1;
    pub(crate) const UPDATED: u8 = 2;
    pub(crate) const SUSPECTED: u8 = 4;
    pub(crate) const LEFT: u8 = 8;
    pub(crate) const FAILED: u8 = 16;
    /// Reaped: the slot is freed once this is reported.
    pub(crate) const REAPED: u8 = 32;

    /// Records a transition, forgetting earlier ones the new one supersedes.
    pub(crate) fn record(&mut self, what: u8) {
        self.0 = match what {
            // Back to life: earlier bad news is stale.
            Self::JOINED => Self::JOINED,
            Self::LEFT | Self::FAILED => {
                (self.0 & !(Self::SUSPECTED | Self::LEFT | Self::FAILED)) | what
            }
            _ => self.0 | what,
        };
    }

    /// Whether `what` is waiting to be reported.
    pub(crate) fn has(self, what: u8) -> bool {
        self.0 & what != 0
    }

    /// Takes the first pending transition in report order.
    pub(crate) fn take(&mut self) -> Option<u8> {
        for what in [
            Self::JOINED,
            Self::UPDATED,
            Self::SUSPECTED,
            Self::LEFT,
            Self::FAILED,
            Self::REAPED,
        ] {
            if self.0 & what != 0 {
                self.0 &= !what;
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
        p.record(Pending::JOINED);
        p.record(Pending::SUSPECTED);
        p.record(Pending::FAILED);
        assert_eq!(p.take(), Some(Pending::JOINED));
        assert_eq!(p.take(), Some(Pending::FAILED));
        assert_eq!(p.take(), None);
        p.record(Pending::FAILED);
        p.record(Pending::JOINED);
        assert_eq!(p.take(), Some(Pending::JOINED));
        assert_eq!(p, Pending::default());
        // A reap is reported last, and a comeback cancels it.
        p.record(Pending::FAILED);
        p.record(Pending::REAPED);
        assert!(p.has(Pending::REAPED));
        assert_eq!(p.take(), Some(Pending::FAILED));
        assert_eq!(p.take(), Some(Pending::REAPED));
        p.record(Pending::REAPED);
        p.record(Pending::JOINED);
        assert_eq!((p.take(), p.take()), (Some(Pending::JOINED), None));
    }
}
