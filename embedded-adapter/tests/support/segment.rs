//! One Ethernet segment with emulated boards and `rumor agent`s on it, and their views of
//! the cluster.
//!
//! Two kinds of segment:
//! - [`Segment::hub`]: boards only, on the loopback UDP hub (no root);
//! - [`Segment::bridge`]: a bridge in a network namespace of the test's own, boards on tap
//!   ports of it (QEMU runs in the namespace) and agents on the bridge's own addresses.
//!
//! Board `i` (1-based) is `board-i` at 10.42.0.(10 + i), agent `k` is `agent-k` at
//! 10.42.0.(100 + k), all on port 7946. These addresses exist only on the segment.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::agent::{Agent, Member};
use super::board::{Board, Flavor, Link, Settings};
use super::hub::Hub;
use super::netns::Netns;

/// A member of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Board `i` (1-based).
    Board(usize),
    /// Agent `k` (1-based).
    Agent(usize),
}

/// Something a member reports as an event: a board on its console (`event failed NAME`),
/// an agent on its monitor (`member-failed`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Report<'a> {
    /// The member was declared failed.
    Failed(Peer),
    /// The member left gracefully.
    Left(Peer),
    /// A user event of this name arrived.
    User(&'a str),
}

/// How the members are connected.
enum Net {
    Hub(Hub),
    Bridge(Netns),
}

/// The bridge of [`Segment::bridge`], inside its namespace.
const BRIDGE: &str = "br0";

/// Boards and agents on one segment. Dropping it stops every QEMU and agent (by PID), then
/// takes the network down (the hub, or the namespace with its bridge and taps); with
/// `RUMOR_TEST_DUMP=1` in the environment it first prints every console and log, as a
/// failure does.
pub(crate) struct Segment {
    // Field order is drop order: processes before the network they use.
    boards: Vec<Board>,
    agents: Vec<Agent>,
    net: Net,
    logs: tempfile::TempDir,
}

impl Segment {
    /// A segment on the loopback hub: boards only, no root needed.
    pub(crate) fn hub() -> Segment {
        Segment::on(Net::Hub(Hub::start()))
    }

    /// A segment on a bridge in a namespace of its own; `Err` (why the test is skipped)
    /// when this machine lacks root or `/dev/net/tun`.
    pub(crate) fn bridge(tag: &str) -> Result<Segment, String> {
        let ns = Netns::create(tag)?;
        ns.add_bridge(BRIDGE, "02:00:00:00:01:00", &[]);
        Ok(Segment::on(Net::Bridge(ns)))
    }

    fn on(net: Net) -> Segment {
        Segment {
            boards: Vec::new(),
            agents: Vec::new(),
            net,
            logs: tempfile::tempdir().expect("a directory for the agents' logs"),
        }
    }

    /// The member's name.
    pub(crate) fn name(&self, p: Peer) -> String {
        match p {
            Peer::Board(i) => format!("board-{i}"),
            Peer::Agent(k) => format!("agent-{k}"),
        }
    }

    /// The member's address on the segment.
    pub(crate) fn ip(&self, p: Peer) -> Ipv4Addr {
        match p {
            Peer::Board(i) => Ipv4Addr::new(10, 42, 0, 10 + i as u8),
            Peer::Agent(k) => Ipv4Addr::new(10, 42, 0, 100 + k as u8),
        }
    }

    /// The member's gossip address, `IP:7946`.
    pub(crate) fn addr(&self, p: Peer) -> String {
        format!("{}:7946", self.ip(p))
    }

    /// Boots the next board, joining through `seeds`.
    pub(crate) fn board(&mut self, flavor: Flavor, seeds: &[Peer]) -> Peer {
        let i = self.boards.len() + 1;
        let peer = Peer::Board(i);
        let settings = Settings {
            name: self.name(peer),
            ip: self.ip(peer),
            mac: i as u8,
            seeds: seeds.iter().map(|&s| self.addr(s)).collect(),
        };
        let tap = format!("tap{i}");
        let board = match &mut self.net {
            Net::Hub(hub) => {
                let (hub_port, port) = hub.plug();
                Board::boot(flavor, &settings, Link::Hub(hub_port, port))
            }
            Net::Bridge(ns) => {
                ns.add_tap(&tap, Some(BRIDGE), None);
                Board::boot(flavor, &settings, Link::Tap(ns, &tap))
            }
        };
        self.boards.push(board);
        peer
    }

