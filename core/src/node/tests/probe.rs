//! The failure detector's indirect path: `PingReq`, helpers' nacks, and Lifeguard's local
//! health score, which scales the probe interval and timeout.

use super::*;
use crate::wire::{HEADER_LEN, decode};

/// Tag of `Message::Nack` in postcard (the third variant).
const NACK_TAG: u8 = 2;

/// Every message `n` sends now, decoded, with its destination.
fn sent(n: &mut Node<8, 16>, now: Instant) -> std::vec::Vec<(SocketAddr, Message<'static>)> {
    let mut out = std::vec::Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(t) = n.poll_transmit(now, &mut buf) {
        let m = decode(&buf[..t.len], 0).unwrap().message;
        // Keep only what the tests look at, owned.
        let m = match m {
            Message::Ack { seq } => Message::Ack { seq },
            Message::Nack { seq } => Message::Nack { seq },
            Message::Ping { seq, .. } => Message::Ping {
                seq,
                target: "",
                suspected: None,
            },
            _ => Message::Gossip,
        };
        out.push((t.to, m));
    }
    out
}

/// Asks `helper` (n1) to probe n3 for the origin n2 under seq 77; returns the seq of the
/// helper's own ping to n3.
fn ask_to_probe(helper: &mut Node<8, 16>, now: Instant) -> u32 {
    let req = frame(
        Message::PingReq {
            seq: 77,
            target: "n3",
            addr: WireAddr::from(addr(3)),
        },
        &[],
    );
    helper.handle_datagram(now, addr(2), &req).unwrap();
    match sent(helper, now).as_slice() {
        [(to, Message::Ping { seq, .. })] if *to == addr(3) => *seq,
        other => panic!("expected one ping to n3, got {other:?}"),
    }
}

#[test]
fn a_helper_nacks_the_origin_when_the_target_stays_silent() {
    let mut h = node(1);
    let now = Instant::from_secs(1);
    ask_to_probe(&mut h, now);
    // 4/5 of the probe timeout: before that, nothing; then exactly one nack.
    let nack_at = now + Duration::from_millis(400);
    h.handle_timeout(now + Duration::from_millis(399));
    assert!(
        !sent(&mut h, nack_at)
            .iter()
            .any(|(_, m)| *m == Message::Nack { seq: 77 })
    );
    h.handle_timeout(nack_at);
    let nacks = |h: &mut Node<8, 16>, at| {
        sent(h, at)
            .into_iter()
            .filter(|m| *m == (addr(2), Message::Nack { seq: 77 }))
            .count()
    };
    assert_eq!(nacks(&mut h, nack_at), 1);
    h.handle_timeout(nack_at + Duration::from_secs(1));
    assert_eq!(nacks(&mut h, nack_at + Duration::from_secs(1)), 0);
}

#[test]
fn a_helper_forwards_the_targets_ack_and_sends_no_nack() {
    let mut h = node(1);
    let now = Instant::from_secs(1);
    let seq = ask_to_probe(&mut h, now);
    let ack = frame(Message::Ack { seq }, &[]);
    h.handle_datagram(now, addr(3), &ack).unwrap();
    assert_eq!(sent(&mut h, now), [(addr(2), Message::Ack { seq: 77 })]);
    let later = now + Duration::from_secs(2);
    h.handle_timeout(later);
    assert!(
        !sent(&mut h, later)
            .iter()
            .any(|(_, m)| matches!(m, Message::Nack { .. }))
    );
}

#[test]
fn a_member_reachable_only_through_helpers_is_never_suspected() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    net.cut = Some((addr(1), addr(4)));
    net.run_for(Duration::from_secs(120));
    for i in 0..4 {
        let n = &net.nodes[i].node;
        assert_eq!(n.stats().suspicions, 0, "node {i} suspected someone");
        assert!(n.members().all(|m| m.status() == Status::Alive), "node {i}");
        assert_eq!(n.members().count(), 4, "node {i}");
    }
    // n1 and n4 did probe each other, through the others.
    assert!(net.nodes[0].node.stats().indirect_probes > 0);
    assert!(net.nodes[3].node.stats().indirect_probes > 0);
}

