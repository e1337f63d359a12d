//! The cloneable handle: commands go to the driver task over a channel, answers come back
//! on a oneshot, events fan out on a broadcast channel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rumor_core::{ForceLeaveError, JoinError, Stats, Status, TagError, Tags, UserEventError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::driver::DriverCounters;
use super::keys::{KeyChange, KeyringChangeError, KeyringView};
use crate::event::AgentEvent;
use crate::member::MemberInfo;

/// A request to the driver task.
#[derive(Debug)]
pub(crate) enum Command {
    Members(oneshot::Sender<Vec<MemberInfo>>),
    Join(Vec<SocketAddr>, oneshot::Sender<Result<(), JoinError>>),
    Leave(oneshot::Sender<LeaveOutcome>),
    ForceLeave(String, oneshot::Sender<Result<(), ForceLeaveError>>),
    UserEvent {
        name: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), UserEventError>>,
    },
    UpdateTags {
        set: Vec<(String, String)>,
        delete: Vec<String>,
        reply: oneshot::Sender<Result<Tags, TagError>>,
    },
    Stats(oneshot::Sender<AgentStats>),
    Keyring {
        change: KeyChange,
        reply: oneshot::Sender<Result<KeyringView, KeyringChangeError>>,
    },
}

/// How a graceful leave ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveOutcome {
    /// The leave was gossiped to the cluster.
    Complete,
    /// The leave timeout ran out first; peers may see a failure instead.
    TimedOut,
    /// The agent had already stopped.
    AlreadyStopped,
}

/// Why a handle call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The agent has stopped (it left, or every handle was dropped).
    Stopped,
    /// The node refused the seeds.
    Join(JoinError),
    /// The node refused the user event.
    UserEvent(UserEventError),
    /// The tags were refused.
    Tags(TagError),
    /// The keyring change was refused.
    Keyring(KeyringChangeError),
    /// The node refused to force the member out.
    ForceLeave(ForceLeaveError),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Stopped => f.write_str("the agent has stopped"),
            HandleError::Join(e) => write!(f, "join refused: {e}"),
            HandleError::UserEvent(e) => write!(f, "user event refused: {e}"),
            HandleError::Tags(e) => write!(f, "tags refused: {e}"),
            HandleError::Keyring(e) => write!(f, "keyring change refused: {e}"),
            HandleError::ForceLeave(e) => write!(f, "force-leave refused: {e}"),
        }
    }
}

impl std::error::Error for HandleError {}

/// Counters and identity of a running agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// The agent's own entry.
    pub local: MemberInfo,
    /// Lifeguard local health score (0 is healthy).
    pub health: u64,
    /// Member counts by status, the agent included.
    pub members: BTreeMap<String, usize>,
    /// The protocol's counters (datagrams, drops by reason, probes, ...).
    pub protocol: BTreeMap<String, u64>,
    /// Socket sends that failed.
    pub send_errors: u64,
    /// Socket receives that failed.
    pub recv_errors: u64,
    /// Keys in the keyring; 0 when encryption is off.
    #[serde(default)]
    pub keys: usize,
    /// Milliseconds since the agent started.
    pub uptime_ms: u64,
}

impl AgentStats {
    /// Every counter of [`Stats`], by name.
    pub fn protocol_counters(s: &Stats) -> BTreeMap<String, u64> {
        let pairs = [
            ("datagrams_received", s.datagrams_received),
            ("datagrams_sent", s.datagrams_sent),
            ("bytes_received", s.bytes_received),
            ("bytes_sent", s.bytes_sent),
            ("dropped", s.dropped()),
            ("dropped_truncated", s.dropped_truncated),
            ("dropped_oversized", s.dropped_oversized),
            ("dropped_version", s.dropped_version),
            ("dropped_envelope", s.dropped_envelope),
            ("dropped_cluster", s.dropped_cluster),
            ("dropped_malformed", s.dropped_malformed),
            ("dropped_ignored", s.dropped_ignored),
            ("dropped_unauthenticated", s.dropped_unauthenticated),
            ("dropped_plaintext", s.dropped_plaintext),
            ("probes", s.probes),
            ("probes_failed", s.probes_failed),
            ("indirect_probes", s.indirect_probes),
            ("nacks_received", s.nacks_received),
            ("suspicions", s.suspicions),
            ("refutations", s.refutations),
            ("failures", s.failures),
            ("members_refused", s.members_refused),
            ("members_evicted", s.members_evicted),
            ("members_reaped", s.members_reaped),
            ("updates_evicted", s.updates_evicted),
            ("user_events", s.user_events),
            ("user_events_lost", s.user_events_lost),
            ("outbox_full", s.outbox_full),
            ("events_lost", s.events_lost),
            ("syncs_started", s.syncs_started),
            ("sync_chunks_received", s.sync_chunks_received),
            ("name_conflicts", s.name_conflicts),
            ("ltimes_too_far", s.ltimes_too_far),
            ("incarnations_too_far", s.incarnations_too_far),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Counts members by status name.
    pub fn count_by_status<'a>(
        members: impl Iterator<Item = Status> + 'a,
    ) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> =
            [Status::Alive, Status::Suspect, Status::Left, Status::Failed]
                .into_iter()
                .map(|s| (s.as_str().to_owned(), 0))
                .collect();
        for s in members {
            *counts.entry(s.as_str().to_owned()).or_default() += 1;
        }
        counts
    }
}

