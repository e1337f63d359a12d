//! foca runs through the same simulator as rumor, with every table checked after every step.

use rumor_bench::peer::foca::FocaMember;
use rumor_bench::sim::{Cluster, ClusterBuilder, LinkProfile, ObsKind};
use rumor_core::{Config, Duration, Instant};

fn cluster(n: usize, seed: u64) -> Cluster<FocaMember> {
    ClusterBuilder::new(n)
        .seed(seed)
        .config(Config::lan())
        .link(LinkProfile::LAN)
        .build_members()
}

#[test]
fn foca_cluster_joins_detects_a_crash_and_delivers_an_event() {
    let mut sim = cluster(12, 5);
    let t = sim.run_until_pred(Instant::from_secs(60), |s| s.all_up());
    assert!(t.is_some(), "12 foca members never all saw each other");
    let victim = 7;
    let name = sim.name(victim).to_owned();
    sim.crash(victim);
    let detected = sim.run_until_pred(sim.now() + Duration::from_secs(60), |s| {
        s.log().observer_count(ObsKind::Failed, &name) == 11
    });
    assert!(detected.is_some(), "the crash was not detected by all");
    sim.send_user_event(0, "deploy", b"v2").expect("sent");
    sim.run_for(Duration::from_secs(10));
    let delivered = sim.log().user_deliveries().len();
    assert_eq!(delivered, 11, "every running member, the sender included");
    assert!(sim.false_failures().is_empty());
}

/// Same seed, same run; another seed, another run (so the fingerprint is not constant).
#[test]
fn foca_runs_are_deterministic() {
    let run = |seed| {
        let mut sim = cluster(8, seed);
        sim.run_for(Duration::from_secs(20));
        (sim.trace_hash(), sim.log().entries().len(), sim.steps())
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert!(a.1 > 0 && a.2 > 0, "nothing happened: {a:?}");
    assert_eq!(a, b, "same seed, different runs");
    assert_ne!(a.0, c.0, "different seeds, same trace");
}
