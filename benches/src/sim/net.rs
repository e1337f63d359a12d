//! The virtual network: per-link loss, latency, jitter, duplication, and partitions.
//!
//! Nodes are named by their index in the simulation. The network only decides the fate of
//! each datagram (dropped, or delivered once or twice at given instants); the simulator
//! owns the queue that carries it.

use std::collections::BTreeMap;

use rumor_core::{Duration, Instant};

use super::rng::SplitMix64;

/// How one direction of a link treats datagrams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// Probability that a datagram is lost, in `[0, 1]`.
    pub loss: f64,
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram (and per copy); a jitter
    /// larger than the gap between two sends reorders them.
    pub jitter: Duration,
    /// Probability that a delivered datagram arrives a second time (with its own jitter).
    pub duplicate: f64,
}

impl LinkProfile {
    /// A lossless link with no delay at all.
    pub const PERFECT: LinkProfile = LinkProfile {
        loss: 0.0,
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        duplicate: 0.0,
    };

    /// A healthy data-centre link: 1 ms plus up to 2 ms of jitter, no loss.
    pub const LAN: LinkProfile = LinkProfile {
        loss: 0.0,
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(2),
        duplicate: 0.0,
    };

    /// A wide-area link: 40 ms plus up to 20 ms of jitter, no loss.
    pub const WAN: LinkProfile = LinkProfile {
        loss: 0.0,
        latency: Duration::from_millis(40),
        jitter: Duration::from_millis(20),
        duplicate: 0.0,
    };

    /// This profile with loss probability `p`.
    pub const fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// This profile with duplication probability `p`.
    pub const fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// This profile with the given base latency and jitter.
    pub const fn with_delay(mut self, latency: Duration, jitter: Duration) -> Self {
        self.latency = latency;
        self.jitter = jitter;
        self
    }
}

impl Default for LinkProfile {
    fn default() -> Self {
        LinkProfile::LAN
    }
}

/// Why the network dropped a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// Random loss on the link.
    Lost,
    /// Sender and receiver are in different partition groups.
    Partitioned,
}

/// When the copies of one datagram arrive: one instant, or two when it was duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrivals([Option<Instant>; 2]);

impl Arrivals {
    /// The arrival instants, earliest copy first.
    pub fn iter(&self) -> impl Iterator<Item = Instant> + '_ {
        self.0.iter().flatten().copied()
    }
}

/// Counters of what the network (and the simulator's delivery) did with datagrams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network by nodes.
    pub sent: u64,
    /// Bytes handed to the network by nodes.
    pub sent_bytes: u64,
    /// Datagrams (copies included) handed to a receiving node.
    pub delivered: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because a partition separated the endpoints (at send or at arrival).
    pub partitioned: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Dropped because no node owns the destination address (e.g. a restarted node's old one).
    pub unroutable: u64,
    /// Dropped because the destination is crashed or stopped.
    pub to_down_node: u64,
    /// Of those, answered with ICMP port unreachable (a crashed node, with
    /// [`SimConfig::icmp`](super::SimConfig::icmp)).
    pub port_unreachable: u64,
    /// Dropped because a paused node's receive buffer was full.
    pub buffer_overflow: u64,
}

/// The network model: a default link profile, per-directed-link overrides, and a
/// partition group per node.
#[derive(Clone, Debug)]
pub struct Network {
    default: LinkProfile,
    links: BTreeMap<(usize, usize), LinkProfile>,
    groups: Vec<u32>,
    rng: SplitMix64,
    stats: NetStats,
}

impl Network {
    /// A network where every link behaves like `default`, drawing randomness from `seed`.
    pub fn new(default: LinkProfile, seed: u64) -> Self {
        Network {
            default,
            links: BTreeMap::new(),
            groups: Vec::new(),
            rng: SplitMix64::new(seed),
            stats: NetStats::default(),
        }
    }

    /// The profile used by links without an override.
    pub fn default_link(&self) -> LinkProfile {
        self.default
    }

    /// Changes the profile of every link without an override.
    pub fn set_default_link(&mut self, profile: LinkProfile) {
        self.default = profile;
    }

    /// Overrides the link from `from` to `to` (one direction only).
    pub fn set_link_directed(&mut self, from: usize, to: usize, profile: LinkProfile) {
        self.links.insert((from, to), profile);
    }

    /// Overrides both directions of the link between `a` and `b`.
    pub fn set_link(&mut self, a: usize, b: usize, profile: LinkProfile) {
        self.set_link_directed(a, b, profile);
        self.set_link_directed(b, a, profile);
    }

    /// Removes every per-link override.
    pub fn clear_links(&mut self) {
        self.links.clear();
    }