/// A cloneable handle to a running [`Agent`](super::Agent).
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    /// Weak, so that event streams end when the driver (the only strong sender) stops.
    events: broadcast::WeakSender<AgentEvent>,
    local: watch::Receiver<MemberInfo>,
    counters: Arc<DriverCounters>,
}

impl Handle {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        events: broadcast::WeakSender<AgentEvent>,
        local: watch::Receiver<MemberInfo>,
        counters: Arc<DriverCounters>,
    ) -> Self {
        Handle {
            commands,
            events,
            local,
            counters,
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, HandleError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| HandleError::Stopped)?;
        rx.await.map_err(|_| HandleError::Stopped)
    }

    /// Every member the agent knows, itself first.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, HandleError> {
        self.ask(Command::Members).await
    }

    /// A new subscription to the agent's events, starting now. It ends when the agent
    /// stops.
    pub fn events(&self) -> EventStream {
        let rx = match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            // Stopped: a stream that is already over.
            None => broadcast::channel(1).1,
        };
        EventStream { rx, lagged: 0 }
    }

    /// The agent's own entry, as of its last change.
    pub fn local(&self) -> MemberInfo {
        self.local.borrow().clone()
    }

    /// A watch on the agent's own entry (changes with its tags).
    pub fn watch_local(&self) -> watch::Receiver<MemberInfo> {
        self.local.clone()
    }

    /// Starts joining through these seeds; the node retries with backoff until one answers
    /// and then reports [`AgentEvent::Joined`] (subscribe with [`Handle::events`] first to
    /// wait for it).
    pub async fn join(
        &self,
        seeds: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<(), HandleError> {
        let seeds = seeds.into_iter().collect();
        self.ask(|tx| Command::Join(seeds, tx))
            .await?
            .map_err(HandleError::Join)
    }

    /// Leaves gracefully and waits until the leave has been gossiped or the leave timeout
    /// ran out. The agent stops afterwards.
    pub async fn leave(&self) -> Result<LeaveOutcome, HandleError> {
        self.ask(Command::Leave).await
    }

    /// Forces the failed member `name` out, as Serf's `force-leave`: it is marked left
    /// here and the news is gossiped, so every member reports it left (`member-leave`)
    /// and reaps it after the reap timeout. A live or suspect member, this agent itself
    /// and an unknown name are refused; a member that left already is not an error.
    pub async fn force_leave(&self, name: &str) -> Result<(), HandleError> {
        let name = name.to_owned();
        self.ask(|tx| Command::ForceLeave(name, tx))
            .await?
            .map_err(HandleError::ForceLeave)
    }

    /// Sends a user event to the cluster (and delivers it locally too).
    pub async fn user_event(&self, name: &str, payload: &[u8]) -> Result<(), HandleError> {
        let (name, payload) = (name.to_owned(), payload.to_vec());
        self.ask(|reply| Command::UserEvent {
            name,
            payload,
            reply,
        })
        .await?
        .map_err(HandleError::UserEvent)
    }

    /// Replaces the agent's tags and gossips them.
    pub async fn set_tags(&self, tags: &Tags) -> Result<(), HandleError> {
        let current = self.local().tags;
        let delete = current.keys().cloned().collect();
        let set = tags
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self.update_tags(set, delete).await.map(|_| ())
    }

    /// Deletes then sets tags in one step, and returns the resulting tags. On error nothing
    /// changes.
    pub async fn update_tags(
        &self,
        set: Vec<(String, String)>,
        delete: Vec<String>,
    ) -> Result<Tags, HandleError> {
        self.ask(|reply| Command::UpdateTags { set, delete, reply })
            .await?
            .map_err(HandleError::Tags)
    }

    /// Counters and identity.
    pub async fn stats(&self) -> Result<AgentStats, HandleError> {
        self.ask(Command::Stats).await
    }

    /// Lists or changes the keyring (see [`KeyChange`]). A change is saved to the keyring
    /// file, when the agent has one, before it takes effect; on any error nothing changes.
    pub async fn keyring(&self, change: KeyChange) -> Result<KeyringView, HandleError> {
        self.ask(|reply| Command::Keyring { change, reply })
            .await?
            .map_err(HandleError::Keyring)
    }

    /// True until the agent stops.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Socket sends that failed so far (readable without asking the driver).
    pub fn send_errors(&self) -> u64 {
        self.counters.send_errors.load(Ordering::Relaxed)
    }
}

/// A subscription to an agent's events. A subscriber that falls more than 4096 events
/// behind misses the oldest ones; [`EventStream::lagged`] counts them.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<AgentEvent>,
    lagged: u64,
}

impl EventStream {
    /// The next event, or `None` once the agent has stopped.
    pub async fn next(&mut self) -> Option<AgentEvent> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.lagged += n;
                    tracing::warn!(missed = n, "an event subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Events this subscriber missed because it fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}
