//! The handlers' task: coalesce member events before choosing handlers (as Serf does),
//! queue the invocations of each lane, and run one invocation at a time per lane.
//!
//! A lane is one queue with its own coalescer fed with every member event, whatever its
//! handlers subscribe to, so "last delivered" is per member across all event types: a
//! join after a failure is news even to a handler that only takes joins. By default all
//! handlers share one lane (Serf's order); with `parallel` each handler has its own.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::coalesce::Coalescer;
use super::invoke::{self, Invocation};
use super::{HandlerSettings, HandlerSpec, HandlerStats};
use crate::agent::{EventStream, Handle};
use crate::deadline::sleep_until;
use crate::event::AgentEvent;
use crate::member::MemberInfo;
use crate::subprocess::Outcome;

/// User-event invocations queued in one lane before the oldest are dropped.
const USER_QUEUE: usize = 256;

/// One handler run for one event or batch.
#[derive(Debug)]
struct Job {
    spec: Arc<HandlerSpec>,
    inv: Invocation,
}

/// One queue of invocations, run one at a time.
#[derive(Debug)]
struct Lane {
    /// Names the lane in the dispatcher's "invocation done" messages.
    id: u64,
    /// Its handlers, in the order they were given; none once a reload retired the lane
    /// (it then only runs what it had queued).
    handlers: Vec<Arc<HandlerSpec>>,
    /// Whether any of them takes member events (else nothing is coalesced).
    takes_members: bool,
    coalescer: Coalescer,
    /// Member batches waiting to run; they go before waiting user events.
    members: VecDeque<Job>,
    /// User events waiting to run, at most [`USER_QUEUE`].
    users: VecDeque<Job>,
    running: bool,
}

impl Lane {
    fn new(id: u64, handlers: Vec<Arc<HandlerSpec>>, settings: &HandlerSettings) -> Self {
        Lane {
            id,
            takes_members: handlers.iter().any(|h| h.wants_any_member_event()),
            handlers,
            coalescer: Coalescer::new(settings.coalesce_quiet, settings.coalesce_max),
            members: VecDeque::new(),
            users: VecDeque::new(),
            running: false,
        }
    }

    /// Gives the lane other handlers: what it has queued runs as queued, and what it has
    /// coalesced goes to the new handlers.
    fn set_handlers(&mut self, handlers: Vec<Arc<HandlerSpec>>) {
        self.takes_members = handlers.iter().any(|h| h.wants_any_member_event());
        self.handlers = handlers;
    }

    /// A lane a reload retired, with nothing left to run.
    fn is_spent(&self) -> bool {
        self.handlers.is_empty()
            && !self.running
            && self.members.is_empty()
            && self.users.is_empty()
    }

    /// Records a member event (every type, for every lane that takes member events).
    fn add_member(&mut self, now: Instant, kind: &'static str, member: &MemberInfo) {
        if self.takes_members {
            self.coalescer.add(now, kind, member.clone());
        }
    }

    /// Queues a user event for the handlers that take it; returns how many queued
    /// invocations were dropped to make room.
    fn add_user(&mut self, event: &AgentEvent, inv: &Invocation) -> u64 {
        let mut dropped = 0;
        for spec in self.handlers.iter().filter(|h| h.wants(event)) {
            if self.users.len() >= USER_QUEUE {
                self.users.pop_front();
                dropped += 1;
            }
            self.users.push_back(Job {
                spec: spec.clone(),
                inv: inv.clone(),
            });
        }
        dropped
    }

    /// When the coalesced batch may be released: it is due, and the previous batch has
    /// started (so events keep merging while a batch waits).
    fn due_at(&self) -> Option<Instant> {
        self.coalescer.due_at().filter(|_| self.members.is_empty())
    }

    /// Releases the coalesced batch if it is due at `now`: per event type (in a fixed
    /// order), one invocation per handler taking it (in the given order).
    fn flush(&mut self, now: Instant) {
        if self.due_at().is_none_or(|at| at > now) {
            return;
        }
        for (kind, members) in self.coalescer.take() {
            let inv = Invocation::members(kind, &members);
            for spec in self.handlers.iter().filter(|h| h.wants_members(kind)) {
                self.members.push_back(Job {
                    spec: spec.clone(),
                    inv: inv.clone(),
                });
            }
        }
    }

    /// The next invocation to start, if the lane is idle.
    fn next_job(&mut self) -> Option<Job> {
        if self.running {
            return None;
        }
        let job = self
            .members
            .pop_front()
            .or_else(|| self.users.pop_front())?;
        self.running = true;
        Some(job)
    }

