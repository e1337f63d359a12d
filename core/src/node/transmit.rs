//! Outgoing datagrams: queued messages first, then push-pull chunks; every message but a
//! sync chunk carries as many piggybacked updates as fit, least-sent first.

use core::net::SocketAddr;

use super::Node;
use super::Transmit;
use crate::broadcast::Subject;
use crate::crypto::{NONCE_LEN, Plaintext, Sealer, TAG_LEN};
use crate::member::Status;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::{Encoder, Message, SyncKind, Update, WireStatus};

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
}

impl Outgoing {
    fn to(&self) -> SocketAddr {
        match *self {
            Outgoing::Ping { to, .. }
            | Outgoing::Ack { to, .. }
            | Outgoing::Nack { to, .. }
            | Outgoing::PingReq { to, .. }
            | Outgoing::Gossip { to } => to,
        }
    }

    fn message(&self) -> Message<'_> {
        match self {
            Outgoing::Ping {
                seq,
                target,
                suspected,
                ..
            } => Message::Ping {
                seq: *seq,
                target,
                suspected: *suspected,
            },
            Outgoing::Ack { seq, .. } => Message::Ack { seq: *seq },
            Outgoing::Nack { seq, .. } => Message::Nack { seq: *seq },
            Outgoing::PingReq {
                seq, target, addr, ..
            } => Message::PingReq {
                seq: *seq,
                target,
                addr: (*addr).into(),
            },
            Outgoing::Gossip { .. } => Message::Gossip,
        }
    }
}

/// One side of a push-pull exchange: the member table, sent chunk by chunk.
#[derive(Clone, Copy, Debug)]
pub(super) struct SyncSession {
    pub(super) to: SocketAddr,
    pub(super) kind: SyncKind,
    /// Next table slot to send.
    cursor: usize,
    /// Next buffered user event to send, once every slot is sent: anti-entropy for events
    /// a member missed while its gossip was lost (Serf's push-pull carries them too).
    event: usize,
}

impl SyncSession {
    pub(super) fn request(to: SocketAddr, join: bool) -> Self {
        SyncSession {
            to,
            kind: SyncKind::Request { first: true, join },
            cursor: 0,
            event: 0,
        }
    }

    pub(super) fn response(to: SocketAddr) -> Self {
        SyncSession {
            to,
            kind: SyncKind::Response,
            cursor: 0,
            event: 0,
        }
    }
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Queues a message; a full outbox drops it and counts the drop.
    pub(super) fn send(&mut self, out: Outgoing) {
        if self.outbox.push_back(out).is_err() {
            self.stats.outbox_full += 1;
        }
    }

    /// Writes the next datagram into `buf` and says where to send it, or `None` when there is
    /// nothing to send. Never writes more than `Config::max_datagram` bytes.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let _ = now;
        let limit = buf.len().min(self.config.max_datagram);
        let buf = &mut buf[..limit];
        let (gap, tag) = match self.sealing() {
            Some(_) => (NONCE_LEN, TAG_LEN),
            None => (0, 0),
        };
        let body_limit = limit.saturating_sub(tag);
        while let Some(out) = self.outbox.pop_front() {
            let Some(mut enc) = Encoder::with_gap(
                &mut buf[..body_limit],
                self.config.cluster_id,
                gap,
                &out.message(),
            ) else {
                continue;
            };
            let piggybacked = self.piggyback(&mut enc);
            if matches!(out, Outgoing::Gossip { .. }) && piggybacked == 0 {
                continue;
            }
            let len = enc.len();
            if let Some(t) = self.sent(buf, out.to(), len) {
                return Some(t);
            }
        }
        while !self.syncs.is_empty() {
            let chunk = self.sync_chunk(&mut buf[..body_limit], gap);
            if let Some(t) = chunk.and_then(|(to, len)| self.sent(buf, to, len)) {
                return Some(t);
            }
        }
        None
    }

    /// Seals the encoded frame when encryption is on, and counts it.
    fn sent(&mut self, buf: &mut [u8], to: SocketAddr, len: usize) -> Option<Transmit> {
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

    /// Adds queued updates to `enc`, least-sent first; returns how many fit. Gives up after
    /// a few updates in a row did not fit: the frame is full, and trying the rest of a long
    /// queue would cost a serialisation attempt each.
    fn piggyback(&mut self, enc: &mut Encoder<'_>) -> usize {
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
                self.queue.sent(i);
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
            Subject::User(i) => {
                let e = &self.user.buffer.get(usize::from(i))?.event;
                Some(Update::User {
                    origin: &e.origin,
                    ltime: e.ltime,
                    name: &e.name,
                    payload: &e.payload,
                })
            }
        }
    }

    /// The next chunk of the first push-pull session: as many member states as fit, then
    /// the buffered user events. Returns the destination and encoded length.
    fn sync_chunk(&mut self, buf: &mut [u8], gap: usize) -> Option<(SocketAddr, usize)> {
        let mut session = *self.syncs.first()?;
        let message = Message::Sync {
            kind: session.kind,
            ltime: self.user.clock,
        };
        let Some(mut enc) = Encoder::with_gap(buf, self.config.cluster_id, gap, &message) else {
            // The caller's buffer cannot hold even a header: give the session up.
            self.syncs.remove(0);
            return None;
        };
        let mut entries = 0;
        let end = self.table.used();
        while session.cursor < end {
            let fits = match self.table.get(session.cursor) {
                Some(s) => enc.push(&Update::State {
                    name: &s.name,
                    incarnation: s.incarnation,
                    addr: s.addr.into(),
                    tags: s.tags.encoded(),
                    status: match s.status {
                        Status::Alive => WireStatus::Alive,
                        Status::Suspect => WireStatus::Suspect,
                        Status::Failed => WireStatus::Failed,
                        Status::Left => WireStatus::Left,
                    },
                }),
                None => true,
            };
            if !fits {
                if entries == 0 {
                    // Cannot happen with a valid config (one state always fits), but never
                    // loop on it: skip the entry.
                    session.cursor += 1;
                }
                break;
            }
            entries += usize::from(self.table.get(session.cursor).is_some());
            session.cursor += 1;
        }
        let events = self.user.buffer.len();
        while session.cursor >= end && session.event < events {
            let fits = match self.update_for(Subject::User(session.event as u8)) {
                Some(update) => enc.push(&update),
                None => true,
            };
            if !fits {
                if entries == 0 {
                    session.event += 1;
                }
                break;
            }
            entries += 1;
            session.event += 1;
        }
        if let SyncKind::Request { join, .. } = session.kind {
            session.kind = SyncKind::Request { first: false, join };
        }
        if session.cursor >= end && session.event >= events {
            self.syncs.remove(0);
        } else {
            self.syncs[0] = session;
        }
        (entries > 0).then(|| (session.to, enc.len()))
    }
}
