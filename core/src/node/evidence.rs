//! Hard evidence of death: the network's answer that a datagram this node sent could not
//! be delivered (ICMP destination unreachable), fed in by the caller with the datagram as
//! the ICMP message quotes it.
//!
//! When a probed process is gone but its host is up, the host answers the ping with ICMP
//! port unreachable; when the host is gone, the sender's own kernel reports it unreachable
//! once address resolution fails. A paused or slow process still has its socket, so it
//! produces no such evidence: Lifeguard's suspicion timeouts stay for it.
//!
//! Evidence counts only when it answers a ping this node has outstanding to that address,
//! recognised by its first bytes as sent ([`Quote`]): a sealed ping starts with a random
//! nonce, so nobody who did not see the ping can forge an ICMP message about it (a
//! plaintext cluster trusts its network anyway). Then:
//!
//! - the probe of the current period, not yet acked: `Port` declares the member failed at
//!   once (its process is gone); `Host` ends the probe now and suspects the member
//!   (without waiting for indirect probes), since a fault of this node's own route would
//!   make every member look unreachable and must not fail them all;
//! - a verification ping: when this node hears of a suspicion it did not raise, it pings
//!   the suspect once: always when the news is that the member failed (the fast path of a
//!   crash: the first prober declared it failed on its own evidence), else with
//!   probability `indirect_checks / n` (a few members check each suspicion, not all of
//!   them). The ping tells the suspect it is suspected, so a live one refutes at once.
//!   `Port` for that ping declares the member failed; an ack ends it. Members already
//!   suspecting it take the resulting `Failed` at once.
//!
//! So a crashed process on a live host is declared failed by its first prober, or by the
//! first verifier, instead of after a suspicion timeout. A process restarted at the same
//! address answers pings, produces no evidence, and refutes with a higher incarnation.

use core::net::SocketAddr;

use super::Node;
use super::transmit::Outgoing;
use crate::member::Status;
use crate::name::{FNV_OFFSET, fnv1a};
use crate::time::Instant;
use crate::wire::DropReason;

/// Verification pings remembered at once; a new one replaces the oldest. Two: they are
/// rare (a few members check each suspicion), and a 32-member node stays within 16 KiB.
pub(super) const VERIFICATIONS: usize = 2;

/// How many first bytes of a ping an ICMP error must quote to be recognised (all of a
/// shorter ping): a sealed ping's envelope byte and 24-byte nonce, and more.
const QUOTED: usize = 32;

/// A verification ping outstanding: its sequence number, how it started as sent, and the
/// member's slot plus one. All zero when unused, so an unconfigured node stays all zero.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Verification {
    pub(super) seq: u32,
    hash: u32,
    slot_plus_one: u16,
    len: u8,
}

impl Verification {
    /// No ping.
    pub(super) const NONE: Verification = Verification {
        seq: 0,
        hash: 0,
        slot_plus_one: 0,
        len: 0,
    };

    fn slot(self) -> Option<usize> {
        usize::from(self.slot_plus_one).checked_sub(1)
    }

    fn quote(self) -> Quote {
        Quote {
            hash: self.hash,
            len: self.len,
        }
    }
}

/// The first bytes of a ping as sent, as a hash and their count, to recognise the ping
/// quoted in an ICMP error. All zero until the ping is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Quote {
    hash: u32,
    len: u8,
}

impl Quote {
    /// Not sent yet: matches nothing.
    pub(super) const NONE: Quote = Quote { hash: 0, len: 0 };

    /// The quote of `datagram`, as sent.
    pub(super) fn of(datagram: &[u8]) -> Quote {
        let len = datagram.len().min(QUOTED);
        Quote {
            hash: fnv1a(FNV_OFFSET, &datagram[..len]),
            len: len as u8,
        }
    }

    /// Whether `quoted` (the datagram an ICMP error quotes) starts as the ping did.
    fn matches(self, quoted: &[u8]) -> bool {
        let len = usize::from(self.len);
        len > 0
            && quoted
                .get(..len)
                .is_some_and(|q| fnv1a(FNV_OFFSET, q) == self.hash)
    }
}

