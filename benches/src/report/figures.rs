//! The figures one run reports, and how they are printed: a table (with a ratio column
//! when two implementations ran) or JSON.

use std::fmt::Write as _;

use rumor_core::Instant;
use serde::Serialize;

use super::scenario::Settings;
use crate::sim::{Cluster, ObsKind, SimMember};

/// Everything measured in one run of one implementation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Which implementation ran.
    pub implementation: String,
    /// The scenario's name.
    pub scenario: String,
    /// Cluster size.
    pub nodes: usize,
    /// Link loss probability.
    pub loss: f64,
    /// Seed.
    pub seed: u64,
    /// When every member first reported every other one up, from time zero (seconds).
    pub convergence_s: Option<f64>,
    /// Earliest detection of the fault by an observer, after it was injected (seconds).
    pub detect_first_s: Option<f64>,
    /// Median detection over the observers that detected it (seconds).
    pub detect_median_s: Option<f64>,
    /// Latest detection (seconds).
    pub detect_last_s: Option<f64>,
    /// Observers that detected the fault (or received the user event).
    pub detected_by: usize,
    /// Observers that could have.
    pub observers: usize,
    /// Time from heal (partition) or resume (pause) until everyone reports everyone up.
    pub recovery_s: Option<f64>,
    /// Declarations of a member failed while it was up and reachable, during the window
    /// (one per observer and member).
    pub false_failures: usize,
    /// Distinct members so falsely declared failed, during the window.
    pub falsely_failed_members: usize,
    /// Datagrams sent per member per simulated second, during the window.
    pub msgs_per_node_s: f64,
    /// Bytes sent (UDP payload) per member per simulated second, during the window.
    pub bytes_per_node_s: f64,
    /// Time spent inside the members' calls (single-threaded, so CPU time; monotonic
    /// clock, its overhead subtracted), in microseconds per member per simulated second,
    /// during the window.
    pub cpu_us_per_node_s: f64,
    /// Heap growth per member from before the cluster was built until it converged
    /// (member state plus the simulator's per-member bookkeeping), when measured.
    pub heap_bytes_per_node: Option<f64>,
    /// Datagrams the members rejected.
    pub rejected: u64,
    /// Simulated seconds in total (setup included).
    pub sim_s: f64,
    /// Wall time of the run (seconds).
    pub wall_s: f64,
    /// Simulated datagrams sent per wall second.
    pub datagrams_per_wall_s: f64,
    /// Why the run stopped before its end (e.g. over the heap limit), if it did.
    pub aborted: Option<String>,
    /// Sorted detection (or delivery) times, for the CDF plot.
    #[serde(skip)]
    pub detection_times: Vec<f64>,
}

impl Figures {
    /// Empty figures for a run of `settings` on `n` nodes.
    pub(crate) fn new(label: &str, settings: &Settings, n: usize) -> Self {
        Figures {
            implementation: label.to_owned(),
            scenario: settings.scenario.name().to_owned(),
            nodes: n,
            loss: settings.loss,
            seed: settings.seed,
            ..Figures::default()
        }
    }

    /// Detection times of `kind` (or any of `also`) about `member`, by every other
    /// running member, relative to `since`.
    pub(crate) fn detections<N: SimMember>(
        &mut self,
        sim: &Cluster<N>,
        kind: ObsKind,
        member: &str,
        since: Instant,
        also: &[ObsKind],
    ) {
        let observers: Vec<usize> = sim
            .running()
            .filter(|&o| sim.name(o) != member && !sim.is_leaving(o))
            .collect();
        let kinds: Vec<ObsKind> = std::iter::once(kind).chain(also.iter().copied()).collect();
        self.collect(sim, &kinds, member, since, &observers);
    }

    /// Like [`Figures::detections`], by the given observers only.
    pub(crate) fn detections_by<N: SimMember>(
        &mut self,
        sim: &Cluster<N>,
        kind: ObsKind,
        member: &str,
        since: Instant,
        observers: &[usize],
    ) {
        self.collect(sim, &[kind], member, since, observers);
    }

    fn collect<N: SimMember>(
        &mut self,
        sim: &Cluster<N>,
        kinds: &[ObsKind],
        member: &str,
        since: Instant,
        observers: &[usize],
    ) {
        let times = observers.iter().filter_map(|&o| {
            kinds
                .iter()
                .filter_map(|&k| sim.log().first(k, member, o))
                .filter(|&t| t >= since)
                .min()
        });
        self.set_times(
            times.map(|t| seconds_between(since, t)).collect(),
            observers.len(),
        );
    }

