//! Incoming datagrams: validate the whole datagram first, then act on it.

use core::net::SocketAddr;

use super::self_claims::own_alive_claim;
use super::transmit::Outgoing;
use super::{Helping, Node, Phase};
use crate::crypto::{ENVELOPE_XCHACHA20POLY1305, Plaintext};
use crate::time::Instant;
use crate::wire::{self, DropReason, Message, SyncKind, Update};

impl<const M: usize, const U: usize> Node<M, U> {
    /// Takes in one datagram received from `from`.
    ///
    /// The datagram is untrusted: it is checked from its first byte to its last before any
    /// of it is used, and a datagram that fails is dropped whole, counted in
    /// [`Stats`](crate::Stats) by reason, and changes nothing else.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let result = self.receive(now, from, data);
        if let Err(reason) = result {
            self.stats.count_drop(reason);
            crate::fmt::trace!("dropped a datagram: {}", reason as u8);
        }
        result
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), DropReason> {
        if self.phase == Phase::Left {
            return Err(DropReason::Ignored);
        }
        let envelope = wire::check_header(data, self.config.cluster_id)?;
        let mut scratch = [0u8; wire::MAX_DATAGRAM];
        let body = match (envelope, &self.sealer) {
            (wire::ENVELOPE_PLAIN, Some(_)) if self.plaintext == Plaintext::Refuse => {
                return Err(DropReason::Plaintext);
            }
            (wire::ENVELOPE_PLAIN, _) => &data[wire::HEADER_LEN..],
            (ENVELOPE_XCHACHA20POLY1305, Some(sealer)) => sealer.open(data, &mut scratch)?,
            _ => return Err(DropReason::Envelope),
        };
        let frame = wire::decode_body(body)?;
        if let Message::Ping { target, .. } = frame.message
            && target != self.local_slot().name.as_str()
        {
            return Err(DropReason::Ignored);
        }
        if from == self.local_slot().addr {
            return Err(DropReason::Ignored);
        }
        if self.is_own_sync(&frame) {
            // Our own request came back: a seed was one of our own addresses (a wildcard
            // bind reached through loopback, say). Forget it rather than join ourselves.
            self.join.seeds.retain(|s| *s != from);
            self.join.remembered.retain(|s| *s != from);
            if self.join.seeds.is_empty() {
                self.timers.join = None;
            }
            return Err(DropReason::Ignored);
        }
        self.start(now);
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += data.len() as u64;
        self.stats.updates_unknown += u64::from(frame.unknown);
        // While joining, the cluster's event clock is not known yet: user events in a Sync
        // chunk may be history (Serf does not replay it either), so they wait for gossip.
        // With `replay_user_events` (Serf's `-replay`) they are taken in and delivered.
        let history = matches!(frame.message, Message::Sync { .. })
            && !self.join.seeds.is_empty()
            && !self.config.replay_user_events;
        // A request's first chunk starts with the requester's own state.
        let requester = match (frame.message, frame.updates().next()) {
            (
                Message::Sync {
                    kind: SyncKind::Request { first: true, .. },
                    ..
                },
                Some(Update::State { name, .. }),
            ) => crate::name::name(name).ok(),
            _ => None,
        };
        let mut answered = false;
        for update in frame.updates() {
            if history && matches!(update, Update::User { .. }) {
                continue;
            }
            // At most one answer per datagram, however many claims it repeats: no
            // amplification towards a forged source.
            let own_claim =
                own_alive_claim(&update, from, requester.as_ref()).filter(|_| !answered);
            self.merge(now, update);
            if let Some((name, incarnation)) = own_claim {
                answered = self.answer_own_claim(now, from, name, incarnation);
            }
        }
        self.on_message(now, from, frame.message, requester);
        Ok(())
    }

    /// A push-pull request whose first state is this node's own, as it is now: the
    /// datagram is ours, sent to an address that reaches us.
    fn is_own_sync(&self, frame: &wire::Frame<'_>) -> bool {
        let local = self.local_slot();
        matches!(
            (frame.message, frame.updates().next()),
            (
                Message::Sync {
                    kind: SyncKind::Request { first: true, .. },
                    ..
                },
                Some(Update::State { name, incarnation, addr, .. }),
            ) if name == local.name.as_str()
                && incarnation == local.incarnation
                && core::net::SocketAddr::from(addr) == local.addr
        )
    }

    fn on_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        message: Message<'_>,
        requester: Option<crate::name::Name>,
    ) {
        match message {
            Message::Ping { seq, suspected, .. } => {
                // Lifeguard's buddy system: the prober tells us we are suspected.
                match suspected {
                    Some(inc) if inc >= self.local_slot().incarnation => {
                        self.refute_accusation(inc);
                    }
                    // Already refuted, but the prober missed it: let the ack carry it.
                    Some(_) if self.phase == Phase::Running => {
                        self.broadcast(crate::broadcast::Subject::Member(0));
                    }
                    _ => {}
                }
                self.enqueue(Outgoing::Ack { to: from, seq });
                self.on_stranger_ping(now, from);
            }
            Message::Ack { seq } => self.on_ack(now, from, seq),
            Message::Nack { seq } => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
                    p.nacks = p.nacks.saturating_add(1);
                    self.stats.nacks_received += 1;
                }
            }
            Message::PingReq { seq, target, addr } => {
                let Ok(target) = crate::name::name(target) else {
                    return;
                };
                let my_seq = self.next_seq();
                let nack_after = self.config.nack_timeout();
                let helping = Helping {
                    seq: my_seq,
                    origin: from,
                    origin_seq: seq,
                    nack_at: now + nack_after,
                };
                if self.helping.push(helping).is_err() {
                    self.stats.outbox_full += 1;
                    return;
                }
                self.enqueue(Outgoing::Ping {
                    to: addr.into(),
                    seq: my_seq,
                    target,
                    suspected: None,
                });
            }
            Message::Sync { kind, ltime } => self.on_sync(now, from, kind, ltime, requester),
            Message::Gossip => {}
        }
    }

    fn on_ack(&mut self, now: Instant, from: SocketAddr, seq: u32) {
        if self.on_verification_ack(seq) {
            return;
        }
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.set_acked();
            let target = usize::from(p.target);
            self.verify_probe_target(target, from);
            return;
        }
        if let Some(i) = self.helping.iter().position(|h| h.seq == seq) {
            let h = self.helping.swap_remove(i);
            self.enqueue(Outgoing::Forward {
                to: h.origin,
                seq: h.origin_seq,
            });
            return;
        }
        self.on_challenge_ack(now, from, seq);
    }
}
