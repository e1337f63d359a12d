//! Counters of everything a node did and everything it refused.

use crate::wire::DropReason;

/// Monotonic counters. Every dropped datagram, refused member and lost event is counted
/// here by reason, so nothing disappears silently.
///
/// It serializes (with serde) as a map from field name to value, so an adapter can report
/// every counter, including ones added later, without listing them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams accepted and processed.
    pub datagrams_received: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Bytes of accepted datagrams.
    pub bytes_received: u64,
    /// Bytes handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// Dropped: shorter than a header.
    pub dropped_truncated: u64,
    /// Dropped: longer than the largest datagram.
    pub dropped_oversized: u64,
    /// Dropped: unknown protocol version.
    pub dropped_version: u64,
    /// Dropped: envelope this node cannot open.
    pub dropped_envelope: u64,
    /// Dropped: another cluster's id.
    pub dropped_cluster: u64,
    /// Dropped: body malformed or a field out of range.
    pub dropped_malformed: u64,
    /// Dropped: well-formed but not for this node (wrong target name, sent after leaving).
    pub dropped_ignored: u64,
    /// Dropped: failed authentication with every installed key.
    pub dropped_unauthenticated: u64,
    /// Dropped: plaintext while encryption is on and plaintext is refused.
    pub dropped_plaintext: u64,
    /// Probes started.
    pub probes: u64,
    /// Probes that got no ack, directly or indirectly.
    pub probes_failed: u64,
    /// Indirect probe requests sent to helpers.
    pub indirect_probes: u64,
    /// Nacks received from helpers.
    pub nacks_received: u64,
    /// Suspicions this node raised or learned.
    pub suspicions: u64,
    /// Times this node refuted a claim about itself.
    pub refutations: u64,
    /// Members declared failed (by this node or by gossip).
    pub failures: u64,
    /// Newcomers not tracked because the member table was full of live members, or of
    /// failed or left ones not reported yet or still within their time to refute.
    pub members_refused: u64,
    /// Failed or left members evicted early (once reported) to make room for a newcomer.
    pub members_evicted: u64,
    /// Claims that a member evicted to make room is alive at an incarnation no higher than
    /// the one it was evicted at: stale news of that member, ignored.
    pub evicted_claims_stale: u64,
    /// Claims by a member, from its own address, that it is alive at an incarnation no
    /// higher than the failure, leave or eviction this node holds for it: answered with
    /// that record, so that the member refutes it (see `docs/PROTOCOL.md`).
    pub stale_self_claims_answered: u64,
    /// ICMP evidence (`Node::handle_unreachable`) that matched an outstanding ping and was
    /// acted on: a member declared failed, or a probe ended early.
    pub unreachable_evidence: u64,
    /// ICMP evidence that matched no outstanding ping: ignored.
    pub unreachable_ignored: u64,
    /// Suspicions raised on another member's word that this node checked with a ping of
    /// its own.
    pub suspicions_verified: u64,
    /// Failed or left members reaped after the timeout (each reported by
    /// `Event::MemberReaped`).
    pub members_reaped: u64,
    /// Updates dropped from a full queue before they were fully retransmitted.
    pub updates_evicted: u64,
    /// User events delivered to the application.
    pub user_events: u64,
    /// User events evicted from the full buffer before the application polled them.
    pub user_events_lost: u64,
    /// User events evicted from the full buffer while still being gossiped (before their
    /// last retransmission): members that missed them cannot get them by push-pull either.
    pub user_events_cut: u64,
    /// User events dropped as too old to judge (older than every event the de-duplication
    /// window remembers): a replay of one delivered already, or one lost if never seen here.
    pub user_events_stale: u64,
    /// Outgoing messages dropped because the outbox was full.
    pub outbox_full: u64,
    /// Events dropped because the event queue was full.
    pub events_lost: u64,
    /// Push-pull exchanges started (joins included).
    pub syncs_started: u64,
    /// Push-pull chunks received.
    pub sync_chunks_received: u64,
    /// Push-pull requests from a source not verified yet, answered with a challenge ping
    /// first (anti-amplification).
    pub syncs_challenged: u64,
    /// Push-pull requests from a source not verified yet that named no requester, left
    /// unanswered.
    pub syncs_unverified: u64,
    /// Updates of a kind this version does not know, skipped (sent by a newer version).
    pub updates_unknown: u64,
    /// Probes whose deadline passed while the caller was stalled, given more time rather
    /// than judged failed.
    pub probes_graced: u64,
    /// Push-pull sessions started early because an address that no live member of the
    /// table has pinged this node by name (a member whose announcement was missed; at most
    /// one every quarter push-pull interval).
    pub strangers_pulled: u64,
    /// Name conflicts detected.
    pub name_conflicts: u64,
    /// User events and push-pull clocks ignored for a Lamport time more than
    /// [`LTIME_WINDOW`](crate::LTIME_WINDOW) ahead of this node's clock.
    pub ltimes_too_far: u64,
    /// Claims ignored for an incarnation more than
    /// [`INCARNATION_WINDOW`](crate::INCARNATION_WINDOW) above the one this node knows.
    pub incarnations_too_far: u64,
    /// Current local health score (0 is healthy).
    pub health_score: u64,
}

impl Stats {
    /// All counters at zero.
    pub const ZERO: Stats = Stats {
        datagrams_received: 0,
        datagrams_sent: 0,
        bytes_received: 0,
        bytes_sent: 0,
        dropped_truncated: 0,
        dropped_oversized: 0,
        dropped_version: 0,
        dropped_envelope: 0,
        dropped_cluster: 0,
        dropped_malformed: 0,
        dropped_ignored: 0,
        dropped_unauthenticated: 0,
        dropped_plaintext: 0,
        probes: 0,
        probes_failed: 0,
        indirect_probes: 0,
        nacks_received: 0,
        suspicions: 0,
        refutations: 0,
        failures: 0,
        members_refused: 0,
        members_evicted: 0,
        evicted_claims_stale: 0,
        stale_self_claims_answered: 0,
        unreachable_evidence: 0,
        unreachable_ignored: 0,
        suspicions_verified: 0,
        members_reaped: 0,
        updates_evicted: 0,
        user_events: 0,
        user_events_lost: 0,
        user_events_cut: 0,
        user_events_stale: 0,
        outbox_full: 0,
        events_lost: 0,
        syncs_started: 0,
        sync_chunks_received: 0,
        syncs_challenged: 0,
        syncs_unverified: 0,
        updates_unknown: 0,
        probes_graced: 0,
        strangers_pulled: 0,
        name_conflicts: 0,
        ltimes_too_far: 0,
        incarnations_too_far: 0,
        health_score: 0,
    };

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Truncated => &mut self.dropped_truncated,
            DropReason::Oversized => &mut self.dropped_oversized,
            DropReason::Version => &mut self.dropped_version,
            DropReason::Envelope => &mut self.dropped_envelope,
            DropReason::Cluster => &mut self.dropped_cluster,
            DropReason::Malformed => &mut self.dropped_malformed,
            DropReason::Ignored => &mut self.dropped_ignored,
            DropReason::Unauthenticated => &mut self.dropped_unauthenticated,
            DropReason::Plaintext => &mut self.dropped_plaintext,
        };
        *c += 1;
    }

    /// All datagrams dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_truncated
            + self.dropped_oversized
            + self.dropped_version
            + self.dropped_envelope
            + self.dropped_cluster
            + self.dropped_malformed
            + self.dropped_ignored
            + self.dropped_unauthenticated
            + self.dropped_plaintext
    }
}
