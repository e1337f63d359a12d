//! An arbitrary schedule of losses, partitions, crashes, pauses and restarts run through
//! the deterministic simulator (which checks its invariants after every step); then the
//! network heals, and the survivors must converge to seeing each other alive.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rumor_bench::sim::{ClusterBuilder, LinkProfile, NodeState, Sim};
use rumor_core::{Config, Duration};

const NODES: usize = 6;
/// Virtual time allowed for convergence once the network is healed: long enough for a
/// reconnect push-pull (15 s in the local profile) to reach every failed member a few
/// times and for every suspicion to run out.
const HEAL_BOUND: Duration = Duration::from_secs(240);

#[derive(Arbitrary, Debug)]
enum Step {
    Run { ms: u16 },
    Loss { percent: u8 },
    Split { mask: u8 },
    Heal,
    Crash { node: u8 },
    Pause { node: u8, ms: u16 },
    Restart { node: u8, via: u8 },
    Leave { node: u8 },
}

#[derive(Arbitrary, Debug)]
struct Schedule {
    seed: u64,
    steps: Vec<Step>,
}

fuzz_target!(|s: Schedule| {
    let mut sim: Sim<8, 16> = ClusterBuilder::new(NODES)
        .seed(s.seed)
        .config(Config::local())
        .link(LinkProfile::LAN)
        .build();
    // The schedule acts on a formed cluster (a seed that leaves before anyone joined it
    // leaves nothing to heal).
    let formed = sim.run_until_pred(sim.now() + Duration::from_secs(60), |s| s.converged());
    assert!(
        formed.is_some(),
        "the cluster did not form (seed {:#x})",
        sim.seed()
    );
    let mut down = [false; NODES];
    // When the current split began, and the longest one so far.
    let mut split_since = None;
    let mut longest_split = Duration::ZERO;
    // Node 0, the seed everyone joined through, crashed, left or moved at some point.
    let mut seed_lost = false;
    for step in s.steps.into_iter().take(24) {
        match step {
            Step::Run { ms } => sim.run_for(Duration::from_millis(u64::from(ms) * 4)),
            Step::Loss { percent } => {
                let p = f64::from(percent % 60) / 100.0;
                sim.net_mut()
                    .set_default_link(LinkProfile::LAN.with_loss(p));
            }
            Step::Split { mask } => {
                let side: Vec<usize> = (0..NODES).filter(|i| mask & (1 << i) != 0).collect();
                sim.partition(&[&side]);
                split_since.get_or_insert(sim.now());
            }
            Step::Heal => {
                sim.heal();
                if let Some(t) = split_since.take() {
                    longest_split = longest_split.max(sim.now() - t);
                }
            }
            Step::Crash { node } => {
                let i = usize::from(node) % NODES;
                if sim.is_running(i) && !sim.is_leaving(i) {
                    sim.crash(i);
                    down[i] = true;
                    seed_lost |= i == 0;
                }
            }
            Step::Pause { node, ms } => {
                let i = usize::from(node) % NODES;
                if sim.is_running(i) {
                    sim.pause(i, Duration::from_millis(u64::from(ms % 10_000)));
                }
            }
            Step::Restart { node, via } => {
                let i = usize::from(node) % NODES;
                // Join through a member that is up; pick one from `via`.
                let ups: Vec<usize> = (0..NODES).filter(|&j| j != i && !down[j]).collect();
                if down[i] && !ups.is_empty() {
                    let v = ups[usize::from(via) % ups.len()];
                    let addr = sim.fresh_addr();
                    let _ = sim.restart(i, addr, v);
                    // Through every member up now, as an operator lists several seeds: a
                    // node whose only seed leaves next is alone by the schedule's own doing.
                    for &u in &ups {
                        let _ = sim.join(i, u);
                    }
                    down[i] = false;
                    seed_lost |= i == 0;
                }
            }
            Step::Leave { node } => {
                let i = usize::from(node) % NODES;
                // Only a node that is up can be told to leave (a paused one hears nothing).
                let up = sim.state(i) == NodeState::Up;
                if up && !sim.is_leaving(i) && sim.running().count() > 2 {
                    sim.leave(i);
                    down[i] = true;
                    seed_lost |= i == 0;
                }
            }
        }
    }
    sim.heal();
    if let Some(t) = split_since.take() {
        longest_split = longest_split.max(sim.now() - t);
    }
    sim.net_mut().set_default_link(LinkProfile::LAN);
    // Every node joined through node 0. Sides split for longer than the reap timeout forget
    // each other and can only meet again through that seed: with it gone, staying apart is
    // the expected outcome (Serf's reconnect has the same horizon), not a failure.
    if longest_split >= Config::local().reap_timeout && seed_lost {
        return;
    }
    // Nodes crashed or left stay down; every survivor that ever joined must see every other
    // survivor alive again.
    let deadline = sim.now() + HEAL_BOUND;
    let converged = sim.run_until_pred(deadline, |s| s.converged());
    assert!(
        converged.is_some(),
        "no convergence {} s after healing (seed {:#x})",
        HEAL_BOUND.as_millis() / 1000,
        sim.seed()
    );
});