/// What the network reported about a datagram this node sent (ICMP or ICMPv6
/// destination unreachable, or the local kernel's failure to resolve the address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Unreachable {
    /// The destination host answered that no socket is bound to the port (ICMP type 3
    /// code 3, ICMPv6 type 1 code 4): the member's process is gone.
    Port,
    /// The destination host could not be reached (ICMP type 3 codes 0 and 1, ICMPv6 type 1
    /// code 3, or the local kernel's `EHOSTUNREACH`): the host may be gone, or the route.
    Host,
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Feeds in that a datagram this node sent to `to` could not be delivered (`kind`);
    /// `quoted` is that datagram as the ICMP message quotes it (Linux's error queue gives
    /// it), at least its first 32 bytes.
    ///
    /// Accepted when it answers a ping this node has outstanding to `to` (see the module
    /// docs, and `docs/PROTOCOL.md`): then `Port` declares the member there failed, and
    /// `Host` ends this period's probe of it as failed. Counted in
    /// [`Stats::unreachable_evidence`](crate::Stats::unreachable_evidence).
    ///
    /// # Errors
    /// [`DropReason::Ignored`] when nothing matches (counted in
    /// [`Stats::unreachable_ignored`](crate::Stats::unreachable_ignored)): no outstanding
    /// ping to that address, an answered one, a quote too short or of another datagram,
    /// or a node that is not running.
    pub fn handle_unreachable(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: Unreachable,
        quoted: &[u8],
    ) -> Result<(), DropReason> {
        if self.phase != super::Phase::Running {
            return self.unmatched();
        }
        let live_at = |s: &crate::member::Slot| s.addr == to && s.status.is_live();
        let probed = self
            .probe
            .filter(|p| !p.acked() && p.quote.matches(quoted))
            .map(|p| usize::from(p.target))
            .filter(|&i| self.table.get(i).is_some_and(live_at));
        let verified = || {
            self.verifications.iter().position(|v| {
                v.quote().matches(quoted)
                    && v.slot()
                        .and_then(|i| self.table.get(i))
                        .is_some_and(|s| s.addr == to && s.status == Status::Suspect)
            })
        };
        let (i, by_probe) = match (probed, kind) {
            (Some(i), _) => (i, true),
            (None, Unreachable::Port) => match verified() {
                Some(k) => {
                    let v = core::mem::take(&mut self.verifications[k]);
                    match v.slot() {
                        Some(i) => (i, false),
                        None => return self.unmatched(),
                    }
                }
                None => return self.unmatched(),
            },
            (None, Unreachable::Host) => return self.unmatched(),
        };
        self.stats.unreachable_evidence += 1;
        let Some(inc) = self.table.get(i).map(|s| s.incarnation) else {
            return Ok(());
        };
        if by_probe {
            // The probe is over: the target's fault, not ours (no health penalty).
            self.probe = None;
            self.stats.probes_failed += 1;
        }
        match kind {
            Unreachable::Port => {
                crate::fmt::debug!("member unreachable: its port is closed");
                self.set_failed(now, i, inc);
            }
            Unreachable::Host => {
                let me = self.local_fingerprint();
                self.suspect(now, i, inc, me, Some(0));
            }
        }
        Ok(())
    }

    fn unmatched(&mut self) -> Result<(), DropReason> {
        self.stats.unreachable_ignored += 1;
        Err(DropReason::Ignored)
    }

    /// Member `i` was just suspected on another member's word: ping it once, carrying
    /// nothing else (see the module docs). Always on news that it failed (`failed`: the
    /// fast path of a crash, where every node must confirm), else with probability
    /// `indirect_checks / n`.
    pub(super) fn verify_suspicion(&mut self, i: usize, failed: bool) {
        let n = self.live_count().max(1);
        let chosen = failed || self.rng.below(n) < usize::from(self.config.indirect_checks);
        if !chosen || self.outbox.is_full() {
            return;
        }
        let seq = self.next_seq();
        let Some(s) = self.table.get(i) else {
            return;
        };
        let (to, target, suspected) = (s.addr, s.name.clone(), Some(s.incarnation));
        // An unused entry, else the oldest.
        let current = self.seq;
        if let Some(v) = self
            .verifications
            .iter_mut()
            .max_by_key(|v| (v.slot_plus_one == 0, current.wrapping_sub(v.seq)))
        {
            *v = Verification {
                seq,
                slot_plus_one: (i as u16).saturating_add(1),
                ..Verification::NONE
            };
        }
        self.stats.suspicions_verified += 1;
        self.enqueue(Outgoing::Verify {
            to,
            seq,
            target,
            suspected,
        });
    }

    /// An ack with `seq`: if it answers a verification ping, that ping is over (the
    /// member is alive; its refutation follows). True if it did.
    pub(super) fn on_verification_ack(&mut self, seq: u32) -> bool {
        let Some(v) = self
            .verifications
            .iter_mut()
            .find(|v| v.slot_plus_one != 0 && v.seq == seq)
        else {
            return false;
        };
        *v = Verification::NONE;
        true
    }

    /// Remembers how the ping with `seq` started as sent (`datagram`), if it is the probe's
    /// direct ping or a verification ping.
    pub(super) fn remember_quote(&mut self, seq: u32, datagram: &[u8]) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.quote = Quote::of(datagram);
        } else if let Some(v) = self
            .verifications
            .iter_mut()
            .find(|v| v.slot_plus_one != 0 && v.seq == seq)
        {
            let quote = Quote::of(datagram);
            (v.hash, v.len) = (quote.hash, quote.len);
        }
    }
}
