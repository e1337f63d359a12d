//! Hard evidence of death: the network's answer that a datagram this node sent could not
//! be delivered (ICMP destination unreachable), fed in by the caller.
//!
//! When a probed process is gone but its host is up, the host answers the ping with ICMP
//! port unreachable; when the host is gone, the sender's own kernel reports it unreachable
//! once address resolution fails. A paused or slow process still has its socket, so it
//! produces no such evidence: Lifeguard's suspicion timeouts stay for it.
//!
//! Evidence counts only when it matches a ping this node has outstanding to that address,
//! so a forged ICMP message cannot accuse an arbitrary member:
//!
//! - the probe of the current period, not yet acked: `Port` declares the member failed at
//!   once (its process is gone); `Host` ends the probe now and suspects it (without
//!   waiting for the indirect probes), since a local routing fault would make every member
//!   look unreachable and must not fail them all;
//! - a verification ping: when this node hears of a suspicion it did not raise, it pings
//!   the suspect once (the ping tells the suspect it is suspected, so a live one refutes at
//!   once); `Port` for that ping declares the member failed.
//!
//! So a crashed process is declared failed by the first prober, and every other member
//! confirms it with its own ping as soon as the news reaches it, instead of each waiting
//! out a suspicion timeout. A process restarted at the same address has its socket open
//! again: it answers pings, produces no evidence, and refutes with a higher incarnation.

use core::net::SocketAddr;

use super::Node;
use super::transmit::Outgoing;
use crate::member::Status;
use crate::time::Instant;
use crate::wire::DropReason;

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
    /// Feeds in that a datagram this node sent to `to` could not be delivered (`kind`).
    ///
    /// Accepted when it matches a ping this node has outstanding to `to` (see the module
    /// docs, and `docs/PROTOCOL.md`): then `Port` declares the member there failed, and
    /// `Host` ends this period's probe of it as failed. Counted in
    /// [`Stats::unreachable_evidence`](crate::Stats::unreachable_evidence).
    ///
    /// # Errors
    /// [`DropReason::Ignored`] when nothing matches (counted in
    /// [`Stats::unreachable_ignored`](crate::Stats::unreachable_ignored)): no outstanding
    /// ping to that address, an answered one, or a node that is not running.
    pub fn handle_unreachable(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: Unreachable,
    ) -> Result<(), DropReason> {
        let probed = self
            .probe
            .filter(|p| !p.acked())
            .map(|p| usize::from(p.target))
            .filter(|&i| {
                self.table
                    .get(i)
                    .is_some_and(|s| s.addr == to && s.status.is_live())
            });
        let verified = || {
            self.table.remote_range().find(|&i| {
                self.table.get(i).is_some_and(|s| {
                    s.addr == to
                        && s.status == Status::Suspect
                        && s.suspicion.as_ref().is_some_and(|v| v.verifying())
                })
            })
        };
        let (i, by_probe) = match (probed, kind) {
            (Some(i), _) => (i, true),
            (None, Unreachable::Port) => match verified() {
                Some(i) => (i, false),
                None => return self.unmatched(),
            },
            (None, Unreachable::Host) => return self.unmatched(),
        };
        if self.phase != super::Phase::Running {
            return self.unmatched();
        }
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

    /// Pings member `i`, suspected on another member's word, once: it learns it is
    /// suspected (and refutes at once if alive), and an ICMP port unreachable for the ping
    /// is this node's own evidence that it is gone.
    pub(super) fn verify_suspicion(&mut self, i: usize) {
        let seq = self.next_seq();
        let Some(s) = self.table.get_mut(i) else {
            return;
        };
        let Some(sus) = s.suspicion.as_mut() else {
            return;
        };
        sus.set_verifying();
        let (to, target, suspected) = (s.addr, s.name.clone(), Some(s.incarnation));
        self.stats.suspicions_verified += 1;
        self.enqueue(Outgoing::Ping {
            to,
            seq,
            target,
            suspected,
        });
    }
}
