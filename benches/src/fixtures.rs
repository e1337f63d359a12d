//! Real datagrams and populated nodes for the criterion benchmarks.
//!
//! rumor-core keeps its codec private, so the benchmarks work on genuine traffic: a small
//! cluster runs in the simulator while a tap records every datagram handed to node 0, and
//! a fresh node with node 0's identity replays them to reach the same state.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use rumor_core::{Config, Duration, HEADER_LEN, Identity, Instant, Key, Keyring, Node};

use crate::sim::{ClusterBuilder, LinkProfile, Sim, node_name, sim_addr};

/// The cluster key of encrypted captures.
pub const KEY: [u8; 32] = [7; 32];

/// The message kinds, by the variant index that follows the header of a plaintext frame.
pub const KINDS: [(u8, &str); 6] = [
    (0, "ping"),
    (1, "ack"),
    (2, "nack"),
    (3, "ping_req"),
    (4, "sync"),
    (5, "gossip"),
];

/// Datagrams node 0 of a simulated cluster received, in order, with their arrival times.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Node 0's name.
    pub name: String,
    /// Node 0's address.
    pub addr: SocketAddr,
    /// `(arrival, source, bytes)`.
    pub inbound: Vec<(Instant, SocketAddr, Vec<u8>)>,
}

impl Capture {
    /// Runs `n` nodes on `link` (all joining node 0 at time zero) for `run` with `seed`,
    /// every node encrypting with [`KEY`] when `encrypted`, and records what node 0
    /// received. `M` must hold `n` members.
    pub fn record<const M: usize>(
        n: usize,
        run: Duration,
        seed: u64,
        link: LinkProfile,
        encrypted: bool,
    ) -> Capture {
        let inbound = Rc::new(RefCell::new(Vec::new()));
        let mut sim: Sim<M, M> = ClusterBuilder::new(n)
            .seed(seed)
            .link(link)
            .without_join()
            .build();
        if encrypted {
            for i in 0..n {
                sim.with_node(i, |node| set_key(node, i as u8));
            }
        }
        let sink = Rc::clone(&inbound);
        sim.set_tap(move |d| {
            if d.to_node == 0 {
                sink.borrow_mut().push((d.at, d.from, d.bytes.to_vec()));
            }
        });
        for i in 1..n {
            sim.join(i, 0).expect("join");
        }
        sim.run_for(run);
        sim.clear_tap();
        let inbound = inbound.take();
        Capture {
            name: node_name(0),
            addr: sim_addr(0),
            inbound,
        }
    }

    /// A fresh node with node 0's identity and `config` (which must keep the capture's
    /// cluster id), fed every captured datagram at its arrival time, transmits and events
    /// drained after each; with [`KEY`] installed when `encrypted`.
    pub fn replay<const M: usize, const U: usize>(
        &self,
        config: Config,
        encrypted: bool,
    ) -> Node<M, U> {
        let identity = Identity::new(&self.name, self.addr).expect("valid identity");
        let mut node = Node::new(identity, config, 0).expect("valid config");
        if encrypted {
            set_key(&mut node, 0xFF);
        }
        let mut buf = [0u8; 1500];
        for (at, from, bytes) in &self.inbound {
            node.handle_timeout(*at);
            let _ = node.handle_datagram(*at, *from, bytes);
            drain(&mut node, *at, &mut buf);
        }
        node
    }

    /// When the last datagram arrived.
    pub fn end(&self) -> Instant {
        self.inbound.last().map_or(Instant::ZERO, |(at, _, _)| *at)
    }

    /// The largest captured datagram of message kind `kind` (see [`KINDS`]).
    pub fn largest_of(&self, kind: u8) -> Option<(SocketAddr, &[u8])> {
        self.inbound
            .iter()
            .filter(|(_, _, b)| message_kind(b) == Some(kind))
            .max_by_key(|(_, _, b)| b.len())
            .map(|(_, from, b)| (*from, b.as_slice()))
    }
}

/// Installs [`KEY`] with per-node nonce entropy.
pub fn set_key<const M: usize, const U: usize>(node: &mut Node<M, U>, salt: u8) {
    node.set_keyring(Keyring::new(Key::from_bytes(KEY)), [salt; 16]);
}

/// The message kind of a plaintext frame: the variant index right after the header.
pub fn message_kind(frame: &[u8]) -> Option<u8> {
    frame.get(HEADER_LEN).copied()
}

/// Drains a node's transmits and events; returns how many datagrams it sent.
pub fn drain<const M: usize, const U: usize>(
    node: &mut Node<M, U>,
    now: Instant,
    buf: &mut [u8],
) -> usize {
    let mut sent = 0;
    while node.poll_transmit(now, buf).is_some() {
        sent += 1;
    }
    while node.poll_event().is_some() {}
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_rebuilds_the_members_and_every_kind_is_seen() {
        let lossy = LinkProfile::LAN.with_loss(0.2);
        let capture = Capture::record::<16>(8, Duration::from_secs(30), 3, lossy, false);
        let node: Node<16, 16> = capture.replay(Config::lan(), false);
        assert_eq!(node.members().count(), 8);
        for (kind, name) in KINDS {
            assert!(capture.largest_of(kind).is_some(), "no {name} captured");
        }
        let sealed = Capture::record::<16>(8, Duration::from_secs(5), 3, LinkProfile::LAN, true);
        let node: Node<16, 16> = sealed.replay(Config::lan(), true);
        assert_eq!(node.members().count(), 8);
        assert_eq!(node.stats().dropped(), 0);
    }
}
