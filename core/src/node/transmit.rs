//! Outgoing datagrams: queued messages first, then push-pull chunks; every message but a
//! sync chunk carries as many piggybacked updates as fit, least-sent first.

use core::net::SocketAddr;

use super::Node;
use super::Transmit;
use super::self_claims::Contradiction;
use crate::broadcast::Subject;
use crate::crypto::{NONCE_LEN, Plaintext, Sealer, TAG_LEN};
use crate::member::Status;
use crate::name::Name;
use crate::time::Instant;
use crate::user_event::UserEvent;
use crate::wire::{Encoder, Message, Update};

/// At most this many bytes go to an unverified address per byte received from it (QUIC's
/// anti-amplification limit).
pub(crate) const AMPLIFICATION: usize = 3;

/// The smallest ping to this node, its name aside: header, message tag, a one-byte
/// sequence number, the name's length byte and `suspected`.
const MIN_PING: usize = crate::wire::HEADER_LEN + 4;

/// How much of the frame queued updates may fill.
enum Room {
    /// As many as fit; each counts as a retransmission.
    Full,
    /// As many as fit in the frame's first `.0` bytes; none counts.
    Uncounted(usize),
    /// None: the frame holds its message only.
    Bare,
}

/// A message waiting for `poll_transmit`.
#[derive(Clone, Debug)]
pub(super) enum Outgoing {
    Ping {
        to: SocketAddr,
        seq: u32,
        target: Name,
        suspected: Option<u32>,
    },
    Ack {
        to: SocketAddr,
        seq: u32,
    },
    Nack {
        to: SocketAddr,
        seq: u32,
    },
    PingReq {
        to: SocketAddr,
        seq: u32,
        target: Name,
        addr: SocketAddr,
    },
    /// Piggybacked updates only; skipped when there are none.
    Gossip {
        to: SocketAddr,
    },
    /// An indirect probe's ack forwarded to the member that asked for it.
    Forward {
        to: SocketAddr,
        seq: u32,
    },
    /// A ping to an unverified push-pull requester; never carries updates.
    Challenge {
        to: SocketAddr,
        seq: u32,
        target: Name,
    },
    /// A verification ping to a member suspected on another's word (see `evidence.rs`):
    /// like a probe's ping, but it never carries updates.
    Verify {
        to: SocketAddr,
        seq: u32,
        target: Name,
        suspected: Option<u32>,
    },
    /// What this node holds about the member `name`, sent to it after a stale claim of
    /// its own (see `self_claims.rs`): one update, nothing piggybacked.
    Contradict {
        to: SocketAddr,
        name: Name,
        held: Contradiction,
    },
}

impl Outgoing {
    fn to(&self) -> SocketAddr {
        match *self {
            Outgoing::Ping { to, .. }
            | Outgoing::Ack { to, .. }
            | Outgoing::Nack { to, .. }
            | Outgoing::PingReq { to, .. }
            | Outgoing::Gossip { to }
            | Outgoing::Forward { to, .. }
            | Outgoing::Challenge { to, .. }
            | Outgoing::Verify { to, .. }
            | Outgoing::Contradict { to, .. } => to,
        }
    }

