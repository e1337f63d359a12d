//! One handler's task: filter, coalesce, queue, and run one invocation at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::coalesce::Coalescer;
use super::invoke::{self, Invocation, Outcome};
use super::{HandlerSettings, HandlerSpec, HandlerStats};
use crate::agent::{EventStream, Handle};
use crate::deadline::sleep_until;
use crate::event::AgentEvent;
use crate::member::MemberInfo;

/// User events queued for one handler before the oldest are dropped.
const USER_QUEUE: usize = 256;

pub(super) struct Worker {
    spec: Arc<HandlerSpec>,
    settings: HandlerSettings,
    events: EventStream,
    me: watch::Receiver<MemberInfo>,
    stats: Arc<HandlerStats>,
    coalescer: Coalescer,
    queue: VecDeque<Invocation>,
    running: Option<JoinHandle<()>>,
}

impl Worker {
    pub(super) fn new(
        spec: HandlerSpec,
        settings: HandlerSettings,
        handle: &Handle,
        stats: Arc<HandlerStats>,
    ) -> Self {
        Worker {
            spec: Arc::new(spec),
            settings,
            events: handle.events(),
            me: handle.watch_local(),
            stats,
            coalescer: Coalescer::new(settings.coalesce_quiet, settings.coalesce_max),
            queue: VecDeque::new(),
            running: None,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            let idle = self.running.is_none();
            let due = self.coalescer.due_at().filter(|_| idle);
            tokio::select! {
                event = self.events.next() => match event {
                    Some(e) => self.accept(e),
                    None => break,
                },
                () = sleep_until(due), if due.is_some() => {
                    for (kind, members) in self.coalescer.take() {
                        self.queue.push_back(Invocation::members(kind, &members));
                    }
                }
                _ = async { self.running.as_mut().unwrap_or_else(|| unreachable!()).await }, if !idle => {
                    self.running = None;
                }
            }
            if self.running.is_none()
                && let Some(inv) = self.queue.pop_front()
            {
                self.running = Some(tokio::spawn(invoke_logged(
                    self.spec.clone(),
                    inv,
                    self.me.borrow().clone(),
                    self.settings,
                    self.stats.clone(),
                )));
            }
        }
        let missed = self.events.lagged();
        if missed > 0 {
            HandlerStats::bump(&self.stats.events_dropped, missed);
        }
    }

    fn accept(&mut self, event: AgentEvent) {
        if !self.spec.wants(&event) {
            return;
        }
        match event {
            AgentEvent::User(u) => {
                if self.queue.len() >= USER_QUEUE {
                    self.queue.pop_front();
                    HandlerStats::bump(&self.stats.events_dropped, 1);
                    tracing::warn!(script = %self.spec.script, "handler queue full: dropped its oldest event");
                }
                self.queue
                    .push_back(Invocation::user(&u.name, u.ltime, &u.payload));
            }
            other => {
                let kind = other.handler_name().unwrap_or_default();
                if let Some(m) = other.member() {
                    self.coalescer.add(Instant::now(), kind, m.clone());
                }
            }
        }
    }
}

/// Runs one invocation and records how it went.
async fn invoke_logged(
    spec: Arc<HandlerSpec>,
    inv: Invocation,
    me: MemberInfo,
    settings: HandlerSettings,
    stats: Arc<HandlerStats>,
) {
    HandlerStats::bump(&stats.invocations, 1);
    let script = spec.script.as_str();
    tracing::debug!(event = inv.event, script, "running handler");
    match invoke::run(script, &inv, &me, settings.timeout).await {
        Outcome::Exited {
            status,
            stdout,
            stderr,
        } => {
            let (out, err) = (stdout.trim_end(), stderr.trim_end());
            if status.success() {
                HandlerStats::bump(&stats.succeeded, 1);
                tracing::info!(
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
        Outcome::TimedOut => {
            HandlerStats::bump(&stats.timed_out, 1);
            tracing::warn!(event = inv.event, script, timeout = ?settings.timeout, "handler timed out and was killed");
        }
        Outcome::SpawnFailed(e) => {
            HandlerStats::bump(&stats.spawn_errors, 1);
            tracing::error!(event = inv.event, script, error = %e, "cannot start handler");
        }
    }
}
