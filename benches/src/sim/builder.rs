//! Building whole clusters in one call, with conventional names and addresses.

use std::net::{Ipv4Addr, SocketAddr};

use rumor_core::{Config, Duration, Instant};

use super::{Cluster, LinkProfile, Sim, SimConfig, SimMember};

/// The conventional name of the `i`th node of a built cluster: `node-<i>`.
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// The `k`th virtual address: `198.18.0.1:7946`, `198.18.0.2:7946`, ... taken from the
/// RFC 2544 benchmarking range, so they can never be mistaken for a real peer. These are
/// labels inside the simulator; no socket is ever opened.
///
/// # Panics
/// Past the range's 131,070 addresses.
pub fn sim_addr(k: u32) -> SocketAddr {
    assert!(k < (1 << 17) - 2, "out of simulated addresses");
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    SocketAddr::from((Ipv4Addr::from(base + k + 1), 7946))
}

/// Builds a [`Sim`] of `n` nodes named [`node_name`]`(i)`, all with one [`Config`], where
/// every node but node 0 joins through node 0.
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    nodes: usize,
    config: Config,
    sim: SimConfig,
    stagger: Duration,
    join: bool,
}

impl ClusterBuilder {
    /// `n` nodes with [`Config::lan`], seed 0, [`LinkProfile::LAN`] links, all joining
    /// at time zero.
    pub fn new(n: usize) -> Self {
        ClusterBuilder {
            nodes: n,
            config: Config::lan(),
            sim: SimConfig::default(),
            stagger: Duration::ZERO,
            join: true,
        }
    }

    /// The seed of the run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.sim.seed = seed;
        self
    }

    /// Every node's protocol config.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The default link profile.
    pub fn link(mut self, link: LinkProfile) -> Self {
        self.sim.link = link;
        self
    }

    /// All simulator settings at once (the seed and link set so far are overwritten).
    pub fn sim_config(mut self, sim: SimConfig) -> Self {
        self.sim = sim;
        self
    }

    /// Node `i` joins at `i * stagger` instead of all at time zero (the simulation runs
    /// meanwhile).
    pub fn join_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }

    /// Adds the nodes but joins none of them.
    pub fn without_join(mut self) -> Self {
        self.join = false;
        self
    }

    /// Builds the simulation of rumor nodes.
    ///
    /// # Panics
    /// If a join is rejected.
    pub fn build<const M: usize, const U: usize>(self) -> Sim<M, U> {
        self.build_members()
    }

    /// Builds the simulation of any [`SimMember`], configured with
    /// [`SimMember::config_from`] the builder's rumor config.
    ///
    /// # Panics
    /// If a join is rejected.
    pub fn build_members<N: SimMember>(self) -> Cluster<N> {
        let mut sim = Cluster::new(self.sim);
        let config = N::config_from(&self.config, self.nodes);
        for i in 0..self.nodes {
            sim.add_node(&node_name(i), config.clone());
        }
        if self.join {
            for i in 1..self.nodes {
                sim.run_until(Instant::ZERO + self.stagger.saturating_mul(i as u64));
                sim.join(i, 0)
                    .unwrap_or_else(|e| panic!("node {i} could not join: {e:?}"));
            }
        }
        sim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_in_range() {
        assert_eq!(sim_addr(0), "198.18.0.1:7946".parse().unwrap());
        assert_eq!(sim_addr(255), "198.18.1.0:7946".parse().unwrap());
        assert_ne!(sim_addr(1), sim_addr(2));
    }
}