    /// Events this lane will not deliver: queued invocations and coalesced members.
    fn undelivered(&self) -> usize {
        self.members.len() + self.users.len() + self.coalescer.pending()
    }
}

/// The task behind [`super::Handlers`].
pub(super) struct Dispatcher {
    settings: HandlerSettings,
    events: EventStream,
    /// Missed events of `events` already counted in the stats.
    lag_counted: u64,
    me: watch::Receiver<MemberInfo>,
    stats: Arc<HandlerStats>,
    lanes: Vec<Lane>,
    /// The id of the next lane.
    next_lane: u64,
    /// Lanes (by id) whose invocation ended.
    done_tx: mpsc::UnboundedSender<u64>,
    done_rx: mpsc::UnboundedReceiver<u64>,
    /// New handlers and settings (`SIGHUP`).
    reloads: mpsc::UnboundedReceiver<(Vec<HandlerSpec>, HandlerSettings)>,
}

/// The handlers that share a lane: all of them, or (`parallel`) each its own.
fn lane_groups(specs: Vec<HandlerSpec>, parallel: bool) -> Vec<Vec<Arc<HandlerSpec>>> {
    let specs: Vec<_> = specs.into_iter().map(Arc::new).collect();
    if parallel {
        specs.into_iter().map(|s| vec![s]).collect()
    } else if specs.is_empty() {
        Vec::new()
    } else {
        vec![specs]
    }
}

impl Dispatcher {
    /// Subscribes to `handle`'s events now (so the agent's own join is seen).
    pub(super) fn new(
        specs: Vec<HandlerSpec>,
        settings: HandlerSettings,
        handle: &Handle,
        stats: Arc<HandlerStats>,
        reloads: mpsc::UnboundedReceiver<(Vec<HandlerSpec>, HandlerSettings)>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut d = Dispatcher {
            settings,
            events: handle.events(),
            lag_counted: 0,
            me: handle.watch_local(),
            stats,
            lanes: Vec::new(),
            next_lane: 0,
            done_tx,
            done_rx,
            reloads,
        };
        d.reload(specs, settings);
        d
    }

    /// Takes new handlers: a lane whose handlers are unchanged goes on as it is; the other
    /// lanes are given the new handler groups in order (their queued invocations run as
    /// queued, their coalesced events go to the new handlers); lanes left over retire once
    /// their queues are empty, and groups left over get new lanes.
    fn reload(&mut self, specs: Vec<HandlerSpec>, settings: HandlerSettings) {
        self.settings = settings;
        let mut old = std::mem::take(&mut self.lanes);
        let mut unmatched = Vec::new();
        for group in lane_groups(specs, settings.parallel) {
            match old
                .iter()
                .position(|l| !l.handlers.is_empty() && l.handlers == group)
            {
                Some(i) => self.lanes.push(old.remove(i)),
                None => unmatched.push(group),
            }
        }
        for group in unmatched {
            let lane = match old.is_empty() {
                false => {
                    let mut lane = old.remove(0);
                    lane.set_handlers(group);
                    lane
                }
                true => {
                    self.next_lane += 1;
                    Lane::new(self.next_lane, group, &settings)
                }
            };
            self.lanes.push(lane);
        }
        for mut lane in old {
            lane.set_handlers(Vec::new());
            if !lane.is_spent() {
                self.lanes.push(lane);
            }
        }
    }

    /// Runs until the agent stops, then waits for the running invocations (each ends
    /// within the handler timeout) and counts what was left undelivered.
    pub(super) async fn run(mut self) {
        loop {
            let due = self.lanes.iter().filter_map(Lane::due_at).min();
            tokio::select! {
                event = self.events.next() => match event {
                    Some(e) => self.accept(e),
                    None => break,
                },
                () = sleep_until(due), if due.is_some() => {
                    let now = Instant::now();
                    for lane in &mut self.lanes {
                        lane.flush(now);
                    }
                }
                Some(id) = self.done_rx.recv() => {
                    if let Some(lane) = self.lanes.iter_mut().find(|l| l.id == id) {
                        lane.running = false;
                    }
                    self.lanes.retain(|l| !l.is_spent());
                }
                Some((specs, settings)) = self.reloads.recv() => self.reload(specs, settings),
            }
            self.start_ready();
        }
        self.count_lag();
        let undelivered: usize = self.lanes.iter().map(Lane::undelivered).sum();
        HandlerStats::bump(&self.stats.events_dropped, undelivered as u64);
        let mut running = self.lanes.iter().filter(|l| l.running).count();
        while running > 0 && self.done_rx.recv().await.is_some() {
            running -= 1;
        }
    }