#[test]
fn nacks_from_helpers_keep_the_probers_health_when_the_target_is_down() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    net.nodes[3].up = false;
    for _ in 0..60 {
        net.run_for(Duration::from_secs(1));
        for i in 0..3 {
            assert_eq!(net.nodes[i].node.stats().health_score, 0, "node {i}");
        }
    }
    let nacks: u64 = (0..3)
        .map(|i| net.nodes[i].node.stats().nacks_received)
        .sum();
    assert!(nacks > 0);
    for i in 0..3 {
        let n = &net.nodes[i].node;
        assert_eq!(n.stats().health_score, 0, "node {i}");
        assert_eq!(n.member("n4").unwrap().status(), Status::Failed, "node {i}");
    }
}

#[test]
fn missed_nacks_raise_health_and_successes_lower_it() {
    // Long suspicions: n4 is probed (as a suspect) often enough to reach the bound.
    let config = Config {
        suspicion_mult: 20,
        ..Config::lan()
    };
    let mut net = Net::with_config(4, config);
    net.run_for(Duration::from_secs(5));
    // The prober's own links are at fault: no nack reaches it.
    net.lose = Some(|_, bytes| bytes.get(HEADER_LEN) == Some(&NACK_TAG));
    net.nodes[3].up = false;
    let mut peak = 0;
    for _ in 0..120 {
        net.run_for(Duration::from_secs(1));
        for i in 0..3 {
            let n = &net.nodes[i].node;
            assert!(u64::from(n.awareness) == n.stats().health_score);
            assert!(n.awareness < n.config().awareness_max, "node {i}");
            peak = peak.max(n.awareness);
        }
    }
    // Each failed probe with no nack adds the nacks missed (two helpers).
    assert!(peak >= 2, "missed nacks did not raise the score");
    // n4 is failed and no longer probed: every probe succeeds, the score falls back.
    net.run_for(Duration::from_secs(300));
    for i in 0..3 {
        assert_eq!(
            net.nodes[i].node.member("n4").unwrap().status(),
            Status::Failed
        );
        assert_eq!(net.nodes[i].node.stats().health_score, 0, "node {i}");
    }
}

/// The only peer, n2, never answers (and has no helper to ask): every probe fails.
fn a_node_whose_only_peer_is_silent() -> Node<8, 16> {
    let alive = frame(
        Message::Gossip,
        &[Update::Alive {
            name: "n2",
            incarnation: 0,
            addr: WireAddr::from(addr(2)),
            tags: &[],
        }],
    );
    let config = Config {
        suspicion_mult: 100,
        ..Config::lan()
    };
    let mut n = node_with(1, config);
    n.handle_datagram(Instant::ZERO, addr(2), &alive).unwrap();
    n
}

#[test]
fn the_health_score_stops_at_its_bound() {
    let mut n = a_node_whose_only_peer_is_silent();
    let mut buf = [0u8; 1500];
    let mut peak = 0;
    for _ in 0..10_000 {
        let Some(now) = n.poll_timeout() else { break };
        if now > Instant::from_secs(150) {
            break;
        }
        n.handle_timeout(now);
        while n.poll_transmit(now, &mut buf).is_some() {}
        peak = peak.max(n.awareness);
    }
    let max = n.config().awareness_max;
    assert!(
        n.stats().probes_failed > u64::from(max),
        "the bound was never tested"
    );
    assert_eq!(peak, max - 1);
    assert_eq!(n.stats().health_score, u64::from(max - 1));
}

#[test]
fn the_health_score_scales_the_probe_interval_and_timeout() {
    let alive = frame(
        Message::Gossip,
        &[Update::Alive {
            name: "n2",
            incarnation: 0,
            addr: WireAddr::from(addr(2)),
            tags: &[],
        }],
    );
    for score in [0u8, 1, 7] {
        let mut n = node(1);
        n.handle_datagram(Instant::ZERO, addr(2), &alive).unwrap();
        n.awareness = score;
        let now = n.timers.probe.unwrap();
        n.handle_timeout(now);
        let scale = u64::from(score) + 1;
        let p = n.probe.expect("a probe started");
        assert_eq!(p.ack_deadline, now + Duration::from_millis(500 * scale));
        assert_eq!(
            n.timers.probe,
            Some(now + Duration::from_millis(1000 * scale))
        );
    }
}
