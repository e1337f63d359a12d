//! One task per render target in an agent: member events are coalesced (quiet period and
//! maximum wait; a leave or failure is applied at once, so a load balancer stops sending
//! traffic to a member that is gone), then the target's [`Applier`] runs on a blocking
//! thread; a failure is retried with backoff until it succeeds or the next change
//! supersedes it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::task::TaskFailed;
use tokio::time::{Duration, Instant};

use super::apply::{Applied, Applier};
use super::select::sorted_by_name;
use super::{RenderStats, Target};
use crate::agent::{EventStream, Handle};
use crate::burst::Burst;
use crate::deadline::{earliest, sleep_until};
use crate::event::AgentEvent;

/// First wait before retrying a failed apply; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Each render target's destination and counters, as the RPC `info` reports them: shared,
/// so that a reload's new targets show up there.
pub type RenderStatsList = Arc<RwLock<Vec<(PathBuf, Arc<RenderStats>)>>>;

/// The running render targets of an agent.
#[derive(Debug)]
pub struct RenderTargets {
    stats: Vec<(PathBuf, Arc<RenderStats>)>,
    tasks: JoinSet<()>,
    /// Tells the tasks to stop after their current apply.
    stop: watch::Sender<bool>,
    shared: RenderStatsList,
}

impl RenderTargets {
    /// Starts one task per target on the current runtime, subscribed to `handle`'s events
    /// from now on. Each renders once at start, then after every burst of member changes.
    ///
    /// With `join_grace`, the first render waits (up to that long) for the agent to join
    /// its seeds, so that a restarted agent does not briefly render a cluster of one and
    /// empty the consumer's backend. The tasks end when the agent stops.
    pub fn start(handle: &Handle, targets: Vec<Target>, join_grace: Option<Duration>) -> Self {
        Self::start_with(handle, targets, join_grace, &[])
    }

    /// As [`start`](Self::start); a target whose destination is in `kept` goes on counting
    /// in those counters.
    fn start_with(
        handle: &Handle,
        targets: Vec<Target>,
        join_grace: Option<Duration>,
        kept: &[(PathBuf, Arc<RenderStats>)],
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut stats = Vec::new();
        let mut tasks = JoinSet::new();
        for target in targets {
            let s = kept
                .iter()
                .find(|(dest, _)| *dest == target.dest)
                .map_or_else(Arc::default, |(_, s)| s.clone());
            stats.push((target.dest.clone(), s.clone()));
            let worker = Worker {
                quiet: target.coalesce_quiet,
                max_wait: target.coalesce_max,
                applier: Some(Applier::new(target, s)),
                handle: handle.clone(),
                events: handle.events(),
                hold_until: join_grace.map(|g| Instant::now() + g),
                stop: stopped.clone(),
            };
            tasks.spawn(worker.run());
        }
        let shared = Arc::new(RwLock::new(stats.clone()));
        RenderTargets {
            stats,
            tasks,
            stop,
            shared,
        }
    }

    /// Each target's destination and counters.
    pub fn stats(&self) -> &[(PathBuf, Arc<RenderStats>)] {
        &self.stats
    }

    /// The same, shared: it follows [`reload`](Self::reload)s.
    pub fn shared_stats(&self) -> RenderStatsList {
        self.shared.clone()
    }

    /// Replaces the targets (`SIGHUP`): the running ones stop after their current apply,
    /// then the new ones start and render at once. A target with an unchanged destination
    /// keeps its counters.
    pub async fn reload(&mut self, handle: &Handle, targets: Vec<Target>) {
        let _ = self.stop.send(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %TaskFailed::from_panic("render", e), "a render target had failed");
            }
        }
        let next = Self::start_with(handle, targets, None, &self.stats);
        if let Ok(mut list) = self.shared.write() {
            list.clone_from(&next.stats);
        }
        self.stats = next.stats;
        self.tasks = next.tasks;
        self.stop = next.stop;
    }

    /// Waits for every target's task to end (after the agent stopped); the first failure
    /// if one panicked.
    pub async fn join(mut self) -> Result<(), TaskFailed> {
        let mut result = Ok(());
        while let Some(r) = self.tasks.join_next().await {
            if let (Err(e), Ok(())) = (r, &result) {
                result = Err(TaskFailed::from_panic("render", e));
            }
        }
        result
    }

    /// Resolves if a target's task fails (panics) while the agent runs. Cancel-safe.
    pub async fn failed(&mut self) -> TaskFailed {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return TaskFailed::from_panic("render", e),
                None => std::future::pending::<()>().await,
            }
        }
    }
}

struct Worker {
    quiet: Duration,
    max_wait: Duration,
    applier: Option<Applier>,
    handle: Handle,
    events: EventStream,
    /// Until the agent joined (or this instant), hold the first render back.
    hold_until: Option<Instant>,
    /// Changes (to true) when the targets are reloaded, or its sender is dropped: stop.
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        // The pending burst of changes; the start counts as one.
        let mut pending = Burst::default();
        pending.add(Instant::now(), false);
        let mut retry: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        let mut stop = self.stop.clone();
        loop {
            let due = pending
                .due_at(self.quiet, self.max_wait)
                .map(|d| self.hold_until.map_or(d, |h| d.max(h)));
            let due = earliest(due, retry);
            tokio::select! {
                _ = stop.changed() => break,
                event = self.events.next() => match event {
                    None => break,
                    Some(AgentEvent::Joined { .. }) => self.hold_until = None,
                    Some(e) if e.member().is_some() => pending.add(Instant::now(), e.is_removal()),
                    Some(_) => {}
                },
                () = sleep_until(due), if due.is_some() => {
                    pending.clear();
                    retry = None;
                    let Some(ok) = self.apply().await else { break };
                    if ok {
                        backoff = RETRY_MIN;
                    } else {
                        retry = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }

    /// Applies the current membership: `Some(true)` on success or no change, `Some(false)`
    /// on a failure, `None` once the agent has stopped.
    async fn apply(&mut self) -> Option<bool> {
        let members = sorted_by_name(&self.handle.members().await.ok()?);
        let mut applier = self.applier.take()?;
        let (applier, result) = tokio::task::spawn_blocking(move || {
            let r = applier.apply(&members);
            (applier, r)
        })
        .await
        .ok()?;
        let dest = applier.target().dest.display().to_string();
        self.applier = Some(applier);
        match result {
            Ok(Applied::Unchanged) => {
                tracing::debug!(dest, "rendering unchanged");
                Some(true)
            }
            Ok(Applied::Changed { bytes, reload }) => {
                tracing::info!(dest, bytes, reload, "rendered and applied");
                Some(true)
            }
            Err(e) => {
                tracing::warn!(dest, error = %e, "render target not applied; the previous file stays live");
                Some(false)
            }
        }
    }
}
