//! The driver's protocol: the commands a [`Handle`](super::Handle) sends to the driver task,
//! what comes back, and the counters the driver shares with every handle. Both sides depend
//! on this module, not on each other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

use rumor_core::{ForceLeaveError, JoinError, Stats, Status, TagError, Tags, UserEventError};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::keys::{KeyChange, KeyringChangeError, KeyringView};
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

/// Counters the driver keeps beside the core's.
#[derive(Debug, Default)]
pub(crate) struct DriverCounters {
    pub(crate) send_errors: AtomicU64,
    pub(crate) recv_errors: AtomicU64,
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
    /// Every counter of [`Stats`] by its field name, plus `dropped`, their total of drops.
    pub fn protocol_counters(s: &Stats) -> BTreeMap<String, u64> {
        let mut counters: BTreeMap<String, u64> = match serde_json::to_value(s) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.as_u64()?)))
                .collect(),
            _ => BTreeMap::new(),
        };
        counters.insert("dropped".to_owned(), s.dropped());
        counters
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_counters_name_every_stats_field_and_the_drop_total() {
        let mut s = Stats::default();
        s.dropped_malformed = 2;
        s.dropped_cluster = 1;
        s.name_conflicts = 7;
        let c = AgentStats::protocol_counters(&s);
        assert_eq!(c["dropped"], 3);
        assert_eq!(c["dropped_malformed"], 2);
        assert_eq!(c["name_conflicts"], 7);
        assert_eq!(c["sync_chunks_received"], 0);
    }
}