    fn accept(&mut self, event: AgentEvent) {
        self.count_lag();
        match &event {
            AgentEvent::User(u) => {
                let inv = Invocation::user(&u.name, u.ltime, &u.payload);
                let dropped: u64 = self
                    .lanes
                    .iter_mut()
                    .map(|l| l.add_user(&event, &inv))
                    .sum();
                if dropped > 0 {
                    HandlerStats::bump(&self.stats.events_dropped, dropped);
                    tracing::warn!(
                        dropped,
                        "handler queue full: dropped its oldest user events"
                    );
                }
            }
            other => {
                if let (Some(kind), Some(m)) = (other.handler_name(), other.member()) {
                    let now = Instant::now();
                    for lane in &mut self.lanes {
                        lane.add_member(now, kind, m);
                    }
                }
            }
        }
    }

    /// Counts the events the subscription missed since the last count, so `rumor info`
    /// shows them at once.
    fn count_lag(&mut self) {
        let total = self.events.lagged();
        if total > self.lag_counted {
            HandlerStats::bump(&self.stats.events_dropped, total - self.lag_counted);
            self.lag_counted = total;
        }
    }

    /// Starts the next invocation of every idle lane.
    fn start_ready(&mut self) {
        for lane in &mut self.lanes {
            let Some(job) = lane.next_job() else {
                continue;
            };
            let id = lane.id;
            let me = self.me.borrow().clone();
            let (settings, stats, done) = (self.settings, self.stats.clone(), self.done_tx.clone());
            tokio::spawn(async move {
                invoke_logged(&job, me, settings, &stats).await;
                let _ = done.send(id);
            });
        }
    }
}

