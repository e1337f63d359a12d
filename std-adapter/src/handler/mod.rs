//! Event handlers like Serf's: `--event-handler [filter=]script` runs `/bin/sh -c script`
//! on matching events with `RUMOR_*`/`SERF_*` variables and the members on stdin.
//!
//! Each handler has its own task and runs its invocations one at a time, in order, so a
//! script that rewrites shared files (the lab's `/nodes` registry) never races itself.
//! The gossip loop never waits for a handler, and handlers never wait for each other: a
//! slow or hanging script delays only its own later invocations, and is killed (with
//! everything it started) after the timeout. Member events are coalesced while a handler
//! waits or runs.

mod coalesce;
mod filter;
mod invoke;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use self::filter::{Filter, HandlerSpec};

use crate::agent::Handle;

/// Timing of every handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerSettings {
    /// An invocation still running after this is killed.
    pub timeout: Duration,
    /// A batch of member events is released after this long with no new event...
    pub coalesce_quiet: Duration,
    /// ...or at the latest this long after its first event.
    pub coalesce_max: Duration,
}

impl Default for HandlerSettings {
    /// Serf's coalescing (1 s quiet, 3 s at most) and a 30 s timeout.
    fn default() -> Self {
        HandlerSettings {
            timeout: Duration::from_secs(30),
            coalesce_quiet: Duration::from_secs(1),
            coalesce_max: Duration::from_secs(3),
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
    /// Events not delivered because a handler fell too far behind.
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
    tasks: Vec<JoinHandle<()>>,
}

impl Handlers {
    /// Starts one task per handler on the current runtime, subscribed to `handle`'s
    /// events from now on. The tasks end when the agent stops.
    pub fn start(handle: &Handle, specs: Vec<HandlerSpec>, settings: HandlerSettings) -> Self {
        let stats = Arc::new(HandlerStats::default());
        let tasks = specs
            .into_iter()
            .map(|spec| {
                let w = worker::Worker::new(spec, settings, handle, stats.clone());
                tokio::spawn(w.run())
            })
            .collect();
        Handlers { stats, tasks }
    }

    /// Shared counters (for `rumor info`).
    pub fn stats(&self) -> Arc<HandlerStats> {
        self.stats.clone()
    }

    /// Waits for every handler task to end (after the agent stopped).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
