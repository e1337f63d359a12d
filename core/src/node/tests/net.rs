//! The test harness: nodes on a perfect in-memory network, stepped to each earliest
//! deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::vec::Vec;

use super::super::*;

pub(in crate::node) type N = Node<8, 16>;

pub(in crate::node) fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

pub(in crate::node) fn node(i: u8) -> N {
    node_with(i, Config::lan())
}

pub(in crate::node) fn node_with(i: u8, config: Config) -> N {
    let name = std::format!("n{i}");
    Node::new(Identity::new(&name, addr(i)).unwrap(), config, u64::from(i)).unwrap()
}

/// One node of a [`Net`] at its address; a node that is not `up` neither runs nor receives.
pub(in crate::node) struct Peer {
    pub(in crate::node) addr: SocketAddr,
    pub(in crate::node) node: N,
    pub(in crate::node) up: bool,
}

impl Peer {
    /// `node` at `addr`, running.
    pub(in crate::node) fn up(addr: SocketAddr, node: N) -> Self {
        Peer {
            addr,
            node,
            up: true,
        }
    }
}

/// A perfect network of a few nodes, stepped to each earliest deadline.
pub(in crate::node) struct Net {
    pub(in crate::node) nodes: Vec<Peer>,
    pub(in crate::node) wire: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    pub(in crate::node) events: Vec<(SocketAddr, Event)>,
    /// Every datagram sent, as bytes.
    pub(in crate::node) sent: Vec<Vec<u8>>,
    pub(in crate::node) now: Instant,
    /// Datagrams `(to, bytes)` for which this is true are lost.
    pub(in crate::node) lose: Option<fn(SocketAddr, &[u8]) -> bool>,
    /// A link cut both ways: nothing between these two addresses gets through.
    pub(in crate::node) cut: Option<(SocketAddr, SocketAddr)>,
    /// A node that is not `up` crashed on a live host: datagrams to it are answered with
    /// ICMP port unreachable (`handle_unreachable`) rather than silently lost.
    pub(in crate::node) refuse_when_down: bool,
}

impl Net {
    pub(in crate::node) fn new(n: u8) -> Self {
        Self::with_config(n, Config::lan())
    }

    pub(in crate::node) fn with_config(n: u8, config: Config) -> Self {
        let mut net = Net {
            nodes: (1..=n)
                .map(|i| Peer::up(addr(i), node_with(i, config.clone())))
                .collect(),
            wire: VecDeque::new(),
            events: Vec::new(),
            sent: Vec::new(),
            now: Instant::ZERO,
            lose: None,
            cut: None,
            refuse_when_down: false,
        };
        for i in 1..n as usize {
            net.nodes[i].node.join(Instant::ZERO, addr(1)).unwrap();
        }
        net
    }

    pub(in crate::node) fn drain(&mut self, i: usize) {
        let mut buf = [0u8; 1500];
        let Peer { addr: a, node, .. } = &mut self.nodes[i];
        while let Some(t) = node.poll_transmit(self.now, &mut buf) {
            assert!(t.len <= node.config().max_datagram);
            self.sent.push(buf[..t.len].to_vec());
            self.wire.push_back((*a, t.to, buf[..t.len].to_vec()));
        }
        while let Some(e) = node.poll_event() {
            self.events.push((*a, e));
        }
    }

    pub(in crate::node) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            for i in 0..self.nodes.len() {
                if self.nodes[i].up {
                    self.nodes[i].node.handle_timeout(self.now);
                    self.drain(i);
                }
            }
            while let Some((from, to, bytes)) = self.wire.pop_front() {
                let cut = |(a, b)| (from, to) == (a, b) || (from, to) == (b, a);
                if self.lose.is_some_and(|lose| lose(to, &bytes)) || self.cut.is_some_and(cut) {
                    continue;
                }
                if let Some(i) = self.nodes.iter().position(|n| n.addr == to && n.up) {
                    let _ = self.nodes[i].node.handle_datagram(self.now, from, &bytes);
                    self.drain(i);
                } else if self.refuse_when_down
                    && let Some(i) = self.nodes.iter().position(|n| n.addr == from && n.up)
                {
                    let port = crate::Unreachable::Port;
                    let _ = self.nodes[i]
                        .node
                        .handle_unreachable(self.now, to, port, &bytes);
                    self.drain(i);
                }
            }
            let next = self
                .nodes
                .iter()
                .filter(|n| n.up)
                .filter_map(|n| n.node.poll_timeout())
                .min()
                .unwrap_or(end);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next.max(self.now);
        }
        panic!("run_for did not reach its end");
    }

    pub(in crate::node) fn status(&self, observer: usize, name: &str) -> Option<Status> {
        self.nodes[observer].node.member(name).map(|m| m.status())
    }

    /// How many times the node at `addr` delivered the user event `deploy` / `v2`.
    pub(in crate::node) fn deliveries(&self, at: SocketAddr) -> usize {
        self.events
            .iter()
            .filter(|(a, e)| {
                *a == at
                    && matches!(e, Event::User(u) if u.name == "deploy" && &u.payload[..] == b"v2")
            })
            .count()
    }

    /// Runs 5 s, sends `deploy` / `v2` from the first node, runs 10 s more.
    pub(in crate::node) fn send_deploy(&mut self) {
        self.run_for(Duration::from_secs(5));
        let now = self.now;
        self.nodes[0]
            .node
            .send_user_event(now, "deploy", b"v2")
            .unwrap();
        self.drain(0);
        self.run_for(Duration::from_secs(10));
    }
}
