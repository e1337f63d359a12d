//! The driving loop: one task owns the node and the socket, and follows the core's
//! contract — after every input, drain `poll_transmit` and `poll_event`, then sleep until
//! `poll_timeout` or the next datagram or command. One `Sleep` is reset only when the
//! deadline changes. When the timer fires, the datagrams already waiting in the socket are
//! read first, so a late timer never judges a probe whose ack is there unread. ICMP errors
//! queued on the socket (see `icmp.rs`) go to `Node::handle_unreachable`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumor_core::{Event, Instant, MAX_DATAGRAM, Tags};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::AgentNode;
use super::clock::Clock;
use super::command::{AgentStats, Command, DriverCounters, LeaveOutcome};
use super::icmp;
use super::keys::KeyStore;
use crate::deadline::earliest;
use crate::event::{AgentEvent, UserEventInfo};
use crate::member::MemberInfo;

/// Receive buffer: larger than any valid datagram, so oversized ones are seen whole and
/// dropped by the core as oversized instead of being truncated by the OS.
const RECV_BUFFER: usize = 64 * 1024;

/// Datagrams read from the socket before timers run, at most: bounds the time timers
/// wait behind a flood.
const PENDING_MAX: usize = 256;

/// A leave in progress.
#[derive(Debug)]
struct Leaving {
    deadline: Instant,
    waiters: Vec<oneshot::Sender<LeaveOutcome>>,
}

/// What woke the loop.
enum Input {
    Timer,
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Command(Option<Command>),
    /// An ICMP error from the socket's error queue.
    Unreachable(std::io::Result<icmp::QueuedError>),
}