    /// Starts the next agent on the bridge, joining through `seeds`. Bridge segments only.
    pub(crate) fn agent(&mut self, seeds: &[Peer]) -> Peer {
        let k = self.agents.len() + 1;
        let peer = Peer::Agent(k);
        let Net::Bridge(ns) = &self.net else {
            panic!("agents need a bridge segment (Segment::bridge)");
        };
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", self.ip(peer)),
            "dev",
            BRIDGE,
        ]);
        let name = self.name(peer);
        let seeds: Vec<String> = seeds.iter().map(|&s| self.addr(s)).collect();
        let agent = Agent::start(
            ns,
            &name,
            &self.addr(peer),
            &format!("127.0.0.1:{}", 7372 + k),
            &seeds,
            self.logs.path().join(format!("{name}.log")),
        );
        self.agents.push(agent);
        peer
    }

    /// The board behind `p`.
    pub(crate) fn board_mut(&mut self, p: Peer) -> &mut Board {
        let Peer::Board(i) = p else {
            panic!("{p:?} is not a board")
        };
        &mut self.boards[i - 1]
    }

    /// The agent behind `p`.
    pub(crate) fn agent_ref(&self, p: Peer) -> &Agent {
        let Peer::Agent(k) = p else {
            panic!("{p:?} is not an agent")
        };
        &self.agents[k - 1]
    }

    /// What `p` believes: member name to status; `None` when it does not answer.
    pub(crate) fn view(&mut self, p: Peer) -> Option<BTreeMap<String, String>> {
        match p {
            Peer::Board(_) => self.board_mut(p).view(),
            Peer::Agent(_) => self.agent_ref(p).view(),
        }
    }

    /// What `p` believes the status of `of` is.
    pub(crate) fn status(&mut self, p: Peer, of: Peer) -> Option<String> {
        let name = self.name(of);
        self.view(p)?.remove(&name)
    }

    /// True when `p` lists exactly `peers`, all alive.
    pub(crate) fn sees_all_alive(&mut self, p: Peer, peers: &[Peer]) -> bool {
        let names: Vec<String> = peers.iter().map(|&q| self.name(q)).collect();
        self.view(p).is_some_and(|v| {
            v.len() == names.len()
                && names
                    .iter()
                    .all(|n| v.get(n).map(String::as_str) == Some("alive"))
        })
    }

    /// Starts every agent's event monitor and checks it is live: each agent sends a user
    /// event through the cluster (see [`Agent::watch`]). Returns the events' names.
    pub(crate) fn watch_agents(&mut self) -> Vec<String> {
        self.agents.iter_mut().map(Agent::watch).collect()
    }

    /// When `p` reported `what` first; `None` if it has not (agents: only since
    /// [`Segment::watch_agents`]).
    pub(crate) fn reported(&self, p: Peer, what: Report<'_>) -> Option<Instant> {
        let (board_word, agent_type, name) = match what {
            Report::Failed(of) => ("failed", "member-failed", self.name(of)),
            Report::Left(of) => ("left", "member-leave", self.name(of)),
            Report::User(name) => ("user", "user", name.to_owned()),
        };
        match p {
            Peer::Board(i) => self.boards[i - 1].printed(&format!("event {board_word} {name}")),
            Peer::Agent(_) => self.agent_ref(p).event_at(agent_type, &name),
        }
    }

    /// An agent's member list with addresses.
    pub(crate) fn agent_members(&self, p: Peer) -> Option<Vec<Member>> {
        self.agent_ref(p).members()
    }

    /// Stops `p` at once (QEMU or agent killed), as a crash or power cut would.
    pub(crate) fn stop(&mut self, p: Peer) {
        match p {
            Peer::Board(_) => self.board_mut(p).stop(),
            Peer::Agent(k) => self.agents[k - 1].stop(),
        }
    }

    /// Polls `done` every 100 ms for at most `limit`; panics, showing every console and
    /// log, on timeout. Returns how long it took.
    pub(crate) fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&mut Segment) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.dump();
        panic!("{what}: not reached within {limit:?}");
    }

    /// Prints every board's console and the end of every agent's log.
    pub(crate) fn dump(&self) {
        for b in &self.boards {
            eprintln!("--- console of {} ---\n{}", b.name(), b.console());
        }
        for a in &self.agents {
            let log = a.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- end of the log of {} ---", a.name());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if std::env::var_os("RUMOR_TEST_DUMP").is_some_and(|v| v == "1") {
            self.dump();
        }
    }
}