    /// The profile in force from `from` to `to`.
    pub fn link(&self, from: usize, to: usize) -> LinkProfile {
        self.links.get(&(from, to)).copied().unwrap_or(self.default)
    }

    /// Splits the nodes into partitions: the nodes of `groups[k]` form partition `k + 1`,
    /// every node not listed stays in partition 0. Only nodes in the same partition can
    /// exchange datagrams. Replaces any earlier partitioning.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.groups.iter_mut().for_each(|g| *g = 0);
        for (k, members) in groups.iter().enumerate() {
            let id = u32::try_from(k + 1).expect("fewer than 2^32 partitions");
            for &n in *members {
                self.ensure(n);
                self.groups[n] = id;
            }
        }
    }

    /// Cuts node `n` off from everyone else (a partition of its own).
    pub fn isolate(&mut self, n: usize) {
        self.ensure(n);
        let id = self.groups.iter().copied().max().unwrap_or(0) + 1;
        self.groups[n] = id;
    }

    /// Removes every partition: all nodes can reach each other again.
    pub fn heal(&mut self) {
        self.groups.iter_mut().for_each(|g| *g = 0);
    }

    /// Whether datagrams can currently flow between `a` and `b` (partitions only; loss
    /// still applies).
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.group(a) == self.group(b)
    }

    /// Decides what happens to one datagram sent now from `from` to `to`.
    pub fn route(&mut self, now: Instant, from: usize, to: usize) -> Result<Arrivals, DropCause> {
        if !self.reachable(from, to) {
            self.stats.partitioned += 1;
            return Err(DropCause::Partitioned);
        }
        let link = self.link(from, to);
        if self.rng.chance(link.loss) {
            self.stats.lost += 1;
            return Err(DropCause::Lost);
        }
        let first = now + self.delay(&link);
        let second = if self.rng.chance(link.duplicate) {
            self.stats.duplicated += 1;
            Some(now + self.delay(&link))
        } else {
            None
        };
        Ok(match second {
            Some(s) if s < first => Arrivals([Some(s), Some(first)]),
            other => Arrivals([Some(first), other]),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Mutable counters, for the simulator's own delivery accounting.
    pub(crate) fn stats_mut(&mut self) -> &mut NetStats {
        &mut self.stats
    }

    fn delay(&mut self, link: &LinkProfile) -> Duration {
        link.latency + Duration::from_millis(self.rng.up_to(link.jitter.as_millis()))
    }

    fn group(&self, n: usize) -> u32 {
        self.groups.get(n).copied().unwrap_or(0)
    }

    fn ensure(&mut self, n: usize) {
        if self.groups.len() <= n {
            self.groups.resize(n + 1, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_block_and_heal() {
        let mut net = Network::new(LinkProfile::PERFECT, 1);
        net.partition(&[&[0, 1], &[2]]);
        assert!(net.reachable(0, 1));
        assert!(!net.reachable(1, 2));
        assert!(!net.reachable(0, 3));
        assert_eq!(net.route(Instant::ZERO, 0, 2), Err(DropCause::Partitioned));
        net.heal();
        assert!(net.reachable(0, 2));
        net.isolate(2);
        assert!(!net.reachable(0, 2) && net.reachable(0, 1));
    }

    #[test]
    fn delay_is_within_latency_plus_jitter() {
        let link = LinkProfile::LAN.with_delay(Duration::from_millis(5), Duration::from_millis(3));
        let mut net = Network::new(link, 9);
        for _ in 0..200 {
            let at: Vec<_> = net
                .route(Instant::from_millis(100), 0, 1)
                .unwrap()
                .iter()
                .collect();
            assert_eq!(at.len(), 1);
            assert!((105..=108).contains(&at[0].as_millis()));
        }
    }

    #[test]
    fn duplication_yields_two_ordered_copies() {
        let mut net = Network::new(LinkProfile::LAN.with_duplicate(1.0), 3);
        let at: Vec<_> = net.route(Instant::ZERO, 0, 1).unwrap().iter().collect();
        assert_eq!(at.len(), 2);
        assert!(at[0] <= at[1]);
        assert_eq!(net.stats().duplicated, 1);
    }

    #[test]
    fn per_link_override_wins() {
        let mut net = Network::new(LinkProfile::PERFECT, 3);
        net.set_link_directed(0, 1, LinkProfile::PERFECT.with_loss(1.0));
        assert_eq!(net.route(Instant::ZERO, 0, 1), Err(DropCause::Lost));
        assert!(net.route(Instant::ZERO, 1, 0).is_ok());
    }
}
