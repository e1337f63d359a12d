//! Push-pull anti-entropy: periodic sessions with a random live member, a failed one and a
//! remembered seed; join retries; sessions sent chunk by chunk (the member table, then the
//! buffered user events); and incoming chunks.

use core::net::SocketAddr;

use super::transmit::user_update;
use super::{Event, Node, Phase};
use crate::member::Status;
use crate::name::Name;
use crate::time::{Duration, Instant};
use crate::wire::{Encoder, Message, SyncKind, Update, WireStatus};

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
    /// Only the local node's own state: a request to an address that is not a live member.
    own_only: bool,
}

impl SyncSession {
    pub(super) fn request(to: SocketAddr, join: bool) -> Self {
        SyncSession {
            to,
            kind: SyncKind::Request { first: true, join },
            cursor: 0,
            event: 0,
            own_only: false,
        }
    }

    /// A request carrying only the local node's state: to a remembered seed that is not a
    /// live member, which answers with its table if it is in a cluster, so the table goes
    /// only where it was asked for.
    pub(super) fn own_state(to: SocketAddr) -> Self {
        SyncSession {
            own_only: true,
            ..Self::request(to, false)
        }
    }

    pub(super) fn response(to: SocketAddr) -> Self {
        SyncSession {
            to,
            kind: SyncKind::Response,
            cursor: 0,
            event: 0,
            own_only: false,
        }
    }
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// Memberlist's push-pull interval, scaled up past 32 members.
    pub(super) fn push_pull_interval(&self) -> Duration {
        let n = self.live_count().max(1) as u64;
        let log2_ceil = u64::from(64 - (n - 1).leading_zeros());
        let mult = if n > 32 { log2_ceil - 5 + 1 } else { 1 };
        self.config.push_pull_interval.saturating_mul(mult)
    }

    /// Anti-entropy with one random live member; a reconnect attempt with one failed
    /// member so that a healed partition merges back (Serf's reconnect, over UDP); and, when
    /// a remembered seed is not a live member, a request carrying only our own state, so that
    /// two sides that reaped each other during a long partition still find each other
    /// without sending the table to an address that may no longer be in any cluster.
    pub(super) fn push_pull(&mut self, now: Instant) {
        self.timers.push_pull = Some(now + self.push_pull_interval());
        let live: heapless::Vec<usize, 1> = self.random_members(1, None, Status::is_live);
        let failed: heapless::Vec<usize, 1> = self.random_members(1, None, |s| s == Status::Failed);
        for i in live.into_iter().chain(failed) {
            if let Some(to) = self.table.get(i).map(|s| s.addr) {
                self.start_sync(to, SyncSession::request(to, false));
            }
        }
        let remembered = &self.join.remembered;
        if !remembered.is_empty() {
            let seed = remembered[self.rng.below(remembered.len())];
            let is_live_member = self.table.remote_range().any(|i| {
                self.table
                    .get(i)
                    .is_some_and(|s| s.addr == seed && s.status.is_live())
            });
            if !is_live_member {
                self.start_sync(seed, SyncSession::own_state(seed));
            }
        }
    }

    pub(super) fn retry_join(&mut self, now: Instant) {
        if self.join.seeds.is_empty() {
            self.timers.join = None;
            return;
        }
        // As many seeds as push-pull sessions fit, rotating, so every seed gets its turn.
        let n = self.join.seeds.len();
        for k in 0..n.min(super::SYNCS) {
            let to = self.join.seeds[(self.join.next + k) % n];
            self.start_sync(to, SyncSession::request(to, true));
        }
        self.join.next = (self.join.next + super::SYNCS) % n;
        self.timers.join = Some(now + self.join.backoff);
        self.join.backoff = (self.join.backoff.saturating_mul(2)).min(self.config.join_retry_max);
    }

    /// Queues a push-pull session, replacing an older one to the same peer.
    pub(super) fn start_sync(&mut self, to: SocketAddr, session: SyncSession) {
        self.syncs.retain(|s| s.to != to);
        if self.syncs.push(session).is_err() {
            self.stats.outbox_full += 1;
            return;
        }
        if matches!(session.kind, crate::wire::SyncKind::Request { .. }) {
            self.stats.syncs_started += 1;
        }
    }

    /// The next chunk of the first push-pull session: as many member states as fit, then
    /// the buffered user events. Returns the destination and encoded length.
    pub(super) fn sync_chunk(&mut self, buf: &mut [u8], gap: usize) -> Option<(SocketAddr, usize)> {
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
        let end = if session.own_only {
            1
        } else {
            self.table.used()
        };
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
        // Oldest first; events too old for the de-duplication window are not replayed.
        let events = if session.own_only { 0 } else { self.user.len() };
        while session.cursor >= end && session.event < events {
            let fits = match self.user.replay(session.event) {
                Some(e) => {
                    let fits = enc.push(&user_update(e));
                    entries += usize::from(fits);
                    fits
                }
                None => true,
            };
            if !fits {
                if entries == 0 {
                    session.event += 1;
                }
                break;
            }
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

    /// A ping naming this node came from `from`. When no live member of the table is at
    /// that address, the sender is most likely a member whose announcement this node
    /// missed: a push-pull with a random live member, which most likely knows it, starts
    /// now rather than up to 1.5 push-pull intervals later. The stranger itself gets only
    /// the ack (its address may be forged). At most once per quarter push-pull interval;
    /// never while joining, when the seeds' challenges ping us.
    pub(super) fn on_stranger_ping(&mut self, now: Instant, from: SocketAddr) {
        if self.phase != Phase::Running
            || !self.join.seeds.is_empty()
            || now < self.strangers_quiet_until
        {
            return;
        }
        let known = self.table.remote_range().any(|i| {
            self.table
                .get(i)
                .is_some_and(|s| s.addr == from && s.status.is_live())
        });
        if known {
            return;
        }
        let live: heapless::Vec<usize, 1> = self.random_members(1, None, Status::is_live);
        let Some(to) = live
            .first()
            .and_then(|&i| self.table.get(i))
            .map(|s| s.addr)
        else {
            return;
        };
        self.strangers_quiet_until = now + self.push_pull_interval().div(4);
        self.stats.strangers_pulled += 1;
        self.start_sync(to, SyncSession::request(to, false));
    }

    /// A push-pull chunk: its clock, then, by kind, an answer to a first request or the
    /// end of a join.
    pub(super) fn on_sync(
        &mut self,
        now: Instant,
        from: SocketAddr,
        kind: SyncKind,
        ltime: u32,
        requester: Option<Name>,
    ) {
        self.stats.sync_chunks_received += 1;
        // A newcomer takes its seed's clock whatever it is; a running node only
        // within the window (docs/PROTOCOL.md, counters).
        let joining = kind == SyncKind::Response && !self.join.seeds.is_empty();
        if !joining && self.user.too_far(ltime) {
            self.stats.ltimes_too_far += 1;
        } else {
            self.user.catch_up(ltime);
        }
        match kind {
            SyncKind::Request { first: true, .. } if self.phase == Phase::Running => {
                self.on_sync_request(now, from, requester);
            }
            SyncKind::Response if !self.join.seeds.is_empty() => {
                self.join.seeds.clear();
                self.timers.join = None;
                if !self.config.replay_user_events {
                    self.user.set_floor(ltime);
                }
                self.push_event(Event::Joined { via: from });
            }
            _ => {}
        }
    }
}