    fn message(&self) -> Message<'_> {
        match self {
            Outgoing::Ping {
                seq,
                target,
                suspected,
                ..
            }
            | Outgoing::Verify {
                seq,
                target,
                suspected,
                ..
            } => Message::Ping {
                seq: *seq,
                target,
                suspected: *suspected,
            },
            Outgoing::Ack { seq, .. } | Outgoing::Forward { seq, .. } => Message::Ack { seq: *seq },
            Outgoing::Nack { seq, .. } => Message::Nack { seq: *seq },
            Outgoing::PingReq {
                seq, target, addr, ..
            } => Message::PingReq {
                seq: *seq,
                target,
                addr: (*addr).into(),
            },
            Outgoing::Gossip { .. } | Outgoing::Contradict { .. } => Message::Gossip,
            Outgoing::Challenge { seq, target, .. } => Message::Ping {
                seq: *seq,
                target,
                suspected: None,
            },
        }
    }
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Sends the queued updates to a few random peers.
    pub(super) fn gossip_round(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let peers: heapless::Vec<usize, 8> =
            self.random_members(usize::from(self.config.gossip_nodes), None, Status::is_live);
        for &p in &peers {
            if let Some(to) = self.table.get(p).map(|s| s.addr) {
                self.enqueue(Outgoing::Gossip { to });
            }
        }
    }

    /// Queues a message; a full outbox drops it and counts the drop.
    pub(super) fn enqueue(&mut self, out: Outgoing) {
        if self.outbox.push_back(out).is_err() {
            self.stats.outbox_full += 1;
        }
    }

    /// Writes the next datagram into `buf` and says where to send it, or `None` when there is
    /// nothing to send. Never writes more than `Config::max_datagram` bytes, nor more than
    /// [`MAX_DATAGRAM_V6`](crate::MAX_DATAGRAM_V6) to an IPv6 address.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let _ = now;
        let (gap, tag) = self.sealing_overhead();
        // The sealed datagram to `to` fits in the buffer's first `limit(to)` bytes; its body
        // in the first `limit(to) - tag`.
        let capacity = buf.len();
        let limit = |config: &crate::Config, to| capacity.min(config.max_datagram_to(to));
        while let Some(out) = self.outbox.pop_front() {
            let to = out.to();
            let limit = limit(&self.config, to);
            let body_limit = limit.saturating_sub(tag);
            let policy = self.room(&out);
            let room = match policy {
                Room::Full | Room::Bare => body_limit,
                Room::Uncounted(cap) => body_limit.min(cap),
            };
            let Some(mut enc) = Encoder::with_gap(
                &mut buf[..room],
                self.config.cluster_id,
                gap,
                &out.message(),
            ) else {
                continue;
            };
            if let Outgoing::Contradict { name, held, .. } = &out
                && !enc.push(&held.update(name))
            {
                continue;
            }
            let piggybacked = match policy {
                Room::Full => self.piggyback(&mut enc, true),
                Room::Uncounted(_) => self.piggyback(&mut enc, false),
                Room::Bare => 0,
            };
            if matches!(out, Outgoing::Gossip { .. }) && piggybacked == 0 {
                continue;
            }
            let len = enc.len();
            if let Some(t) = self.seal(&mut buf[..limit], to, len) {
                if let Outgoing::Ping { seq, .. } | Outgoing::Verify { seq, .. } = out {
                    self.remember_quote(seq, &buf[..t.len]);
                }
                return Some(t);
            }
        }
        while let Some(to) = self.syncs.first().map(|s| s.to) {
            let limit = limit(&self.config, to);
            let body_limit = limit.saturating_sub(tag);
            let chunk = self.sync_chunk(&mut buf[..body_limit], gap);
            if let Some(t) = chunk.and_then(|(to, len)| self.seal(&mut buf[..limit], to, len)) {
                return Some(t);
            }
        }
        None
    }

    /// How many updates `out` may carry. Gossip and indirect probe requests go to members
    /// picked from the table, as do pings, acks and nacks to a verified member: as many
    /// as fit. Otherwise the address may be forged or a stranger's: an ack (the answer to
    /// a ping naming us, so at least [`MIN_PING`] plus our name long) stays within three
    /// times that and its updates spend no retransmission; anything else carries none.
    fn room(&self, out: &Outgoing) -> Room {
        let verified = |to: &SocketAddr| self.verified_member(*to).is_some();
        match out {
            Outgoing::Gossip { .. } | Outgoing::PingReq { .. } => Room::Full,
            Outgoing::Ping { to, .. }
            | Outgoing::Ack { to, .. }
            | Outgoing::Nack { to, .. }
            | Outgoing::Forward { to, .. }
                if verified(to) =>
            {
                Room::Full
            }
            Outgoing::Ack { .. } => {
                let (gap, tag) = self.sealing_overhead();
                let ping = MIN_PING + self.local_slot().name.len() + gap + tag;
                Room::Uncounted((AMPLIFICATION * ping).saturating_sub(tag))
            }
            Outgoing::Ping { .. }
            | Outgoing::Nack { .. }
            | Outgoing::Forward { .. }
            | Outgoing::Challenge { .. }
            | Outgoing::Verify { .. }
            | Outgoing::Contradict { .. } => Room::Bare,
        }
    }

    /// Nonce and tag bytes of a sealed datagram, or zeros when sending plaintext.
    fn sealing_overhead(&self) -> (usize, usize) {
        match (&self.sealer, self.plaintext) {
            (Some(_), p) if p != Plaintext::Send => (NONCE_LEN, TAG_LEN),
            _ => (0, 0),
        }
    }

    /// Seals the encoded frame when encryption is on, and counts it.
    fn seal(&mut self, buf: &mut [u8], to: SocketAddr, len: usize) -> Option<Transmit> {
        let len = match self.sealing() {
            Some(sealer) => sealer.seal(buf, len)?,
            None => len,
        };
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += len as u64;
        Some(Transmit { to, len })
    }

    /// The sealer, when datagrams are to be sealed: a keyring is set and plaintext is not
    /// what this node sends ([`Plaintext::Send`]).
    fn sealing(&mut self) -> Option<&mut Sealer> {
        self.sealer
            .as_mut()
            .filter(|_| self.plaintext != Plaintext::Send)
    }

    /// Adds queued updates to `enc`, least-sent first; returns how many fit. Each counts as
    /// one retransmission when `count`. Gives up after a few updates in a row did not fit:
    /// the frame is full, and trying the rest of a long queue would cost a serialisation
    /// attempt each.
    fn piggyback(&mut self, enc: &mut Encoder<'_>, count: bool) -> usize {
        const MISSES: usize = 4;
        if self.queue.is_empty() {
            return 0;
        }
        self.queue.sort();
        let (mut added, mut misses) = (0, 0);
        for i in 0..self.queue.len() {
            let Some(entry) = self.queue.get(i) else {
                break;
            };
            let fits = match self.update_for(entry.subject) {
                Some(update) => enc.push(&update),
                None => continue,
            };
            if fits {
                if count {
                    self.queue.sent(i);
                }
                added += 1;
                misses = 0;
            } else {
                misses += 1;
                if misses == MISSES {
                    break;
                }
            }
        }
        let limit = self.retransmit_limit();
        self.queue.retire(limit);
        added
    }

    /// The update that tells others about `subject` as it is now.
    fn update_for(&self, subject: Subject) -> Option<Update<'_>> {
        match subject {
            Subject::Member(i) => {
                let s = self.table.get(usize::from(i))?;
                Some(match s.status {
                    Status::Alive => Update::Alive {
                        name: &s.name,
                        incarnation: s.incarnation,
                        addr: s.addr.into(),
                        tags: s.tags.encoded(),
                    },
                    // With no accuser to name, the suspect itself is named: the convention
                    // for an anonymous accusation, which confirms nothing.
                    Status::Suspect => Update::Suspect {
                        name: &s.name,
                        incarnation: s.incarnation,
                        from: self.name_of(s.suspicion.as_ref().and_then(|x| x.accuser()), &s.name),
                    },
                    Status::Failed => Update::Failed {
                        name: &s.name,
                        incarnation: s.incarnation,
                    },
                    Status::Left => Update::Left {
                        name: &s.name,
                        incarnation: s.incarnation,
                    },
                })
            }
            Subject::User(i) => self.user.get(usize::from(i)).map(user_update),
        }
    }
}

/// The update that spreads a user event.
pub(super) fn user_update(e: &UserEvent) -> Update<'_> {
    Update::User {
        origin: &e.origin,
        ltime: e.ltime,
        name: &e.name,
        payload: &e.payload,
    }
}
