//! The named scenarios of `rumor-sim`, run on any [`SimMember`] in a lean simulation.
//!
//! Every scenario starts the same way: `nodes` members join member 0 at time zero over
//! LAN links with the requested loss, and the run waits (at most [`SETUP_BOUND`]) until
//! every member reports every other one up. It then runs `settle` longer (the join's
//! updates finish spreading), the scenario's fault is injected and the cluster runs for
//! `duration`; traffic, CPU and false failures are counted over that window (over the
//! whole run, from time zero and without settling, for `join`).

use std::time::Instant as WallInstant;

use rumor_core::{Config, Duration, Instant};

use super::figures::{Figures, Series};
use crate::sim::{Cluster, ClusterBuilder, LinkProfile, ObsKind, Recording, SimConfig, SimMember};

/// Longest wait for the initial join to converge before the fault is injected anyway.
pub const SETUP_BOUND: Duration = Duration::from_secs(120);

/// The scenarios `rumor-sim --scenario` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Everyone joins at once; convergence time and join traffic.
    Join,
    /// One member crashes; when does everyone declare it failed?
    Crash,
    /// One member leaves gracefully; when does everyone see it gone?
    Leave,
    /// Nothing happens but the configured loss: false failures and steady-state cost.
    Loss,
    /// The cluster splits in halves for half the window, then heals.
    Partition,
    /// One member freezes for a third of the window, then resumes.
    Pause,
    /// Member 0 broadcasts a user event; when does everyone receive it?
    Event,
}

impl Scenario {
    /// Every scenario, in `--scenario` order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Join,
        Scenario::Crash,
        Scenario::Leave,
        Scenario::Loss,
        Scenario::Partition,
        Scenario::Pause,
        Scenario::Event,
    ];

    /// The `--scenario` name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Join => "join",
            Scenario::Crash => "crash",
            Scenario::Leave => "leave",
            Scenario::Loss => "loss",
            Scenario::Partition => "partition",
            Scenario::Pause => "pause",
            Scenario::Event => "event",
        }
    }

    /// Parses a `--scenario` name.
    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The scenario.
    pub scenario: Scenario,
    /// Cluster size.
    pub nodes: usize,
    /// Loss probability on every link, in `[0, 1]`.
    pub loss: f64,
    /// Seed of the run (the same for every implementation compared).
    pub seed: u64,
    /// Steady running between convergence and the fault (not for `join`).
    pub settle: Duration,
    /// The window after setup.
    pub duration: Duration,
    /// Mirror and check every member table after every step (slow; small clusters).
    pub full_checks: bool,
    /// Print progress to stderr every this much wall time (`None`: quiet).
    pub progress: Option<std::time::Duration>,
    /// Bytes currently allocated on the heap, when the binary counts them.
    pub heap_probe: Option<fn() -> usize>,
    /// Stop the run (and say so in the figures) once the heap holds more than this.
    pub heap_limit: Option<usize>,
}

/// The member the fault is applied to: in the middle, never the seed.
fn victim(n: usize) -> usize {
    n / 2
}

/// Runs `settings` on implementation `N`, labelled `label` in the figures.
pub fn run<N: SimMember>(settings: &Settings, label: &str) -> (Figures, Series) {
    let wall = WallInstant::now();
    let heap_before = settings.heap_probe.map(|p| p());
    let n = settings.nodes;
    let recording = if settings.full_checks {
        Recording::Full
    } else {
        Recording::Lean
    };
    let sim_config = SimConfig {
        seed: settings.seed,
        link: LinkProfile::LAN.with_loss(settings.loss),
        recording,
        measure_cpu: true,
        ..SimConfig::default()
    };
    let mut sim: Cluster<N> = ClusterBuilder::new(n)
        .config(Config::lan())
        .sim_config(sim_config)
        .build_members();
    let v = victim(n);
    let victim_name = sim.name(v).to_owned();
    sim.watch(&victim_name);

    let mut progress = Progress::new(label, settings);
    let mut series = Series::default();
    let converged = run_sampled(
        &mut sim,
        Instant::ZERO + SETUP_BOUND,
        &mut progress,
        &mut series,
        Cluster::all_up,
    );
    let heap_per_node = heap_before
        .zip(settings.heap_probe.map(|p| p()))
        .map(|(before, after)| after.saturating_sub(before) as f64 / n as f64);

    let start = if settings.scenario == Scenario::Join {
        Instant::ZERO
    } else {
        let settled = sim.now() + settings.settle;
        run_sampled(&mut sim, settled, &mut progress, &mut series, |_| false);
        sim.now()
    };
    let (sent0, bytes0, cpu0) = counters(&sim);
    let ff0 = sim.false_failures().len();
    let fault_at = sim.now();
    let end = fault_at + settings.duration;
    let mut figures = Figures::new(label, settings, n);
    figures.convergence_s = converged.map(secs);

    match settings.scenario {
        Scenario::Join | Scenario::Loss => {
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
        }
        Scenario::Crash => {
            sim.crash(v);
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
            figures.detections(&sim, ObsKind::Failed, &victim_name, fault_at, &[]);
        }
        Scenario::Leave => {
            sim.leave(v);
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
            figures.detections(
                &sim,
                ObsKind::Left,
                &victim_name,
                fault_at,
                &[ObsKind::Failed],
            );
        }
        Scenario::Partition => {
            let (a, b): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| i < n / 2);
            sim.partition(&[&a, &b]);
            let heal_at = fault_at + settings.duration.div(2);
            run_sampled(&mut sim, heal_at, &mut progress, &mut series, |_| false);
            figures.detections_by(&sim, ObsKind::Failed, &victim_name, fault_at, &a);
            sim.heal();
            let healed = run_sampled(&mut sim, end, &mut progress, &mut series, Cluster::all_up);
            figures.recovery_s = healed.map(|t| secs(t) - secs(heal_at));
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
        }
        Scenario::Pause => {
            let resume_at = fault_at + settings.duration.div(3);
            sim.pause(v, settings.duration.div(3));
            run_sampled(&mut sim, resume_at, &mut progress, &mut series, |_| false);
            figures.detections(&sim, ObsKind::Failed, &victim_name, fault_at, &[]);
            let back = run_sampled(&mut sim, end, &mut progress, &mut series, Cluster::all_up);
            figures.recovery_s = back.map(|t| secs(t) - secs(resume_at));
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
        }
        Scenario::Event => {
            sim.send_user_event(0, "deploy", b"v2")
                .unwrap_or_else(|e| panic!("user event refused: {e:?}"));
            run_sampled(&mut sim, end, &mut progress, &mut series, |_| false);
            figures.deliveries(&sim, fault_at);
        }
    }

    let (sent1, bytes1, cpu1) = counters(&sim);
    let window = secs(sim.now()) - secs(start);
    let per = |x: f64| x / (n as f64 * window.max(f64::EPSILON));
    let false_failures = &sim.false_failures()[ff0..];
    figures.false_failures = false_failures.len();
    figures.falsely_failed_members = false_failures
        .iter()
        .map(|f| f.member)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    figures.msgs_per_node_s = per((sent1 - sent0) as f64);
    figures.bytes_per_node_s = per((bytes1 - bytes0) as f64);
    figures.cpu_us_per_node_s = per((cpu1 - cpu0).as_secs_f64() * 1e6);
    figures.heap_bytes_per_node = heap_per_node;
    figures.sim_s = secs(sim.now());
    figures.wall_s = wall.elapsed().as_secs_f64();
    figures.datagrams_per_wall_s = sim.net().stats().sent as f64 / figures.wall_s;
    figures.rejected = sim.rejected_datagrams().values().sum();
    figures.aborted = progress.aborted.clone();
    progress.done(&sim);
    (figures, series)
}

