//! Frame decode and encode, through the node (rumor-core keeps its codec private).
//!
//! - `frame/decode`: the largest captured frame (a ping, ack, sync or gossip full of
//!   updates, about 1.3 KB) whose last byte is corrupted: the node decodes and validates every update, then drops it as
//!   malformed without touching its state, so the same frame can be fed again.
//! - `frame/encode`: `poll_transmit` writing one ack that piggybacks as many queued updates
//!   as fit, about 1.4 KB (a node that just saw 128 members join, its retransmit limit
//!   raised and replaced every 200 acks so that every ack is full).

use std::hint::black_box;
use std::time::Duration as StdDuration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rumor_bench::fixtures::{Capture, drain};
use rumor_bench::sim::LinkProfile;
use rumor_core::{Config, Duration, Node};

/// Members of the captured cluster.
const MEMBERS: usize = 128;
type N = Node<MEMBERS, MEMBERS>;
/// Acks written per freshly replayed node, well before its queue runs dry.
const ACKS_PER_NODE: u64 = 200;

fn config() -> Config {
    // Updates stay queued through thousands of frames, so every encode is a full one.
    let mut config = Config::lan();
    config.retransmit_mult = u8::MAX;
    config
}

fn decode(c: &mut Criterion, capture: &Capture) {
    let mut node: N = capture.replay(Config::lan(), false);
    let (from, frame) = [0, 1, 4, 5]
        .into_iter()
        .filter_map(|kind| capture.largest_of(kind))
        .max_by_key(|(_, f)| f.len())
        .expect("a frame");
    let mut bad = frame.to_vec();
    *bad.last_mut().expect("non-empty") ^= 0xFF;
    let now = capture.end();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(bad.len() as u64));
    g.bench_function(format!("decode_{}B", bad.len()), |b| {
        b.iter(|| black_box(node.handle_datagram(now, from, black_box(&bad))))
    });
    g.finish();
}

fn encode(c: &mut Criterion, capture: &Capture) {
    let (from, ping) = capture.largest_of(0).expect("a ping");
    let mut buf = [0u8; 1500];
    let mut g = c.benchmark_group("frame");
    g.measurement_time(StdDuration::from_secs(1));
    g.bench_function("encode_full_ack", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters;
            while left > 0 {
                // A fresh node before the queue runs dry (127 updates, about 55 a frame,
                // each sent up to 255 times).
                let mut node: N = capture.replay(config(), false);
                let now = capture.end();
                drain(&mut node, now, &mut buf);
                for _ in 0..left.min(ACKS_PER_NODE) {
                    let _ = node.handle_datagram(now, from, ping);
                    let start = std::time::Instant::now();
                    let t = node.poll_transmit(now, &mut buf);
                    total += start.elapsed();
                    black_box(t);
                    drain(&mut node, now, &mut buf);
                    left -= 1;
                }
            }
            total
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let capture =
        Capture::record::<MEMBERS>(MEMBERS, Duration::from_secs(3), 1, LinkProfile::LAN, false);
    decode(c, &capture);
    encode(c, &capture);
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(2));
    targets = benches
}
criterion_main!(codec);
