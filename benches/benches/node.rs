//! Node hot paths on real traffic (see `rumor_bench::fixtures`):
//!
//! - `handle_datagram/<kind>`: one captured datagram of each message kind handed to a node
//!   that tracks the 64 members of a lossy cluster (its reply drained outside the timing);
//! - `poll_transmit/full_queue`: draining one gossip round (3 datagrams or more, each
//!   piggybacking as many updates as fit) of a node whose update queue holds the 63 members
//!   that just joined it;
//! - `period/<n>`: one protocol period (1 s) of a converged simulated cluster of `n`
//!   members with capacity `n`, per member (throughput in members): the simulator's own
//!   queue and network are included;
//! - `encryption/<plain|sealed>/steady_traffic`: the last 5 s of datagrams node 0 of a
//!   64-member cluster received, handled and answered (open, process, seal the replies),
//!   with and without a keyring; throughput in datagrams, so the ratio sealed/plain is the
//!   encryption cost per datagram.

use std::hint::black_box;
use std::time::Duration as StdDuration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rumor_bench::fixtures::{Capture, KINDS, drain};
use rumor_bench::sim::{Cluster, ClusterBuilder, LinkProfile, Recording, SimConfig, SimMember};
use rumor_core::{Config, Duration, Instant, Node};

const MEMBERS: usize = 64;
/// Gossip rounds drained per freshly replayed node (5 s of virtual time).
const ROUNDS_PER_NODE: u64 = 25;
type N = Node<MEMBERS, MEMBERS>;

/// Times `f` on `node` `iters` times; `between` runs untimed after each call.
fn timed(
    iters: u64,
    node: &mut N,
    mut f: impl FnMut(&mut N),
    mut between: impl FnMut(&mut N),
) -> StdDuration {
    let mut total = StdDuration::ZERO;
    for _ in 0..iters {
        let start = std::time::Instant::now();
        f(node);
        total += start.elapsed();
        between(node);
    }
    total
}

fn handle_datagram(c: &mut Criterion) {
    let lossy = LinkProfile::LAN.with_loss(0.2);
    let capture = Capture::record::<MEMBERS>(MEMBERS, Duration::from_secs(40), 2, lossy, false);
    let mut g = c.benchmark_group("handle_datagram");
    let mut buf = [0u8; 1500];
    for (kind, name) in KINDS {
        let Some((from, bytes)) = capture.largest_of(kind) else {
            eprintln!("no {name} captured");
            continue;
        };
        let mut node: N = capture.replay(Config::lan(), false);
        let now = std::cell::Cell::new(capture.end());
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new(name, bytes.len()), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut node,
                    |n| {
                        let _ = black_box(n.handle_datagram(now.get(), from, bytes));
                    },
                    |n| {
                        // Helping slots of indirect probes free up as time passes.
                        if kind == 3 {
                            now.set(now.get() + Duration::from_millis(500));
                            n.handle_timeout(now.get());
                        }
                        drain(n, now.get(), &mut buf);
                    },
                )
            })
        });
    }
    g.finish();
}

fn poll_transmit(c: &mut Criterion) {
    let capture =
        Capture::record::<MEMBERS>(MEMBERS, Duration::from_secs(2), 1, LinkProfile::LAN, false);
    let mut config = Config::lan();
    config.retransmit_mult = u8::MAX;
    let mut buf = [0u8; 1500];
    let mut g = c.benchmark_group("poll_transmit");
    g.measurement_time(StdDuration::from_secs(1));
    g.bench_function("full_queue", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                // A fresh node every few rounds: with nobody answering its probes, a node
                // left alone long enough would suspect, fail and reap everyone.
                let mut node: N = capture.replay(config.clone(), false);
                let mut now = capture.end();
                drain(&mut node, now, &mut buf);
                for _ in 0..left.min(ROUNDS_PER_NODE) {
                    // Untimed: the gossip timer queues a round (and maybe a probe).
                    now = now + config.gossip_interval;
                    node.handle_timeout(now);
                    let start = std::time::Instant::now();
                    black_box(drain(&mut node, now, &mut buf));
                    total += start.elapsed();
                    left -= 1;
                }
            }
            total
        })
    });
    g.finish();
}

fn converged<M: SimMember>(n: usize) -> Cluster<M> {
    let cfg = SimConfig {
        seed: 1,
        recording: Recording::Lean,
        ..SimConfig::default()
    };
    let mut sim: Cluster<M> = ClusterBuilder::new(n).sim_config(cfg).build_members();
    sim.run_until_pred(Instant::from_secs(120), Cluster::all_up)
        .unwrap_or_else(|| panic!("{n} nodes did not converge"));
    sim
}

fn period(c: &mut Criterion) {
    let mut g = c.benchmark_group("period");
    g.sample_size(10);
    macro_rules! one {
        ($n:literal) => {{
            let mut sim = converged::<Node<$n, $n>>($n);
            g.throughput(Throughput::Elements($n));
            g.bench_function(BenchmarkId::from_parameter($n), |b| {
                b.iter(|| sim.run_for(Duration::from_secs(1)))
            });
        }};
    }
    one!(32);
    one!(256);
    one!(1024);
    g.finish();
}

fn encryption(c: &mut Criterion) {
    let mut g = c.benchmark_group("encryption");
    let mut buf = [0u8; 1500];
    for (label, sealed) in [("plain", false), ("sealed", true)] {
        let capture = Capture::record::<MEMBERS>(
            MEMBERS,
            Duration::from_secs(15),
            4,
            LinkProfile::LAN,
            sealed,
        );
        // The last 5 s of steady-state traffic node 0 received (pings, acks, gossip,
        // push-pull), fed again and again: already-known updates leave the state as it is.
        let end = capture.end();
        let window: Vec<_> = capture
            .inbound
            .iter()
            .filter(|(at, _, _)| *at + Duration::from_secs(5) >= end)
            .map(|(_, from, bytes)| (*from, bytes.clone()))
            .collect();
        let mut node: N = capture.replay(Config::lan(), sealed);
        drain(&mut node, end, &mut buf);
        g.throughput(Throughput::Elements(window.len() as u64));
        g.bench_function(BenchmarkId::new(label, "steady_traffic"), |b| {
            b.iter(|| {
                for (from, bytes) in &window {
                    let _ = black_box(node.handle_datagram(end, *from, bytes));
                    drain(&mut node, end, &mut buf);
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = node;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(2));
    targets = handle_datagram, poll_transmit, encryption, period
}
criterion_main!(node);