fn secs(t: Instant) -> f64 {
    t.as_millis() as f64 / 1000.0
}

fn counters<N: SimMember>(sim: &Cluster<N>) -> (u64, u64, std::time::Duration) {
    let stats = sim.net().stats();
    (stats.sent, stats.sent_bytes, sim.member_cpu())
}

/// Runs until `pred` holds or `until`, one simulated second at a time, sampling the
/// members-seen curve and printing progress between steps. Returns when `pred` held.
fn run_sampled<N: SimMember>(
    sim: &mut Cluster<N>,
    until: Instant,
    progress: &mut Progress,
    series: &mut Series,
    mut pred: impl FnMut(&Cluster<N>) -> bool,
) -> Option<Instant> {
    let step = Duration::from_millis(250);
    loop {
        series.sample(sim);
        progress.tick(sim, until);
        if progress.aborted.is_some() {
            return None;
        }
        let next = (sim.now() + step).min(until);
        if let Some(t) = sim.run_until_pred(next, &mut pred) {
            return Some(t);
        }
        if sim.now() >= until {
            series.sample(sim);
            return None;
        }
    }
}

/// Progress lines on stderr for long runs, and the heap guard.
#[derive(Debug)]
struct Progress {
    label: String,
    every: Option<std::time::Duration>,
    heap: Option<(fn() -> usize, usize)>,
    started: WallInstant,
    last: WallInstant,
    /// Why the run stopped early.
    aborted: Option<String>,
}

impl Progress {
    fn new(label: &str, settings: &Settings) -> Self {
        let now = WallInstant::now();
        Progress {
            label: label.to_owned(),
            every: settings.progress,
            heap: settings.heap_probe.zip(settings.heap_limit),
            started: now,
            last: now,
            aborted: None,
        }
    }

    fn tick<N: SimMember>(&mut self, sim: &Cluster<N>, until: Instant) {
        if let Some((probe, limit)) = self.heap
            && self.aborted.is_none()
            && probe() > limit
        {
            let why = format!(
                "stopped at t={:.1}s after {:.1} s wall: heap {:.1} GiB over the {:.1} GiB limit",
                secs(sim.now()),
                self.started.elapsed().as_secs_f64(),
                probe() as f64 / (1u64 << 30) as f64,
                limit as f64 / (1u64 << 30) as f64
            );
            eprintln!("[{}] {why}", self.label);
            self.aborted = Some(why);
        }
        let Some(every) = self.every else { return };
        if self.last.elapsed() < every {
            return;
        }
        self.last = WallInstant::now();
        eprintln!(
            "[{}] t={:.0}s (phase ends {:.0}s), wall {:.1}s, {} datagrams",
            self.label,
            secs(sim.now()),
            secs(until),
            self.started.elapsed().as_secs_f64(),
            sim.net().stats().sent
        );
    }

    fn done<N: SimMember>(&self, sim: &Cluster<N>) {
        if self.every.is_some() {
            eprintln!(
                "[{}] done: {:.0} simulated s in {:.1} s wall",
                self.label,
                secs(sim.now()),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
