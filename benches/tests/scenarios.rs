//! Cluster scenarios run in the deterministic simulator.
//!
//! Every scenario uses a fixed seed, asserts the protocol outcome (never wall-clock time),
//! and prints the figures it measured; run with `--nocapture` to see them:
//!
//! ```text
//! cargo test --release -p rumor-bench --test scenarios -- --nocapture --test-threads=1
//! ```
//!
//! The simulator checks its invariants (monotonic incarnations, no resurrection at the same
//! incarnation, capacity, datagram size) after every node step of every scenario.

use std::collections::BTreeMap;

use rumor_bench::sim::{ClusterBuilder, LinkProfile, NodeState, ObsKind, Sim, SimConfig};
use rumor_core::{Config, Duration, Instant, Status};

/// Capacity (members and updates) used for the 100-node scenarios.
const BIG: usize = 128;

/// The LAN preset every scenario runs (probe every 1 s, push-pull every 30 s, scaled to
/// 60 s above 32 members).
const LAN: Config = Config::lan();

// ----- shared helpers ---------------------------------------------------------------------

/// Runs `body` with `seed`, printing the scenario's name, seed and wall time around the
/// figures it prints itself.
///
/// `RUMOR_SIM_SEED=<n>` replaces the scenario's own seed, to explore other runs.
fn scenario<T>(name: &str, seed: u64, body: impl FnOnce(u64) -> T) -> T {
    let seed = std::env::var("RUMOR_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    println!("--- scenario {name} (seed {seed:#x})");
    let wall = std::time::Instant::now();
    let out = body(seed);
    println!("    wall time {:.2?}", wall.elapsed());
    out
}

/// Prints one measured figure.
fn figure(label: &str, value: impl std::fmt::Display) {
    println!("    {label:<36} {value}");
}

/// Virtual time since the origin, for printing.
fn at(t: Instant) -> Duration {
    t - Instant::ZERO
}

/// `k` probe periods of the LAN preset.
fn probes(k: u64) -> Duration {
    LAN.probe_interval.saturating_mul(k)
}

/// `n` nodes on `link`, all joining node 0 at time zero, run until everyone sees everyone
/// alive. Returns the simulation and the convergence instant.
///
/// # Panics
/// If the cluster has not converged within `bound`.
fn converged_cluster<const M: usize, const U: usize>(
    n: usize,
    seed: u64,
    link: LinkProfile,
    bound: Duration,
) -> (Sim<M, U>, Instant) {
    converged_cluster_with(n, seed, link, bound, SimConfig::default())
}

/// [`converged_cluster`] with the simulator's settings `sim` (its seed is replaced).
fn converged_cluster_with<const M: usize, const U: usize>(
    n: usize,
    seed: u64,
    link: LinkProfile,
    bound: Duration,
    sim: SimConfig,
) -> (Sim<M, U>, Instant) {
    let mut sim: Sim<M, U> = ClusterBuilder::new(n)
        .sim_config(sim)
        .seed(seed)
        .config(LAN)
        .link(link)
        .build();
    let deadline = sim.now() + bound;
    let Some(t) = sim.run_until_pred(deadline, Sim::converged) else {
        panic!(
            "{n} nodes not converged by {}\n{}",
            at(deadline),
            summary(&sim)
        );
    };
    (sim, t)
}

/// How long a scenario's set-up may take to converge before its fault is injected: two
/// push-pull intervals as scaled for up to 64 members (2 x 60 s). Gossip usually converges
/// a simultaneous join in about a second, but it is probabilistic: in a few percent of
/// seeds one node misses one newcomer's announcement until the next push-pull repairs it
/// (e.g. 40 nodes, seed 109: 23 s). Only scenario a holds the join itself to a tighter bound.
const SETUP_BOUND: Duration = Duration::from_secs(120);
/// Time for in-flight suspicions to be refuted once a lossy network turns clean: the
/// longest suspicion timeout at 50 nodes is about 41 s, so refutation well within it.
const SETTLE_BOUND: Duration = Duration::from_secs(60);

/// A converged cluster of `n` nodes on healthy LAN links.
fn lan_cluster<const M: usize, const U: usize>(n: usize, seed: u64) -> Sim<M, U> {
    converged_cluster(n, seed, LinkProfile::LAN, SETUP_BOUND).0
}

/// A digest of who sees what, one line per running node, for failure messages.
fn summary<const M: usize, const U: usize>(sim: &Sim<M, U>) -> String {
    let mut out = format!("seed {:#x}, t={}:\n", sim.seed(), at(sim.now()));
    for o in sim.running() {
        let mut by_status: BTreeMap<Status, usize> = BTreeMap::new();
        for (_, seen) in sim.view(o) {
            *by_status.entry(seen.status).or_default() += 1;
        }
        out += &format!("  {} ({:?}): {by_status:?}\n", sim.name(o), sim.state(o));
    }
    out
}

/// Runs until every running node other than `member` has reported `kind` about it, or
/// until `bound` has passed. Returns the instant it happened.
fn await_reports<const M: usize, const U: usize>(
    sim: &mut Sim<M, U>,
    kind: ObsKind,
    member: usize,
    bound: Duration,
) -> Option<Instant> {
    let observers: Vec<usize> = sim.running().filter(|&o| o != member).collect();
    await_reports_from(sim, kind, member, &observers, bound)
}

/// Runs until each of `observers` has reported `kind` about `member`, or until `bound` has
/// passed. Returns the instant it happened.
fn await_reports_from<const M: usize, const U: usize>(
    sim: &mut Sim<M, U>,
    kind: ObsKind,
    member: usize,
    observers: &[usize],
    bound: Duration,
) -> Option<Instant> {
    let deadline = sim.now() + bound;
    let name = sim.name(member).to_owned();
    sim.run_until_pred(deadline, |s| {
        observers
            .iter()
            .all(|&o| s.log().first(kind, &name, o).is_some())
    })
}

/// Prints how many observers reported `kind` about `member`, and the first and last of
/// their first reports relative to `since`.
fn report_detection<const M: usize, const U: usize>(
    sim: &Sim<M, U>,
    kind: ObsKind,
    member: usize,
    since: Instant,
) {
    let d = sim.log().detections(kind, sim.name(member));
    figure(
        &format!("{kind:?} reports about {}", sim.name(member)),
        d.count(),
    );
    if let (Some(first), Some(last)) = (d.first(), d.last()) {
        figure("first report after the fault", first - since);
        figure("last report after the fault", last - since);
    }
}

/// Prints network and protocol totals common to all scenarios.
fn report_totals<const M: usize, const U: usize>(sim: &Sim<M, U>) {
    let net = sim.net().stats();
    figure("virtual time", at(sim.now()));
    figure(
        "datagrams sent / delivered",
        format!("{} / {}", net.sent, net.delivered),
    );
    let bytes: u64 = (0..sim.len()).map(|i| sim.node(i).stats().bytes_sent).sum();
    figure("bytes sent", bytes);
    figure("suspicions reported", sim.log().total(ObsKind::Suspected));
    figure("failures reported", sim.log().total(ObsKind::Failed));
    figure("false failures", sim.false_failures().len());
    if !sim.rejected_datagrams().is_empty() {
        figure(
            "datagrams rejected by nodes",
            format!("{:?}", sim.rejected_datagrams()),
        );
    }
}

// ----- scenarios --------------------------------------------------------------------------

/// a) 100 nodes join through one seed and all see all 100 alive within 20 probe periods.
#[test]
fn a_hundred_nodes_converge_through_one_seed() {
    scenario("a: 100 nodes join through one seed", 0xA, |seed| {
        let (sim, t) = converged_cluster::<BIG, BIG>(100, seed, LinkProfile::LAN, probes(20));
        figure("convergence time", at(t));
        report_totals(&sim);
        assert!(sim.false_failures().is_empty());
    });
}

/// b) A crashed node of 50 is marked failed by every other node.
#[test]
fn b_crashed_node_is_detected_by_everyone() {
    scenario("b: crash one node of 50", 0xB, |seed| {
        let mut sim = lan_cluster::<64, 64>(50, seed);
        let victim = 17;
        let crashed_at = sim.now();
        sim.crash(victim);
        let done = await_reports(&mut sim, ObsKind::Failed, victim, Duration::from_secs(120));
        report_detection(&sim, ObsKind::Failed, victim, crashed_at);
        report_totals(&sim);
        assert!(
            done.is_some(),
            "not everyone marked the crash failed\n{}",
            summary(&sim)
        );
        assert!(sim.all_see(victim, Status::Failed));
        assert!(
            sim.false_failures().is_empty(),
            "{:?}",
            sim.false_failures()
        );
    });
}

/// c) A node of 50 leaves gracefully: all others see it left, none ever sees it failed.
#[test]
fn c_graceful_leave_is_never_taken_for_a_failure() {
    scenario("c: graceful leave of one node of 50", 0xC, |seed| {
        let mut sim = lan_cluster::<64, 64>(50, seed);
        let leaver = 23;
        let left_at = sim.now();
        sim.leave(leaver);
        let done = await_reports(&mut sim, ObsKind::Left, leaver, Duration::from_secs(60));
        report_detection(&sim, ObsKind::Left, leaver, left_at);
        // Keep running well past any suspicion timeout to catch a late false failure.
        sim.run_for(Duration::from_secs(120));
        report_totals(&sim);
        assert!(
            done.is_some(),
            "not everyone saw the leave\n{}",
            summary(&sim)
        );
        assert_eq!(
            sim.state(leaver),
            NodeState::Stopped,
            "LeaveComplete never came"
        );
        assert!(sim.all_see(leaver, Status::Left));
        assert_eq!(
            sim.log().observer_count(ObsKind::Failed, sim.name(leaver)),
            0
        );
    });
}

/// d) 50 nodes with 10% loss on every link for 10 minutes: nobody is ever declared failed.
#[test]
fn d_ten_percent_loss_causes_no_false_failures() {
    scenario("d: 50 nodes, 10% loss, 10 minutes", 0xD, |seed| {
        let lossy = LinkProfile::LAN.with_loss(0.10);
        let (mut sim, t) = converged_cluster::<64, 64>(50, seed, lossy, SETUP_BOUND);
        figure("convergence time under loss", at(t));
        sim.run_until(Instant::ZERO + Duration::from_secs(600));
        report_totals(&sim);
        for f in sim.false_failures() {
            figure(
                "false failure",
                format!(
                    "t={} {} declared {}",
                    at(f.at),
                    sim.name(f.observer),
                    sim.name(f.member)
                ),
            );
        }
        assert_eq!(
            sim.log().total(ObsKind::Failed),
            0,
            "{:?}",
            sim.false_failures()
        );
        // Under loss some suspicion is always in flight; once the loss stops, every one of
        // them is refuted and the cluster settles to all alive.
        sim.net_mut().set_default_link(LinkProfile::LAN);
        let settle = sim.now() + SETTLE_BOUND;
        let settled = sim.run_until_pred(settle, |s| s.converged());
        assert!(
            settled.is_some(),
            "cluster did not settle after the loss stopped\n{}",
            summary(&sim)
        );
        figure(
            "settled after loss stopped",
            at(settled.unwrap()) - Duration::from_secs(600),
        );
    });
}

/// e) A node of 20 paused for 5 s is never declared failed, and ends alive everywhere.
#[test]
fn e_paused_node_refutes_and_stays_alive() {
    scenario("e: one node of 20 paused for 5 s", 0xE, |seed| {
        let mut sim = lan_cluster::<32, 32>(20, seed);
        let sleeper = 5;
        let paused_at = sim.now();
        sim.pause(sleeper, Duration::from_secs(5));
        sim.run_for(Duration::from_secs(60));
        let name = sim.name(sleeper).to_owned();
        figure(
            "observers that suspected it",
            sim.log().observer_count(ObsKind::Suspected, &name),
        );
        if let Some(first) = sim.log().detections(ObsKind::Suspected, &name).first() {
            figure("first suspicion after the pause", first - paused_at);
        }
        let incarnation = sim.seen(sleeper, sleeper).map(|s| s.incarnation);
        figure("its incarnation afterwards", format!("{incarnation:?}"));
        report_totals(&sim);
        assert_eq!(sim.log().observer_count(ObsKind::Failed, &name), 0);
        assert!(sim.all_see(sleeper, Status::Alive), "{}", summary(&sim));
        assert!(sim.converged());
    });
}

/// k) A crashed process on a live host (the simulator answers for it with ICMP port
/// unreachable), 50 nodes under 10 % loss, while another node is paused for 5 s (no ICMP:
/// its socket is open): with ICMP evidence the crash is detected everywhere sooner than by
/// timeouts alone (same seed, same faults), and neither run declares anyone else failed.
#[test]
fn k_icmp_evidence_detects_a_crash_sooner_without_false_failures() {
    scenario(
        "k: crash with ICMP, 50 nodes, 10% loss, one paused",
        0x4B,
        |seed| {
            let run = |icmp: bool| -> Duration {
                let lossy = LinkProfile::LAN.with_loss(0.10);
                let sim_config = SimConfig {
                    icmp,
                    ..SimConfig::default()
                };
                let (mut sim, _) =
                    converged_cluster_with::<64, 64>(50, seed, lossy, SETUP_BOUND, sim_config);
                let (victim, sleeper) = (17, 5);
                let crashed_at = sim.now();
                sim.crash(victim);
                sim.pause(sleeper, Duration::from_secs(5));
                // The sleeper reports it too, once awake: not counted in the figure.
                let observers: Vec<usize> = sim
                    .running()
                    .filter(|&o| o != victim && o != sleeper)
                    .collect();
                let bound = Duration::from_secs(120);
                let done = await_reports_from(&mut sim, ObsKind::Failed, victim, &observers, bound);
                sim.run_for(Duration::from_secs(60));
                println!("    with ICMP: {icmp}");
                report_detection(&sim, ObsKind::Failed, victim, crashed_at);
                report_totals(&sim);
                let Some(done) = done else {
                    panic!("not everyone marked the crash failed\n{}", summary(&sim));
                };
                assert!(
                    sim.false_failures().is_empty(),
                    "{:?}",
                    sim.false_failures()
                );
                let sleeper_name = sim.name(sleeper).to_owned();
                assert_eq!(sim.log().observer_count(ObsKind::Failed, &sleeper_name), 0);
                done - crashed_at
            };
            let (with, without) = (run(true), run(false));
            figure(
                "everyone detected it: ICMP / timeouts",
                format!(
                    "{with} / {without} = {:.2}",
                    with.as_millis() as f64 / without.as_millis() as f64
                ),
            );
            assert!(with < without);
        },
    );
}

/// f) 40 nodes split in two halves for 60 s: each side marks the other failed; after the
/// heal, everyone sees all 40 alive again.
#[test]
fn f_partition_heals_after_split() {
    // Heal bound. Measured: 2.4 s (seed 0xF). What guarantees it: every node push-pulls once
    // per interval (LAN 30 s, doubled above 32 members: 60 s) and each push-pull also tries
    // one failed member, so the first push-pull after the heal crosses the old cut and
    // carries each side's "failed" claims to the other, which refutes them; gossip then
    // spreads the refutations in a few rounds. One scaled interval (60 s) plus margin:
    // 90 s, i.e. 3 unscaled LAN push-pull intervals.
    const HEAL_BOUND: Duration = Duration::from_secs(90);
    scenario("f: 40 nodes split in halves for 60 s", 0xF, |seed| {
        let mut sim = lan_cluster::<64, 64>(40, seed);
        let left: Vec<usize> = (0..20).collect();
        let right: Vec<usize> = (20..40).collect();
        sim.partition(&[&left, &right]);
        sim.run_for(Duration::from_secs(60));
        let saw_failed = |sim: &Sim<64, 64>, observers: &[usize], members: &[usize]| {
            let log = sim.log();
            observers.iter().all(|&o| {
                members
                    .iter()
                    .all(|&x| log.first(ObsKind::Failed, sim.name(x), o).is_some())
            })
        };
        let both_sides = saw_failed(&sim, &left, &right) && saw_failed(&sim, &right, &left);
        let healed_at = sim.now();
        sim.heal();
        let converged = sim.run_until_pred(healed_at + HEAL_BOUND, Sim::converged);
        figure("each side saw the other failed", both_sides);
        if let Some(t) = converged {
            figure("heal time (after the partition ends)", t - healed_at);
        }
        report_totals(&sim);
        assert!(
            both_sides,
            "a side did not mark the other failed\n{}",
            summary(&sim)
        );
        assert!(
            converged.is_some(),
            "not healed within {HEAL_BOUND}\n{}",
            summary(&sim)
        );
    });
}

/// j) A partition that outlasts the reap timeout: each side forgets the other entirely, so
/// no reconnect to a failed member is possible; the seeds the nodes joined through bring
/// them back together.
#[test]
fn j_partition_longer_than_the_reap_timeout_heals_through_the_seeds() {
    // Heal bound: the side without the seed contacts it at its next push-pull (LAN: every
    // 30 s below 32 members, first one within 45 s of the heal); then refutations and
    // joins spread by gossip. 90 s leaves margin.
    const HEAL_BOUND: Duration = Duration::from_secs(90);
    scenario(
        "j: 20 nodes split for longer than the reap timeout",
        0x1A,
        |seed| {
            let mut sim = lan_cluster::<32, 32>(20, seed);
            let left: Vec<usize> = (0..10).collect();
            let right: Vec<usize> = (10..20).collect();
            sim.partition(&[&left, &right]);
            sim.run_for(LAN.reap_timeout + Duration::from_secs(60));
            let forgotten = sim.node(0).member(sim.name(15)).is_none()
                && sim.node(15).member(sim.name(0)).is_none();
            let healed_at = sim.now();
            sim.heal();
            let converged = sim.run_until_pred(healed_at + HEAL_BOUND, Sim::converged);
            figure("each side forgot the other", forgotten);
            if let Some(t) = converged {
                figure("heal time (after the partition ends)", t - healed_at);
            }
            report_totals(&sim);
            assert!(forgotten, "the sides were not reaped\n{}", summary(&sim));
            assert!(
                converged.is_some(),
                "not healed within {HEAL_BOUND}\n{}",
                summary(&sim)
            );
        },
    );
}

/// Crashes node 7 of 20, restarts it `downtime` later under the same name at a new
/// address, and checks that everyone ends with it alive at the new address and holds no
/// entry for the old one.
fn restart_scenario(seed: u64, downtime: Duration) {
    let mut sim = lan_cluster::<32, 32>(20, seed);
    let phoenix = 7;
    let old = sim.addr(phoenix);
    sim.crash(phoenix);
    sim.run_for(downtime);
    figure(
        "observers that marked it failed",
        sim.count_seeing(phoenix, Status::Failed),
    );
    let new = sim.fresh_addr();
    let restarted_at = sim.now();
    sim.restart(phoenix, new, 0).expect("rejoin");
    let converged = sim.run_until_pred(restarted_at + Duration::from_secs(120), Sim::converged);
    if let Some(t) = converged {
        figure("all see the new address after", t - restarted_at);
    }
    let ghosts: Vec<String> = sim
        .running()
        .flat_map(|o| {
            let view = sim.view(o);
            let held = view.into_iter().filter(|(_, seen)| seen.addr == old);
            held.map(move |(name, seen)| format!("{o} holds {name} at {old}: {seen:?}"))
        })
        .collect();
    report_totals(&sim);
    assert!(
        converged.is_some(),
        "restart not converged\n{}",
        summary(&sim)
    );
    assert!(
        sim.running()
            .all(|o| sim.seen(o, phoenix).is_some_and(|s| s.addr == new))
    );
    assert!(ghosts.is_empty(), "ghost entries: {ghosts:#?}");
}

/// g) A node restarted under the same name at a new address before anyone declared it
/// failed ends alive at the new address everywhere, with no entry left for the old one.
#[test]
fn g_quick_restart_with_new_address_replaces_the_old_entry() {
    scenario("g: restart at a new address after 2 s", 0x6, |seed| {
        restart_scenario(seed, Duration::from_secs(2));
    });
}

/// g') The same after everyone has declared the old incarnation failed.
#[test]
fn g_late_restart_with_new_address_revives_the_failed_entry() {
    scenario("g': restart at a new address after 60 s", 0x66, |seed| {
        restart_scenario(seed, Duration::from_secs(60));
    });
}

/// h) 40 nodes with room for 32: capacity holds, refusals are reported, and a crash is
/// still detected by the nodes that were tracking the crashed one.
#[test]
fn h_capacity_overflow_is_refused_not_fatal() {
    const SMALL: usize = 32;
    scenario("h: 40 nodes with M = 32", 0x8, |seed| {
        let mut sim: Sim<SMALL, SMALL> = ClusterBuilder::new(40).seed(seed).config(LAN).build();
        sim.run_for(probes(30));
        let refused = sim.log().total(ObsKind::Refused);
        let largest = sim
            .running()
            .map(|o| sim.views().present_count(o))
            .max()
            .unwrap_or(0);
        // No table shrinks before the crash below (nobody fails, nothing is reaped), so
        // every node that refused a newcomer must still hold a full table.
        let refusers: std::collections::BTreeSet<usize> = sim
            .log()
            .entries()
            .iter()
            .filter(|o| o.kind == ObsKind::Refused)
            .map(|o| o.observer)
            .collect();
        let refused_with_room: Vec<(usize, usize)> = refusers
            .iter()
            .map(|&o| (o, sim.views().present_count(o)))
            .filter(|&(_, n)| n < SMALL)
            .collect();
        figure("MemberRefused events", refused);
        figure("nodes that refused", refusers.len());
        figure("largest member table", largest);
        // Crash the node tracked by the fewest others (at least two): a partial view.
        let trackers = |x: usize| -> Vec<usize> {
            let alive = |o: usize| o != x && sim.status_of(o, x) == Some(Status::Alive);
            sim.running().filter(|&o| alive(o)).collect()
        };
        let (victim, watchers) = (1..40)
            .map(|x| (x, trackers(x)))
            .filter(|(_, t)| t.len() >= 2)
            .min_by_key(|(x, t)| (t.len(), *x))
            .expect("some node is tracked");
        figure("victim tracked by", format!("{} of 39", watchers.len()));
        let crashed_at = sim.now();
        sim.crash(victim);
        let bound = Duration::from_secs(120);
        let done = await_reports_from(&mut sim, ObsKind::Failed, victim, &watchers, bound);
        report_detection(&sim, ObsKind::Failed, victim, crashed_at);
        report_totals(&sim);
        assert!(
            refused > 0,
            "no MemberRefused event with 40 nodes in 32 slots"
        );
        // The simulator checks after every step that no table exceeds SMALL; here, that
        // tables fill up to it and that only a full table refuses.
        assert_eq!(largest, SMALL, "no member table ever filled up");
        assert!(
            refused_with_room.is_empty(),
            "(node, table size) refused a newcomer with room: {refused_with_room:?}"
        );
        assert!(
            done.is_some(),
            "a tracker never marked the crash failed\n{}",
            summary(&sim)
        );
    });
}

/// i) A user event from one node reaches all 100 nodes (the sender included, which gets
/// its own event back as Serf does) exactly once.
#[test]
fn i_user_event_reaches_everyone_exactly_once() {
    scenario("i: user event to 100 nodes", 0x1, |seed| {
        let mut sim = lan_cluster::<BIG, BIG>(100, seed);
        let sender = 42;
        let sent_at = sim.now();
        sim.send_user_event(sender, "deploy", b"v2").expect("send");
        let everyone =
            |s: &Sim<BIG, BIG>| s.log().observer_count(ObsKind::User, "deploy") == s.len();
        let all = sim.run_until_pred(sent_at + Duration::from_secs(30), everyone);
        // Keep going to catch late duplicates.
        sim.run_for(Duration::from_secs(60));
        let mut per_node = vec![0usize; sim.len()];
        for d in sim.log().user_deliveries() {
            assert_eq!(
                (d.name.as_str(), d.payload.as_slice()),
                ("deploy", &b"v2"[..])
            );
            assert_eq!(d.origin, sim.name(sender));
            per_node[d.observer] += 1;
        }
        if let Some(t) = all {
            figure("reached all 100 nodes after", t - sent_at);
        }
        report_totals(&sim);
        let wrong: Vec<(usize, usize)> = per_node
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, c)| c != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "(node, deliveries) not exactly once: {wrong:?}"
        );
    });
}

/// What a burst of user events became, summed over every node of a cluster.
struct BurstOutcome {
    /// Deliveries per node, by node index (each at most one per event: the simulator
    /// checks it at every delivery).
    delivered: Vec<usize>,
    /// `Stats::user_events_lost`, `user_events_cut`, `user_events_stale`, summed.
    lost: u64,
    cut: u64,
    stale: u64,
}

/// Node 7 of a 20-node LAN cluster sends `burst` distinct user events at one instant; the
/// cluster then runs 3 minutes (several push-pull rounds).
fn user_event_burst(seed: u64, burst: usize) -> BurstOutcome {
    let mut sim = lan_cluster::<32, 32>(20, seed);
    let sender = 7;
    for k in 0..burst {
        let payload = u32::try_from(k).expect("small burst").to_le_bytes();
        sim.send_user_event(sender, "burst", &payload)
            .expect("send");
    }
    sim.run_for(Duration::from_secs(180));
    let mut delivered = vec![0usize; sim.len()];
    for d in sim.log().user_deliveries() {
        delivered[d.observer] += 1;
    }
    let sum = |f: fn(&rumor_core::Stats) -> u64| -> u64 {
        (0..sim.len()).map(|i| f(sim.node(i).stats())).sum()
    };
    BurstOutcome {
        delivered,
        lost: sum(|s| s.user_events_lost),
        cut: sum(|s| s.user_events_cut),
        stale: sum(|s| s.user_events_stale),
    }
}

/// i2) Bursts of 1, 8, 9, 100 and 1,000 user events from one node: every node delivers
/// each event at most once (checked at every delivery), a burst that fits the 8-event
/// buffer reaches everyone, and every event a node misses is accounted for by a counter:
/// evicted before it was polled (`user_events_lost`), too old to judge
/// (`user_events_stale`), or cut from some node's gossip before its last retransmission
/// (`user_events_cut`).
#[test]
fn i2_user_event_bursts_are_delivered_at_most_once_and_losses_counted() {
    scenario("i2: user event bursts, 20 nodes", 0xB0, |seed| {
        for burst in [1usize, 8, 9, 100, 1_000] {
            let out = user_event_burst(seed, burst);
            let nodes = out.delivered.len();
            let total: usize = out.delivered.iter().sum();
            let (min, max) = (
                out.delivered.iter().copied().min().unwrap_or(0),
                out.delivered.iter().copied().max().unwrap_or(0),
            );
            figure(
                &format!("burst {burst}: delivered (of {})", burst * nodes),
                format!("{total} (per node {min}..={max})"),
            );
            figure(
                &format!("burst {burst}: lost / cut / stale"),
                format!("{} / {} / {}", out.lost, out.cut, out.stale),
            );
            assert!(max <= burst, "burst {burst}: a node delivered {max}");
            if burst <= 8 {
                assert_eq!(
                    (min, out.lost, out.cut, out.stale),
                    (burst, 0, 0, 0),
                    "burst {burst} fits the buffer: everyone gets all"
                );
            } else {
                let missed = (burst * nodes - total) as u64;
                assert!(
                    missed <= out.lost + out.stale + out.cut * nodes as u64,
                    "burst {burst}: {missed} misses, not all counted"
                );
                assert!(
                    out.cut >= (burst - 8) as u64,
                    "burst {burst}: cut {}",
                    out.cut
                );
            }
        }
    });
}

/// i3) A steady stream of user events, one every 300 ms from rotating senders, for a
/// minute: every node delivers every event exactly once. Push-pull keeps replaying each
/// node's newest events long after the receivers' de-duplication window moved on.
#[test]
fn i3_a_steady_stream_of_user_events_is_delivered_once_everywhere() {
    scenario("i3: user event stream, 20 nodes", 0xB1, |seed| {
        let mut sim = lan_cluster::<32, 32>(20, seed);
        let events = 200;
        for k in 0..events {
            let payload = u32::try_from(k).expect("small").to_le_bytes();
            sim.send_user_event(k % 5, "stream", &payload)
                .expect("send");
            sim.run_for(Duration::from_millis(300));
        }
        sim.run_for(Duration::from_secs(180));
        let mut per_node = vec![0usize; sim.len()];
        for d in sim.log().user_deliveries() {
            per_node[d.observer] += 1;
        }
        let total: usize = per_node.iter().sum();
        figure("delivered (of 4000)", total);
        report_totals(&sim);
        assert!(
            per_node.iter().all(|&n| n == events),
            "deliveries per node: {per_node:?}"
        );
    });
}

/// Same seed, same run: two runs of a faulty scenario give identical traces; another seed
/// gives a different one.
#[test]
fn determinism_same_seed_same_trace() {
    fn run(seed: u64) -> (u64, usize, u64) {
        let link = LinkProfile::LAN
            .with_loss(0.05)
            .with_duplicate(0.02)
            .with_delay(Duration::from_millis(2), Duration::from_millis(15));
        let mut sim: Sim<32, 32> = ClusterBuilder::new(16)
            .seed(seed)
            .config(LAN)
            .link(link)
            .build();
        sim.run_for(Duration::from_secs(10));
        sim.crash(3);
        sim.pause(5, Duration::from_secs(3));
        sim.partition(&[&[0, 1, 2, 3, 4, 5]]);
        sim.run_for(Duration::from_secs(10));
        sim.heal();
        sim.send_user_event(9, "ping", b"1").expect("send");
        let addr = sim.fresh_addr();
        sim.restart(3, addr, 0).expect("rejoin");
        sim.run_for(Duration::from_secs(20));
        (sim.trace_hash(), sim.log().entries().len(), sim.steps())
    }
    scenario("determinism", 0x5EED, |seed| {
        let a = run(seed);
        let b = run(seed);
        let c = run(seed + 1);
        figure("trace hash", format!("{:#018x}", a.0));
        figure("events / steps", format!("{} / {}", a.1, a.2));
        assert_eq!(a, b, "same seed, different runs");
        assert_ne!(a.0, c.0, "different seeds, same trace");
    });
}
