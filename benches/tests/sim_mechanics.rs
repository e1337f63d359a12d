//! Checks of the simulator's own machinery (faults, buffering, addressing, run control),
//! on small real clusters. The protocol outcomes live in `scenarios.rs`.

use rumor_bench::sim::{ClusterBuilder, LinkProfile, NodeState, Sim, SimConfig};
use rumor_core::{Config, Duration, Instant, Status};

/// A converged 5-node LAN cluster.
fn small_cluster(seed: u64) -> Sim<8, 8> {
    let mut sim: Sim<8, 8> = ClusterBuilder::new(5).seed(seed).build();
    let converged = sim.run_until_pred(Instant::from_secs(20), Sim::converged);
    assert!(converged.is_some(), "5 nodes did not converge");
    sim
}

fn received<const M: usize, const U: usize>(sim: &Sim<M, U>, i: usize) -> u64 {
    sim.node(i).stats().datagrams_received
}

#[test]
fn paused_node_buffers_then_catches_up() {
    let mut sim = small_cluster(1);
    let before = received(&sim, 2);
    sim.pause(2, Duration::from_secs(3));
    sim.run_for(Duration::from_millis(2900));
    assert_eq!(sim.state(2), NodeState::Paused);
    assert_eq!(
        received(&sim, 2),
        before,
        "a paused node processed datagrams"
    );
    sim.run_for(Duration::from_millis(200));
    assert_eq!(sim.state(2), NodeState::Up);
    assert!(
        received(&sim, 2) > before,
        "buffered datagrams were not delivered on resume"
    );
    assert_eq!(sim.net().stats().buffer_overflow, 0);
}

#[test]
fn pause_buffer_is_bounded() {
    let cfg = SimConfig {
        seed: 2,
        pause_buffer_bytes: 64,
        ..SimConfig::default()
    };
    let mut sim: Sim<8, 8> = ClusterBuilder::new(5).sim_config(cfg).build();
    sim.run_until_pred(Instant::from_secs(20), Sim::converged)
        .expect("converged");
    sim.pause(0, Duration::from_secs(5));
    sim.run_for(Duration::from_secs(6));
    assert!(sim.net().stats().buffer_overflow > 0);
}

#[test]
fn crashed_node_is_silent_and_deaf() {
    let mut sim = small_cluster(3);
    sim.crash(4);
    let (sent, got) = (sim.node(4).stats().datagrams_sent, received(&sim, 4));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.state(4), NodeState::Crashed);
    assert_eq!(
        (sim.node(4).stats().datagrams_sent, received(&sim, 4)),
        (sent, got)
    );
    assert!(
        sim.net().stats().to_down_node > 0,
        "nobody tried to reach the crashed node"
    );
}

#[test]
fn restart_moves_the_node_and_retires_its_old_address() {
    let mut sim = small_cluster(4);
    let old = sim.addr(3);
    sim.crash(3);
    // Keep the new life cut off, so the others go on sending to the old address.
    sim.net_mut().isolate(3);
    let new = sim.fresh_addr();
    sim.restart(3, new, 0).expect("rejoin");
    assert_eq!(
        (sim.addr(3), sim.state(3), sim.index_of("node-3")),
        (new, NodeState::Up, Some(3))
    );
    assert_ne!(old, new);
    sim.run_for(Duration::from_secs(5));
    assert!(
        sim.net().stats().unroutable > 0,
        "nobody tried the old address"
    );
}

#[test]
fn partition_drops_cross_traffic_and_heal_restores_it() {
    let mut sim = small_cluster(5);
    sim.partition(&[&[0, 1], &[2, 3, 4]]);
    assert!(!sim.net().reachable(1, 2) && sim.net().reachable(2, 4));
    sim.run_for(Duration::from_secs(5));
    let cut = sim.net().stats().partitioned;
    assert!(cut > 0);
    sim.heal();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.net().stats().partitioned, cut);
}

#[test]
fn total_loss_keeps_nodes_apart() {
    let mut sim: Sim<8, 8> = ClusterBuilder::new(3)
        .seed(6)
        .link(LinkProfile::LAN.with_loss(1.0))
        .build();
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.net().stats().delivered, 0);
    assert_eq!(sim.status_of(1, 0), None);
    assert_eq!(
        sim.status_of(1, 1),
        Some(Status::Alive),
        "a node always holds itself"
    );
}

#[test]
fn run_until_pred_reports_the_first_instant_or_stops_at_the_deadline() {
    let mut sim = small_cluster(7);
    let target = sim.now() + Duration::from_millis(1234);
    let hit = sim.run_until_pred(target + Duration::from_secs(5), |s| s.now() >= target);
    let hit = hit.expect("time passes");
    assert!(
        hit >= target && hit < target + Duration::from_secs(1),
        "{hit:?}"
    );
    assert_eq!(hit, sim.now());
    let deadline = sim.now() + Duration::from_secs(2);
    assert_eq!(sim.run_until_pred(deadline, |_| false), None);
    assert_eq!(sim.now(), deadline);
}

#[test]
fn datagrams_respect_max_datagram() {
    // The simulator asserts this on every transmit; a small MTU makes it bite.
    let mut sim: Sim<16, 16> = ClusterBuilder::new(12)
        .seed(8)
        .config(Config::small_mtu())
        .build();
    let converged = sim.run_until_pred(Instant::from_secs(30), Sim::converged);
    assert!(converged.is_some());
    assert!(sim.net().stats().sent > 0);
}

#[test]
fn injected_garbage_is_rejected_and_counted() {
    let mut sim = small_cluster(9);
    let from = sim.fresh_addr();
    assert!(sim.inject_datagram(1, from, &[0xFF; 3]).is_err());
    assert_eq!(sim.rejected_datagrams().values().sum::<u64>(), 1);
    sim.crash(2);
    assert_eq!(
        sim.inject_datagram(2, from, &[0xFF; 3]),
        Ok(()),
        "a crashed node ignores it"
    );
}

#[test]
fn tap_sees_every_delivery() {
    use std::cell::Cell;
    use std::rc::Rc;
    let mut sim = small_cluster(10);
    let seen = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&seen);
    sim.set_tap(move |d| {
        assert!(d.from_node.is_some() && d.from_node != Some(d.to_node));
        counter.set(counter.get() + 1);
    });
    let before = sim.net().stats().delivered;
    sim.run_for(Duration::from_secs(3));
    sim.clear_tap();
    assert_eq!(seen.get(), sim.net().stats().delivered - before);
    assert!(seen.get() > 0);
}
