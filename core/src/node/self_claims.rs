//! A member's own claim that it is alive, contradicted by what this node holds: the
//! member is told, so that it refutes.
//!
//! A member can miss the news that it failed or left: nobody gossips to a member that is
//! not live, and pings or acks to an address that is no live member's carry little or
//! nothing. A forged `Left`, or a failure during a partition, would then cut a live member
//! off for good: it keeps its incarnation, and every claim it makes about itself is stale
//! where it is held failed, left or evicted (tombstoned). So a claim that a member is alive
//! that comes from the member itself (its address, or the first state of its own push-pull
//! request) and is no newer than that record is answered at once, to the sender, with one
//! `Failed` or `Left` update at the record's incarnation. The member refutes it with a
//! higher incarnation, which every node takes, evicted or not.
//!
//! The answer is smaller than the claim that prompted it (a state carries an address and
//! tags, the answer only the name and the incarnation) and carries nothing else, so a
//! forged source gains no amplification and learns nothing.

use core::net::SocketAddr;

use super::Node;
use super::transmit::Outgoing;
use crate::member::Status;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::{Update, WireStatus};

/// What this node holds against a member's claim that it is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Contradiction {
    /// The member failed at this incarnation (or was evicted at it).
    Failed(u32),
    /// The member left at this incarnation.
    Left(u32),
}

impl Contradiction {
    /// The incarnation held.
    fn incarnation(self) -> u32 {
        match self {
            Contradiction::Failed(inc) | Contradiction::Left(inc) => inc,
        }
    }

    /// The update that tells the member.
    pub(super) fn update(self, name: &str) -> Update<'_> {
        match self {
            Contradiction::Failed(incarnation) => Update::Failed { name, incarnation },
            Contradiction::Left(incarnation) => Update::Left { name, incarnation },
        }
    }
}

/// The member and incarnation of `update` when it is a claim, made by the sender of a
/// datagram from `from`, that it is alive: an alive state at the sender's address, or the
/// first state of a push-pull request (`requester`, the requester's own).
pub(super) fn own_alive_claim<'a>(
    update: &Update<'a>,
    from: SocketAddr,
    requester: Option<&Name>,
) -> Option<(&'a str, u32)> {
    let (name, incarnation, addr) = match *update {
        Update::Alive {
            name,
            incarnation,
            addr,
            ..
        }
        | Update::State {
            name,
            incarnation,
            addr,
            status: WireStatus::Alive,
            ..
        } => (name, incarnation, addr),
        _ => return None,
    };
    let own = SocketAddr::from(addr) == from || requester.is_some_and(|r| r.as_str() == name);
    own.then_some((name, incarnation))
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Answers the member `name`'s own claim, from `from`, that it is alive at
    /// `incarnation`, once merged: when this node still holds it failed or left, or evicted,
    /// at that incarnation or a higher one, the member is told so (see the module docs).
    /// Not at the incarnation cap, which the member could not refute. True if answered.
    pub(super) fn answer_own_claim(
        &mut self,
        now: Instant,
        from: SocketAddr,
        name: &str,
        incarnation: u32,
    ) -> bool {
        if name == self.local_slot().name.as_str() {
            return false;
        }
        let held = match self.find(name).and_then(|i| self.table.get(i)) {
            Some(s) if s.incarnation < incarnation => None,
            Some(s) => match s.status {
                Status::Failed => Some(Contradiction::Failed(s.incarnation)),
                Status::Left => Some(Contradiction::Left(s.incarnation)),
                Status::Alive | Status::Suspect => None,
            },
            None => self
                .tombstone(now, crate::name::fingerprint(name))
                .filter(|&evicted_at| incarnation <= evicted_at)
                .map(Contradiction::Failed),
        };
        let held = held.filter(|h| h.incarnation() < crate::wire::MAX_COUNTER);
        let (Some(held), Ok(name)) = (held, crate::name::name(name)) else {
            return false;
        };
        self.stats.stale_self_claims_answered += 1;
        self.enqueue(Outgoing::Contradict {
            to: from,
            name,
            held,
        });
        true
    }
}