pub(crate) struct Driver {
    node: Box<AgentNode>,
    socket: UdpSocket,
    clock: Clock,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<AgentEvent>,
    local: watch::Sender<MemberInfo>,
    counters: Arc<DriverCounters>,
    leave_timeout: Duration,
    /// How long the agent stays after its leave, before the loop ends.
    leave_propagate_delay: Duration,
    /// The socket queues ICMP errors (see `icmp.rs`): read them.
    icmp: bool,
    keys: KeyStore,
    leaving: Option<Leaving>,
    /// Set when the leave has been gossiped.
    left: bool,
    /// Once the leave is over (gossiped or timed out): when the loop ends.
    linger_until: Option<Instant>,
    /// Last known details of every member, so a reaped member can still be described.
    known: HashMap<String, MemberInfo>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl Driver {
    pub(crate) fn new(
        node: Box<AgentNode>,
        socket: UdpSocket,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<AgentEvent>,
        local: watch::Sender<MemberInfo>,
        counters: Arc<DriverCounters>,
        leave_timeout: Duration,
    ) -> Self {
        Driver {
            node,
            socket,
            clock: Clock::start(),
            commands,
            events,
            local,
            counters,
            leave_timeout,
            leave_propagate_delay: Duration::ZERO,
            icmp: false,
            keys: KeyStore::default(),
            leaving: None,
            left: false,
            linger_until: None,
            known: HashMap::new(),
            recv_buf: vec![0; RECV_BUFFER],
            send_buf: vec![0; MAX_DATAGRAM],
        }
    }

    /// Stays `delay` after a leave is over before the loop ends (by default it ends at once).
    pub(crate) fn with_leave_propagate_delay(mut self, delay: Duration) -> Self {
        self.leave_propagate_delay = delay;
        self
    }

    /// Reads the ICMP errors the socket queues (after [`icmp::enable`] succeeded).
    pub(crate) fn with_icmp(mut self, on: bool) -> Self {
        self.icmp = on;
        self
    }

    /// Saves keyring changes with `keys` (by default they are not saved).
    pub(crate) fn with_key_store(mut self, keys: KeyStore) -> Self {
        self.keys = keys;
        self
    }

    /// Runs until the leave is complete (or timed out), or every handle is gone.
    pub(crate) async fn run(mut self) {
        let me = MemberInfo::from_member(&self.node.local());
        self.publish(AgentEvent::MemberJoin { member: me });

        let sleep = tokio::time::sleep_until(self.clock.at(Instant::ZERO));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        // `now` of the last `handle_timeout`, until another input arrives.
        let mut timed_out_at: Option<Instant> = None;
        loop {
            let wake = match (self.next_wake(), timed_out_at) {
                // Still due right after a timeout ran: wait a millisecond rather than spin.
                (Some(w), Some(t)) if w <= t => Some(t + rumor_core::Duration::from_millis(1)),
                (w, _) => w,
            };
            if wake != armed {
                if let Some(t) = wake {
                    sleep.as_mut().reset(self.clock.at(t));
                }
                armed = wake;
            }
            let input = tokio::select! {
                biased;
                () = &mut sleep, if armed.is_some() => Input::Timer,
                cmd = self.commands.recv() => Input::Command(cmd),
                // Before datagrams: evidence waiting behind a flood would be stale.
                r = self.socket.async_io(Interest::ERROR, || {
                    icmp::read(&self.socket).ok_or_else(|| std::io::ErrorKind::WouldBlock.into())
                }), if self.icmp => Input::Unreachable(r),
                r = self.socket.recv_from(&mut self.recv_buf) => Input::Datagram(r),
            };
            let now = self.clock.now();
            timed_out_at = None;
            match input {
                Input::Timer => {
                    // Datagrams that arrived while the loop was not running (a stall, a
                    // busy machine) go first: an ack waiting in the socket must not be
                    // judged missing by the probe's timer.
                    self.read_pending(now);
                    self.node.handle_timeout(now);
                    timed_out_at = Some(now);
                    // The sleep has fired: arm it again even if the deadline is unchanged.
                    armed = None;
                }
                Input::Datagram(Ok((len, from))) => self.datagram(now, from, len),
                // With ICMP errors queued, a receive also reports the latest one once: the
                // error queue has it, and it is read there.
                Input::Datagram(Err(e)) if self.icmp && icmp::is_queued_error(&e) => {}
                Input::Datagram(Err(e)) => {
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "receive failed");
                }
                Input::Unreachable(Ok(e)) => {
                    let quoted = &e.quoted[..e.len];
                    if self
                        .node
                        .handle_unreachable(now, e.to, e.kind, quoted)
                        .is_ok()
                    {
                        tracing::debug!(to = %e.to, kind = ?e.kind, "unreachable: evidence taken");
                    }
                }
                Input::Unreachable(Err(e)) => {
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "reading the socket's error queue failed");
                }
                Input::Command(Some(cmd)) => self.command(now, cmd),
                Input::Command(None) => {
                    tracing::info!("every handle dropped: the agent stops");
                    return;
                }
            }
            self.flush(now).await;
            if self.leave_finished(now) {
                return;
            }
        }
    }

    /// Hands the datagram of `len` bytes in the receive buffer to the node.
    fn datagram(&mut self, now: Instant, from: SocketAddr, len: usize) {
        if let Err(reason) = self.node.handle_datagram(now, from, &self.recv_buf[..len]) {
            tracing::debug!(%from, len, ?reason, "dropped a datagram");
        }
    }

    /// Reads every datagram already waiting in the socket (at most [`PENDING_MAX`]),
    /// without waiting for more.
    fn read_pending(&mut self, now: Instant) {
        for _ in 0..PENDING_MAX {
            match self.socket.try_recv_from(&mut self.recv_buf) {
                Ok((len, from)) => self.datagram(now, from, len),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "receive failed");
                    return;
                }
            }
        }
    }

    /// The earliest of the node's deadline and the leave deadline.
    fn next_wake(&self) -> Option<Instant> {
        let leave = self
            .linger_until
            .or(self.leaving.as_ref().map(|l| l.deadline));
        earliest(self.node.poll_timeout(), leave)
    }

    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Members(reply) => {
                let members = self
                    .node
                    .members()
                    .map(|m| MemberInfo::from_member(&m))
                    .collect();
                let _ = reply.send(members);
            }
            Command::Join(seeds, reply) => {
                let mut result = Ok(());
                for seed in seeds {
                    if let Err(e) = self.node.join(now, seed) {
                        result = Err(e);
                    }
                }
                let _ = reply.send(result);
            }
            Command::Leave(reply) => match self.leaving.as_mut() {
                Some(l) => l.waiters.push(reply),
                None => {
                    tracing::info!("leaving the cluster");
                    self.node.leave(now);
                    self.leaving = Some(Leaving {
                        deadline: now + Clock::duration(self.leave_timeout),
                        waiters: vec![reply],
                    });
                    self.publish_local();
                }
            },
            Command::ForceLeave(name, reply) => {
                let result = self.node.force_leave(now, &name);
                match &result {
                    Ok(()) => tracing::info!(%name, "forcing a failed member out"),
                    Err(e) => tracing::info!(%name, reason = %e, "force-leave refused"),
                }
                let _ = reply.send(result);
            }
            Command::UserEvent {
                name,
                payload,
                reply,
            } => {
                let _ = reply.send(self.node.send_user_event(now, &name, &payload));
            }
            Command::UpdateTags { set, delete, reply } => {
                let result = updated_tags(self.node.local().tags(), &set, &delete);
                if let Ok(tags) = &result
                    && tags != self.node.local().tags()
                {
                    self.node.set_tags(now, tags.clone());
                    self.publish_local();
                    // Peers report the change as an update; so does the agent itself, as
                    // Serf does, for its own handlers.
                    let me = MemberInfo::from_member(&self.node.local());
                    self.publish(AgentEvent::MemberUpdate { member: me });
                }
                let _ = reply.send(result);
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats(now));
            }
            Command::Keyring { change, reply } => {
                let mut plaintext = self.node.plaintext();
                let result = self
                    .keys
                    .apply(self.node.keyring_mut(), &mut plaintext, change);
                self.node.set_plaintext(plaintext);
                let _ = reply.send(result);
            }
        }
    }

    fn stats(&self, now: Instant) -> AgentStats {
        let s = self.node.stats();
        AgentStats {
            local: MemberInfo::from_member(&self.node.local()),
            health: s.health_score,
            members: AgentStats::count_by_status(self.node.members().map(|m| m.status())),
            protocol: AgentStats::protocol_counters(s),
            send_errors: self.counters.send_errors.load(Ordering::Relaxed),
            recv_errors: self.counters.recv_errors.load(Ordering::Relaxed),
            keys: self.node.keyring().map_or(0, |k| k.keys().count()),
            uptime_ms: now.as_millis(),
        }
    }

    /// Sends every pending datagram, then reports every pending event.
    async fn flush(&mut self, now: Instant) {
        while let Some(t) = self.node.poll_transmit(now, &mut self.send_buf) {
            if let Err(e) = self.socket.send_to(&self.send_buf[..t.len], t.to).await {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to = %t.to, error = %e, "send failed");
            }
        }
        while let Some(event) = self.node.poll_event() {
            self.report(event);
        }
    }

    fn report(&mut self, event: Event) {
        let event = match event {
            Event::MemberJoined { name, .. } => AgentEvent::MemberJoin {
                member: self.refresh(&name),
            },
            Event::MemberUpdated { name, .. } => AgentEvent::MemberUpdate {
                member: self.refresh(&name),
            },
            Event::MemberSuspected { name, .. } => AgentEvent::MemberSuspect {
                member: self.refresh(&name),
            },
            Event::MemberLeft { name, .. } => AgentEvent::MemberLeave {
                member: self.refresh(&name),
            },
            Event::MemberFailed { name, .. } => AgentEvent::MemberFailed {
                member: self.refresh(&name),
            },
            Event::MemberReaped { name } => {
                let Some(member) = self.known.remove(name.as_str()) else {
                    tracing::debug!(%name, "reaped a member never reported");
                    return;
                };
                AgentEvent::MemberReap { member }
            }
            Event::MemberRefused { name, addr } => AgentEvent::MemberRefused {
                name: name.to_string(),
                addr,
            },
            Event::NameConflict { name, other } => AgentEvent::NameConflict {
                name: name.to_string(),
                other,
            },
            Event::User(u) => AgentEvent::User(UserEventInfo {
                origin: u.origin.to_string(),
                ltime: u.ltime,
                name: u.name.to_string(),
                payload: u.payload.to_vec(),
            }),
            Event::Joined { via } => AgentEvent::Joined { via },
            Event::LeaveComplete => {
                self.left = true;
                AgentEvent::LeaveComplete
            }
            other => {
                tracing::debug!(event = ?other, "core event this agent does not report");
                return;
            }
        };
        self.publish(event);
    }

    /// The member's current details (remembered for when it is reaped).
    fn refresh(&mut self, name: &str) -> MemberInfo {
        let info = match self.node.member(name) {
            Some(m) => MemberInfo::from_member(&m),
            // Events name members still in the table; keep the last details otherwise.
            None => self
                .known
                .get(name)
                .cloned()
                .unwrap_or_else(|| unreachable!("event about unknown member {name}")),
        };
        self.known.insert(info.name.clone(), info.clone());
        info
    }

    fn publish(&self, event: AgentEvent) {
        match &event {
            AgentEvent::MemberSuspect { .. } | AgentEvent::User(_) => {
                tracing::info!("{event}");
            }
            AgentEvent::MemberRefused { .. } | AgentEvent::NameConflict { .. } => {
                tracing::warn!("{event}");
            }
            AgentEvent::MemberJoin { member }
            | AgentEvent::MemberUpdate { member }
            | AgentEvent::MemberLeave { member }
            | AgentEvent::MemberFailed { member }
            | AgentEvent::MemberReap { member } => {
                let what = event.handler_name().unwrap_or_default();
                tracing::info!(name = %member.name, addr = %member.addr, status = %member.status, tags = %member.tags_joined(), "{what}");
            }
            AgentEvent::Joined { .. } | AgentEvent::LeaveComplete => tracing::info!("{event}"),
        }
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn publish_local(&self) {
        let me = MemberInfo::from_member(&self.node.local());
        self.local.send_replace(me);
    }

    /// True once a leave has completed or run out of time and the propagation delay has
    /// passed since; then wakes the waiters. Serf's `LeavePropagateDelay`: the agent stays
    /// (silent) while the others act on its leave, since whatever stops the service it
    /// announces typically waits for the agent to exit (the lab's supervision does).
    fn leave_finished(&mut self, now: Instant) -> bool {
        let outcome = match self.leaving.as_ref() {
            _ if self.left => LeaveOutcome::Complete,
            Some(l) if now >= l.deadline => LeaveOutcome::TimedOut,
            _ => return false,
        };
        let until = match self.linger_until {
            Some(until) => until,
            None => {
                if outcome == LeaveOutcome::TimedOut {
                    tracing::warn!("leave timed out before it was fully gossiped");
                }
                *self
                    .linger_until
                    .insert(now + Clock::duration(self.leave_propagate_delay))
            }
        };
        if now < until {
            return false;
        }
        if let Some(l) = self.leaving.take() {
            for w in l.waiters {
                let _ = w.send(outcome);
            }
        }
        true
    }
}

/// `current` with `delete` removed and `set` applied; nothing changes on error.
fn updated_tags(
    current: &Tags,
    set: &[(String, String)],
    delete: &[String],
) -> Result<Tags, rumor_core::TagError> {
    let mut tags = current.clone();
    for k in delete {
        tags.remove(k);
    }
    for (k, v) in set {
        tags.insert(k, v)?;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_updates_delete_then_set_and_are_all_or_nothing() {
        let current = Tags::new()
            .with("role", "web")
            .unwrap()
            .with("port", "80")
            .unwrap();
        let next = updated_tags(
            &current,
            &[("port".into(), "3000".into())],
            &["role".into()],
        )
        .unwrap();
        assert_eq!(next.get("port"), Some("3000"));
        assert_eq!(next.get("role"), None);
        assert!(updated_tags(&current, &[("bad key".into(), "x".into())], &[]).is_err());
    }
}
