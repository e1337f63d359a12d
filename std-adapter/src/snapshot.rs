//! The peer snapshot: the addresses of the members an agent knew, saved atomically as
//! they change, so that a restarted agent rejoins its cluster with no `--join`.
//!
//! The file is JSON (`{"version":1,"name":..,"peers":[{"name","addr","status"}]}`),
//! written to a temporary file in the same directory, flushed to disk, then renamed over
//! the old one: a crash leaves either the old or the new snapshot, never half of one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumor_core::Status;
use serde::{Deserialize, Serialize};

use crate::agent::Handle;
use crate::atomic_file;

/// Format version written in every snapshot.
const VERSION: u32 = 1;
/// Peers contacted at once on restart. The node can push its table to at most four peers
/// in one join attempt, so more seeds than that would never be tried (see the report on
/// `rumor_core::Node::join`).
pub const REJOIN_SEEDS: usize = 4;
/// Shortest time between two writes of the snapshot.
const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// One peer in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its status when the snapshot was written.
    #[serde(with = "crate::member::status_str")]
    pub status: Status,
}

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// The agent that wrote it.
    pub name: String,
    /// Every other member it knew.
    pub peers: Vec<Peer>,
}

impl Snapshot {
    /// The addresses to rejoin: alive members first, then suspect, then failed ones (they
    /// may be back); never members that left, never the agent itself. At most
    /// [`REJOIN_SEEDS`].
    pub fn rejoin_addrs(&self, own_addr: SocketAddr) -> Vec<SocketAddr> {
        let mut peers: Vec<&Peer> = self
            .peers
            .iter()
            .filter(|p| p.status != Status::Left && p.addr != own_addr && p.name != self.name)
            .collect();
        peers.sort_by_key(|p| p.status);
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for p in peers {
            if !addrs.contains(&p.addr) {
                addrs.push(p.addr);
            }
        }
        addrs.truncate(REJOIN_SEEDS);
        addrs
    }
}

/// Why a snapshot could not be read.
#[derive(Debug)]
pub enum SnapshotError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not a snapshot.
    Format(serde_json::Error),
    /// The file is a snapshot of an unknown version.
    Version(u32),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "{e}"),
            SnapshotError::Format(e) => write!(f, "not a rumor snapshot: {e}"),
            SnapshotError::Version(v) => write!(f, "snapshot version {v} is not supported"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Reads the snapshot at `path`; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotError::Io(e)),
    };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(SnapshotError::Format)?;
    if snap.version != VERSION {
        return Err(SnapshotError::Version(snap.version));
    }
    Ok(Some(snap))
}

/// Writes `snap` to `path` atomically (see [`atomic_file::write`]).
pub fn save(path: &Path, snap: &Snapshot) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(snap)?;
    bytes.push(b'\n');
    atomic_file::write(path, &bytes, 0o666)
}

/// Builds the snapshot of what `handle`'s agent knows now.
pub async fn capture(handle: &Handle) -> Option<Snapshot> {
    let members = handle.members().await.ok()?;
    let me = handle.local();
    Some(Snapshot {
        version: VERSION,
        name: me.name,
        peers: members
            .into_iter()
            .filter(|m| !m.local)
            .map(|m| Peer {
                name: m.name,
                addr: m.addr,
                status: m.status,
            })
            .collect(),
    })
}

/// Keeps the snapshot at `path` up to date: written at start and after membership changes,
/// at most once a second, and only when it differs. Returns when the agent has stopped.
pub async fn keep_saved(handle: Handle, path: PathBuf) {
    let mut events = handle.events();
    let mut last: Option<Snapshot> = None;
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            if let Some(snap) = capture(&handle).await
                && last.as_ref() != Some(&snap)
            {
                write_logged(&path, &snap).await;
                last = Some(snap);
            }
            tokio::time::sleep(WRITE_INTERVAL).await;
        }
        match events.next().await {
            Some(e) if e.member().is_some() => dirty = true,
            Some(_) => {}
            None => return,
        }
    }
}

async fn write_logged(path: &Path, snap: &Snapshot) {
    let (p, s) = (path.to_path_buf(), snap.clone());
    match tokio::task::spawn_blocking(move || save(&p, &s)).await {
        Ok(Ok(())) => {
            tracing::debug!(path = %path.display(), peers = snap.peers.len(), "snapshot saved")
        }
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the snapshot")
        }
        Err(e) => tracing::warn!(error = %e, "snapshot writer failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, addr: &str, status: Status) -> Peer {
        Peer {
            name: name.into(),
            addr: addr.parse().unwrap(),
            status,
        }
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        assert!(load(&path).unwrap().is_none());
        let snap = Snapshot {
            version: VERSION,
            name: "c".into(),
            peers: vec![peer("a", "127.0.0.1:1", Status::Alive)],
        };
        save(&path, &snap).unwrap();
        assert_eq!(load(&path).unwrap(), Some(snap.clone()));
        // Overwrite: no temporary file is left behind.
        save(&path, &snap).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("snap.json")]);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(load(&path), Err(SnapshotError::Format(_))));
        std::fs::write(&path, r#"{"version":9,"name":"x","peers":[]}"#).unwrap();
        assert!(matches!(load(&path), Err(SnapshotError::Version(9))));
    }

    #[test]
    fn rejoin_prefers_live_peers_and_skips_left_ones() {
        let snap = Snapshot {
            version: VERSION,
            name: "me".into(),
            peers: vec![
                peer("f", "127.0.0.1:6", Status::Failed),
                peer("l", "127.0.0.1:5", Status::Left),
                peer("a", "127.0.0.1:1", Status::Alive),
                peer("s", "127.0.0.1:2", Status::Suspect),
                peer("b", "127.0.0.1:3", Status::Alive),
                peer("c", "127.0.0.1:4", Status::Alive),
                peer("d", "127.0.0.1:7", Status::Alive),
            ],
        };
        let addrs = snap.rejoin_addrs("127.0.0.1:9".parse().unwrap());
        let ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
        assert_eq!(ports, vec![1, 3, 4, 7]);
    }
}
