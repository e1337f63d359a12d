//! What a node reports to its application through [`Node::poll_event`](crate::Node::poll_event).

use core::net::SocketAddr;

use crate::name::Name;
use crate::user_event::UserEvent;

/// Something the application may want to act on.
///
/// Member events are coalesced per member between two drains of `poll_event`: a member that
/// failed and came back before the application looked is reported as joined once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A member joined, or came back after failing or leaving.
    MemberJoined {
        /// Its name.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member changed its tags or its address.
    MemberUpdated {
        /// Its name.
        name: Name,
        /// Its (possibly new) address.
        addr: SocketAddr,
    },
    /// A member missed its probes and is suspected; it may still refute.
    MemberSuspected {
        /// Its name.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member left gracefully.
    MemberLeft {
        /// Its name.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member was declared failed.
    MemberFailed {
        /// Its name.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A failed or left member was forgotten after the reap timeout (its slot is freed as
    /// this is reported).
    MemberReaped {
        /// Its name.
        name: Name,
    },
    /// The member table is full, so a newcomer was not tracked: every slot holds a live
    /// member, or a failed or left one whose news is not reported yet or which still has
    /// time to refute it.
    MemberRefused {
        /// The newcomer's name.
        name: Name,
        /// The newcomer's address.
        addr: SocketAddr,
    },
    /// A name is claimed from another address while this node holds it live (its own name,
    /// or a member's): the claim was not applied. Reported once per name and address.
    NameConflict {
        /// The contested name.
        name: Name,
        /// The other claimant's address.
        other: SocketAddr,
    },
    /// A user event arrived (or was sent by this node).
    User(UserEvent),
    /// A seed answered: this node is part of a cluster.
    Joined {
        /// The seed that answered first.
        via: SocketAddr,
    },
    /// The leave has been gossiped; the node can be shut down.
    LeaveComplete,
}

#[cfg(feature = "defmt")]
impl defmt::Format for Event {
    fn format(&self, f: defmt::Formatter<'_>) {
        use defmt::Debug2Format as D;
        match self {
            Event::MemberJoined { name, addr } => {
                defmt::write!(f, "MemberJoined({=str} {})", name, D(addr))
            }
            Event::MemberUpdated { name, addr } => {
                defmt::write!(f, "MemberUpdated({=str} {})", name, D(addr))
            }
            Event::MemberSuspected { name, addr } => {
                defmt::write!(f, "MemberSuspected({=str} {})", name, D(addr))
            }
            Event::MemberLeft { name, addr } => {
                defmt::write!(f, "MemberLeft({=str} {})", name, D(addr))
            }
            Event::MemberFailed { name, addr } => {
                defmt::write!(f, "MemberFailed({=str} {})", name, D(addr))
            }
            Event::MemberReaped { name } => defmt::write!(f, "MemberReaped({=str})", name),
            Event::MemberRefused { name, addr } => {
                defmt::write!(f, "MemberRefused({=str} {})", name, D(addr))
            }
            Event::NameConflict { name, other } => {
                defmt::write!(f, "NameConflict({=str} {})", name, D(other))
            }
            Event::User(u) => defmt::write!(f, "User({})", u),
            Event::Joined { via } => defmt::write!(f, "Joined({})", D(via)),
            Event::LeaveComplete => defmt::write!(f, "LeaveComplete"),
        }
    }
}