    /// First delivery of the user event by each member, relative to `since`.
    pub(crate) fn deliveries<N: SimMember>(&mut self, sim: &Cluster<N>, since: Instant) {
        let mut first: Vec<Option<Instant>> = vec![None; sim.len()];
        for d in sim.log().user_deliveries() {
            let slot = &mut first[d.observer];
            *slot = Some(slot.map_or(d.at, |t| t.min(d.at)));
        }
        let observers = sim.running().count();
        let times = first.into_iter().flatten();
        self.set_times(
            times.map(|t| seconds_between(since, t)).collect(),
            observers,
        );
    }

    fn set_times(&mut self, mut times: Vec<f64>, observers: usize) {
        times.sort_by(f64::total_cmp);
        self.detected_by = times.len();
        self.observers = observers;
        self.detect_first_s = times.first().copied();
        self.detect_last_s = times.last().copied();
        self.detect_median_s = (!times.is_empty()).then(|| times[times.len() / 2]);
        self.detection_times = times;
    }

    /// The rows of the table: `(label, value)` with `None` for "not measured".
    fn rows(&self) -> Vec<(&'static str, Option<f64>)> {
        vec![
            ("convergence (s)", self.convergence_s),
            ("detection first (s)", self.detect_first_s),
            ("detection median (s)", self.detect_median_s),
            ("detection last (s)", self.detect_last_s),
            ("detected by", Some(self.detected_by as f64)),
            ("recovery (s)", self.recovery_s),
            ("false failures", Some(self.false_failures as f64)),
            (
                "falsely failed members",
                Some(self.falsely_failed_members as f64),
            ),
            ("msgs / node / s", Some(self.msgs_per_node_s)),
            ("bytes / node / s", Some(self.bytes_per_node_s)),
            ("CPU us / node / s", Some(self.cpu_us_per_node_s)),
            ("heap bytes / node", self.heap_bytes_per_node),
            ("rejected datagrams", Some(self.rejected as f64)),
            ("wall time (s)", Some(self.wall_s)),
            ("datagrams / wall s", Some(self.datagrams_per_wall_s)),
        ]
    }
}

fn seconds_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_millis() as f64 / 1000.0
}

fn cell(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e9 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The figures of one or more implementations as an aligned table; with two, a third
/// column holds the ratio first/second.
pub fn table(runs: &[Figures]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}, {} nodes, loss {}%, seed {}, simulated {:.0} s",
        first.scenario,
        first.nodes,
        first.loss * 100.0,
        first.seed,
        first.sim_s
    );
    let mut header = format!("{:<22}", "figure");
    for r in runs {
        let _ = write!(header, " {:>12}", r.implementation);
    }
    if runs.len() == 2 {
        let _ = write!(
            header,
            " {:>12}",
            format!("{}/{}", runs[0].implementation, runs[1].implementation)
        );
    }
    let _ = writeln!(out, "{header}");
    let rows: Vec<_> = runs.iter().map(Figures::rows).collect();
    for (k, (label, _)) in rows[0].iter().enumerate() {
        let mut line = format!("{label:<22}");
        for r in &rows {
            let _ = write!(line, " {:>12}", cell(r[k].1));
        }
        if let [a, b] = rows.as_slice() {
            let _ = write!(line, " {:>12}", ratio(a[k].1, b[k].1));
        }
        let _ = writeln!(out, "{line}");
    }
    for r in runs {
        if let Some(why) = &r.aborted {
            let _ = writeln!(out, "{}: {why}", r.implementation);
        }
    }
    out
}

/// `a / b` for the ratio column, or `-` when either is missing or `b` is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        (Some(0.0), Some(_)) => "=".to_owned(),
        _ => "-".to_owned(),
    }
}

/// The figures as one JSON document: `{"runs": [...], "ratio": {...}}` (the ratio only
/// with two runs).
pub fn json(runs: &[Figures]) -> String {
    let mut doc = serde_json::json!({ "runs": runs });
    if let [a, b] = runs {
        let ratios: serde_json::Map<String, serde_json::Value> = a
            .rows()
            .into_iter()
            .zip(b.rows())
            .filter_map(|((label, x), (_, y))| match (x, y) {
                (Some(x), Some(y)) if y != 0.0 => Some((label.to_owned(), (x / y).into())),
                _ => None,
            })
            .collect();
        doc["ratio"] = ratios.into();
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The share of the cluster each member reports up, averaged over running members,
/// sampled through the run: the "members seen" curve.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// `(simulated seconds, mean share of the other running members reported up)`.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub(crate) fn sample<N: SimMember>(&mut self, sim: &Cluster<N>) {
        let t = sim.now().as_millis() as f64 / 1000.0;
        if self.points.last().is_some_and(|&(last, _)| last >= t) {
            return;
        }
        let running: Vec<usize> = sim.running().collect();
        if running.len() < 2 {
            return;
        }
        let others = (running.len() - 1) as f64;
        let sum: f64 = running
            .iter()
            .map(|&o| sim.reports().up_count(o) as f64 / others)
            .sum();
        self.points.push((t, sum / running.len() as f64));
    }
}
