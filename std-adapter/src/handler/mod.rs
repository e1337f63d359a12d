//! Event handlers like Serf's: `--event-handler [filter=]script` runs `/bin/sh -c script`
//! on matching events with `RUMOR_*`/`SERF_*` variables and the members on stdin.
//!
//! Member events are coalesced first and the batches then handed to every handler whose
//! filter takes them, as Serf does, so each handler sees every transition it subscribes
//! to. By default all handlers run one at a time, in event order, from one queue (Serf's
//! order), so scripts that rewrite the same files (the lab's `/nodes` registry and
//! `haproxy.cfg`) never race; with [`HandlerSettings::parallel`] each handler has its own
//! queue. Member batches go ahead of user events still waiting. The gossip loop never
//! waits for a handler; a hanging script is killed (with everything it started) after the
//! timeout.

mod coalesce;
mod filter;
mod invoke;
mod worker;

/// An alive member named `name` at `127.0.0.1:1`, for the handler modules' tests.
#[cfg(test)]
pub(crate) fn test_member(name: &str) -> crate::member::MemberInfo {
    crate::member::MemberInfo {
        name: name.into(),
        addr: "127.0.0.1:1".parse().unwrap(),
        status: rumor_core::Status::Alive,
        tags: Default::default(),
        incarnation: 0,
        local: false,
    }
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::task::{Supervised, TaskFailed};
use serde::{Deserialize, Serialize};

pub use self::filter::{Filter, HandlerSpec};

use crate::agent::Handle;

/// Variables of the agent's environment that hold secrets (the gossip key of
/// `--encrypt` and the `--rpc-token`): removed from the environment of every handler,
/// render check and reload command.
pub const SECRET_ENV_VARS: [&str; 2] = ["RUMOR_ENCRYPT", "RUMOR_RPC_TOKEN"];

/// Removes [`SECRET_ENV_VARS`] from the environment `cmd` will start with.
pub(crate) fn without_secrets(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in SECRET_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Timing of every handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerSettings {
    /// An invocation still running after this is killed.
    pub timeout: Duration,
    /// A batch of member events is released after this long with no new event...
    pub coalesce_quiet: Duration,
    /// ...or at the latest this long after its first event.
    pub coalesce_max: Duration,
    /// Each handler runs from its own queue, concurrently with the others (default:
    /// all handlers run one at a time from one queue, as in Serf).
    pub parallel: bool,
}

impl Default for HandlerSettings {
    /// Serf's coalescing (1 s quiet, 3 s at most), a 30 s timeout, one handler at a time.
    fn default() -> Self {
        HandlerSettings {
            timeout: Duration::from_secs(30),
            coalesce_quiet: Duration::from_secs(1),
            coalesce_max: Duration::from_secs(3),
            parallel: false,
        }
    }
}

/// Counters of all handlers together.
#[derive(Debug, Default)]
pub struct HandlerStats {
    invocations: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    spawn_errors: AtomicU64,
    events_dropped: AtomicU64,
}

/// A copy of [`HandlerStats`] at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerCounts {
    /// Invocations started.
    pub invocations: u64,
    /// Invocations that exited 0.
    pub succeeded: u64,
    /// Invocations that exited non-zero or were killed by a signal.
    pub failed: u64,
    /// Invocations killed after the timeout.
    pub timed_out: u64,
    /// Invocations that could not be started.
    pub spawn_errors: u64,
    /// Events not delivered: missed by a subscription that fell behind, pushed out of a
    /// full user-event queue, or still waiting when the agent stopped.
    pub events_dropped: u64,
}

impl HandlerStats {
    /// The counters now.
    pub fn counts(&self) -> HandlerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HandlerCounts {
            invocations: get(&self.invocations),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            timed_out: get(&self.timed_out),
            spawn_errors: get(&self.spawn_errors),
            events_dropped: get(&self.events_dropped),
        }
    }

    fn bump(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The running handlers of an agent.
#[derive(Debug)]
pub struct Handlers {
    stats: Arc<HandlerStats>,
    task: Supervised,
    reloads: tokio::sync::mpsc::UnboundedSender<(Vec<HandlerSpec>, HandlerSettings)>,
}

impl Handlers {
    /// Starts the handlers' task on the current runtime, subscribed to `handle`'s events
    /// from now on. The task ends when the agent stops.
    pub fn start(handle: &Handle, specs: Vec<HandlerSpec>, settings: HandlerSettings) -> Self {
        let stats = Arc::new(HandlerStats::default());
        let (reloads, reloads_rx) = tokio::sync::mpsc::unbounded_channel();
        let dispatcher =
            worker::Dispatcher::new(specs, settings, handle, stats.clone(), reloads_rx);
        Handlers {
            stats,
            task: Supervised::spawn("handlers", dispatcher.run()),
            reloads,
        }
    }

    /// Replaces the handlers and their settings (`SIGHUP`): events from now on go to the
    /// new handlers, invocations already queued run as queued, and events being coalesced
    /// are delivered to the new handlers.
    pub fn reload(&self, specs: Vec<HandlerSpec>, settings: HandlerSettings) {
        let _ = self.reloads.send((specs, settings));
    }

    /// Shared counters (for `rumor info`).
    pub fn stats(&self) -> Arc<HandlerStats> {
        self.stats.clone()
    }

    /// Waits for the handlers' task to end (after the agent stopped): running
    /// invocations end within the handler timeout.
    pub async fn join(self) -> Result<(), TaskFailed> {
        self.task.join().await
    }

    /// Resolves if the handlers' task fails (panics) while the agent runs.
    pub async fn failed(&mut self) -> TaskFailed {
        self.task.failed().await
    }
}