/// Runs one invocation and records how it went. Output is logged at debug level on
/// success and with the warning on failure, as Serf does.
async fn invoke_logged(job: &Job, me: MemberInfo, settings: HandlerSettings, stats: &HandlerStats) {
    HandlerStats::bump(&stats.invocations, 1);
    let (script, inv) = (job.spec.script.as_str(), &job.inv);
    tracing::debug!(event = inv.event, script, "running handler");
    match invoke::run(script, inv, &me, settings.timeout).await {
        Outcome::Exited {
            status,
            stdout,
            stderr,
        } => {
            let (out, err) = (stdout.trim_end(), stderr.trim_end());
            if status.success() {
                HandlerStats::bump(&stats.succeeded, 1);
                tracing::debug!(
                    event = inv.event,
                    script,
                    stdout = out,
                    stderr = err,
                    "handler done"
                );
            } else {
                HandlerStats::bump(&stats.failed, 1);
                tracing::warn!(event = inv.event, script, %status, stdout = out, stderr = err, "handler failed");
            }
        }
        Outcome::TimedOut { .. } => {
            HandlerStats::bump(&stats.timed_out, 1);
            tracing::warn!(event = inv.event, script, timeout = ?settings.timeout, "handler timed out and was killed");
        }
        Outcome::SpawnFailed(e) => {
            HandlerStats::bump(&stats.spawn_errors, 1);
            tracing::error!(event = inv.event, script, error = %e, "cannot start handler");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_member as member;
    use std::time::Duration;

    fn lane(specs: &[&str]) -> Lane {
        let handlers = specs
            .iter()
            .map(|s| Arc::new(HandlerSpec::parse(s).unwrap()))
            .collect();
        let settings = HandlerSettings {
            coalesce_quiet: Duration::from_secs(1),
            coalesce_max: Duration::from_secs(3),
            ..HandlerSettings::default()
        };
        Lane::new(1, handlers, &settings)
    }

    /// Adds one member event and releases it at once (a delivery).
    fn deliver(lane: &mut Lane, kind: &'static str, name: &str) {
        let t0 = Instant::now();
        lane.add_member(t0, kind, &member(name));
        lane.flush(t0 + Duration::from_secs(3));
    }

    /// Runs every queued job, returning `(script, event)` of each.
    fn drain(lane: &mut Lane) -> Vec<(String, &'static str)> {
        let mut ran = Vec::new();
        while let Some(job) = lane.next_job() {
            ran.push((job.spec.script.clone(), job.inv.event));
            lane.running = false;
        }
        ran
    }

    fn ran(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        list.iter().map(|(s, e)| (s.to_string(), *e)).collect()
    }

    #[test]
    fn split_handlers_get_every_rejoin_and_every_failure() {
        let mut l = lane(&[
            "member-join=join.sh",
            "member-leave,member-failed=leave.sh",
            "member-update=update.sh",
        ]);
        deliver(&mut l, "member-join", "s1");
        assert_eq!(drain(&mut l), ran(&[("join.sh", "member-join")]));
        for _ in 0..2 {
            deliver(&mut l, "member-failed", "s1");
            assert_eq!(drain(&mut l), ran(&[("leave.sh", "member-failed")]));
            deliver(&mut l, "member-join", "s1");
            assert_eq!(drain(&mut l), ran(&[("join.sh", "member-join")]));
        }
        // A failure after an update, a leave after a failure.
        for (kind, script) in [
            ("member-update", "update.sh"),
            ("member-failed", "leave.sh"),
            ("member-leave", "leave.sh"),
        ] {
            deliver(&mut l, kind, "s1");
            assert_eq!(drain(&mut l), ran(&[(script, kind)]));
        }
        deliver(&mut l, "member-join", "s1");
        assert_eq!(drain(&mut l), ran(&[("join.sh", "member-join")]));
    }

    #[test]
    fn a_batch_goes_to_every_matching_handler_in_order() {
        let mut l = lane(&[
            "a.sh",
            "member-failed=f.sh",
            "member-join=j.sh",
            "user=u.sh",
        ]);
        let t0 = Instant::now();
        l.add_member(t0, "member-join", &member("s1"));
        l.add_member(t0, "member-failed", &member("s2"));
        l.flush(t0 + Duration::from_secs(1));
        assert_eq!(
            drain(&mut l),
            ran(&[
                ("a.sh", "member-join"),
                ("j.sh", "member-join"),
                ("a.sh", "member-failed"),
                ("f.sh", "member-failed"),
            ])
        );
    }

    #[test]
    fn member_batches_go_before_waiting_user_events_and_merge_while_one_waits() {
        let mut l = lane(&["a.sh"]);
        let user = AgentEvent::User(crate::event::UserEventInfo {
            origin: "a".into(),
            ltime: 1,
            name: "e".into(),
            payload: vec![],
        });
        let inv = Invocation::user("e", 1, b"");
        for _ in 0..3 {
            assert_eq!(l.add_user(&user, &inv), 0);
        }
        // One user event runs; the others wait.
        assert_eq!(l.next_job().map(|j| j.inv.event), Some("user"));
        deliver(&mut l, "member-join", "s1");
        // s1 fails and s2 joins while the join batch waits: no new batch yet.
        let t1 = Instant::now();
        l.add_member(t1, "member-failed", &member("s1"));
        l.add_member(t1, "member-join", &member("s2"));
        assert_eq!(l.due_at(), None);
        l.flush(t1 + Duration::from_secs(10));
        assert_eq!(l.members.len(), 1);
        l.running = false;
        assert_eq!(l.next_job().map(|j| j.inv.event), Some("member-join"));
        // The batch has started: the merged events may go.
        assert!(l.due_at().is_some());
        l.flush(t1 + Duration::from_secs(10));
        l.running = false;
        assert_eq!(
            drain(&mut l),
            ran(&[
                ("a.sh", "member-join"),
                ("a.sh", "member-failed"),
                ("a.sh", "user"),
                ("a.sh", "user"),
            ])
        );
    }

    #[test]
    fn a_full_user_queue_drops_its_oldest() {
        let mut l = lane(&["user=u.sh", "user:e=e.sh", "member-join=j.sh"]);
        let ev = |ltime| {
            AgentEvent::User(crate::event::UserEventInfo {
                origin: "a".into(),
                ltime,
                name: "e".into(),
                payload: vec![],
            })
        };
        let mut dropped = 0;
        for t in 0..(USER_QUEUE as u32 / 2 + 1) {
            dropped += l.add_user(&ev(t), &Invocation::user("e", t, b""));
        }
        // Two handlers take each event: one event too many.
        assert_eq!(dropped, 2);
        assert_eq!(l.users.len(), USER_QUEUE);
        assert_eq!(
            l.users
                .front()
                .and_then(|j| j.inv.user.clone())
                .map(|u| u.1),
            Some(1)
        );
        assert_eq!(l.undelivered(), USER_QUEUE);
    }
}
