//! Timing and small edges: late timers, datagram size per address family and MTU profile,
//! nonce state across keyring changes, seeds, a node placed in a `static`.

use std::net::SocketAddr;
use std::vec::Vec;

use super::tests::{Net, addr, alive, frame, node};
use super::*;
use crate::wire::{DropReason, Message, Update, WireAddr};

fn alive_at(name: &str, at: SocketAddr) -> Vec<u8> {
    frame(
        Message::Gossip,
        &[Update::Alive {
            name,
            incarnation: 1,
            addr: WireAddr::from(at),
            tags: &[],
        }],
    )
}

/// Every datagram `a` has to send at `now`: (to, bytes).
fn drain<const M: usize, const U: usize>(
    a: &mut Node<M, U>,
    now: Instant,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        out.push((t.to, buf[..t.len].to_vec()));
    }
    out
}

/// `a` knows `b`; runs `a` until it pings `b`. Returns the time and the ping's sequence.
fn first_probe(a: &mut Node<8, 16>) -> (Instant, u32) {
    let mut now = Instant::from_secs(1);
    for _ in 0..100 {
        a.handle_timeout(now);
        for (to, bytes) in drain(a, now) {
            if to == addr(2)
                && let Message::Ping { seq, .. } = crate::wire::decode(&bytes, 0).unwrap().message
            {
                return (now, seq);
            }
        }
        now = a.poll_timeout().unwrap().max(now);
    }
    panic!("no probe");
}

#[test]
fn a_probe_whose_deadline_passed_during_a_stall_is_not_judged_failed() {
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    a.handle_datagram(Instant::from_secs(1), addr(2), &alive_at("b", addr(2)))
        .unwrap();
    let (sent_at, seq) = first_probe(&mut a);
    // The caller stalls for 10 s: the ack waits in its socket, then the timer runs first.
    let late = sent_at + Duration::from_secs(10);
    a.handle_timeout(late);
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    assert_eq!(a.stats().probes_failed, 0);
    assert_eq!(a.stats().probes_graced, 1);
    let next = a.poll_timeout().unwrap();
    assert!(next > late, "the probe waits past the stall");
    // Then the ack is read: the probe succeeded.
    a.handle_datagram(late, addr(2), &frame(Message::Ack { seq }, &[]))
        .unwrap();
    a.handle_timeout(next);
    let end = late + Duration::from_secs(2);
    let mut now = next;
    while now < end {
        a.handle_timeout(now);
        let _ = drain(&mut a, now);
        now = a
            .poll_timeout()
            .unwrap()
            .max(now + Duration::from_millis(1));
    }
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    assert_eq!(a.stats().probes_failed, 0);
    assert_eq!(a.stats().health_score, 0);
}

#[test]
fn a_silent_member_is_still_suspected_after_the_grace() {
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    a.handle_datagram(Instant::from_secs(1), addr(2), &alive_at("b", addr(2)))
        .unwrap();
    let (sent_at, _) = first_probe(&mut a);
    let mut now = sent_at + Duration::from_secs(10);
    for _ in 0..1000 {
        a.handle_timeout(now);
        let _ = drain(&mut a, now);
        if a.member("b").unwrap().status() != Status::Alive {
            break;
        }
        now = a.poll_timeout().unwrap().max(now);
    }
    assert_eq!(a.member("b").unwrap().status(), Status::Suspect);
    assert_eq!(a.stats().probes_graced, 1);
}

#[test]
fn a_timer_a_little_late_gets_no_grace() {
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    a.handle_datagram(Instant::from_secs(1), addr(2), &alive_at("b", addr(2)))
        .unwrap();
    let (mut now, _) = first_probe(&mut a);
    // Every timer runs 250 ms late: half the probe timeout, the most that is not a stall.
    for _ in 0..1000 {
        now = a.poll_timeout().unwrap().max(now) + Duration::from_millis(250);
        a.handle_timeout(now);
        let _ = drain(&mut a, now);
        if a.member("b").unwrap().status() != Status::Alive {
            break;
        }
    }
    assert_eq!(a.member("b").unwrap().status(), Status::Suspect);
    assert_eq!(a.stats().probes_graced, 0);
}

#[test]
fn datagrams_to_ipv6_addresses_fit_an_ipv6_frame() {
    let v6 = |i: u16| SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, i], 7946));
    let mut config = Config::lan();
    config.max_datagram = crate::MAX_DATAGRAM_V4;
    let mut a: Node<64, 64> = Node::new(Identity::new("a", v6(1)).unwrap(), config, 5).unwrap();
    let now = Instant::from_secs(1);
    let names: Vec<std::string::String> = (2..60u16)
        .map(|i| std::format!("a-rather-long-member-name-{i:05}"))
        .collect();
    for (name, i) in names.iter().zip(2u16..) {
        a.handle_datagram(now, v6(2), &alive_at(name, v6(i)))
            .unwrap();
    }
    // Gossip and push-pull to IPv6 peers, with far more news queued than one datagram holds.
    a.enqueue(Outgoing::Gossip { to: v6(3) });
    a.start_sync(v6(3), SyncSession::request(v6(3), false));
    let sent = drain(&mut a, now);
    let largest = sent.iter().map(|(_, b)| b.len()).max().unwrap();
    assert!(largest <= crate::MAX_DATAGRAM_V6, "{largest}");
    assert!(
        largest > crate::MAX_DATAGRAM_V6 - 64,
        "the cap was reached: {largest}"
    );
}

#[test]
fn a_helper_with_a_huge_probe_timeout_does_not_nack_at_once() {
    let mut config = Config::lan();
    config.probe_timeout = Duration::from_millis((1 << 62) + 10);
    config.probe_interval = Duration::from_millis(u64::MAX);
    let mut a: Node<8, 16> = Node::new(Identity::new("a", addr(1)).unwrap(), config, 3).unwrap();
    let now = Instant::from_secs(1);
    let request = frame(
        Message::PingReq {
            seq: 1,
            target: "c",
            addr: WireAddr::from(addr(3)),
        },
        &[],
    );
    a.handle_datagram(now, addr(2), &request).unwrap();
    let _ = drain(&mut a, now);
    let later = now + Duration::from_secs(1);
    a.handle_timeout(later);
    let nacks = drain(&mut a, later)
        .into_iter()
        .filter(|(to, b)| {
            *to == addr(2)
                && matches!(
                    crate::wire::decode(b, 0).unwrap().message,
                    Message::Nack { .. }
                )
        })
        .count();
    assert_eq!(nacks, 0);
}

/// A gossip datagram carrying `b` alive, then `unknown` (raw bytes, as a newer version would
/// write an update kind this one does not know), then `c` alive.
fn with_unknown_update(unknown: &[u8]) -> Vec<u8> {
    let b = alive_at("b", addr(2));
    let c = alive_at("c", addr(3));
    // Both frames are a header and `Gossip` (7 bytes), then one update.
    let mut v = b.clone();
    v.extend_from_slice(unknown);
    v.extend_from_slice(&c[7..]);
    v
}

#[test]
fn an_update_of_an_unknown_kind_is_skipped_and_counted() {
    // Kind 6 (the first this version does not know), 3 bytes; kind 300 (a two-byte
    // varint), 0 bytes; kind u32::MAX, 1 byte.
    let unknowns: [&[u8]; 3] = [
        &[6, 3, 0xaa, 0xbb, 0xcc],
        &[0xac, 0x02, 0],
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0x42],
    ];
    for unknown in unknowns {
        let mut a: Node<8, 16> =
            Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
        let datagram = with_unknown_update(unknown);
        a.handle_datagram(Instant::from_secs(1), addr(2), &datagram)
            .unwrap();
        assert_eq!(a.member("b").unwrap().status(), Status::Alive);
        assert_eq!(a.member("c").unwrap().status(), Status::Alive);
        assert_eq!(a.stats().updates_unknown, 1, "{unknown:?}");
    }
    // Today's kinds keep their bytes: an Alive starts with its discriminant, 0.
    assert_eq!(alive_at("b", addr(2))[7], 0);
}

#[test]
fn an_unknown_update_whose_length_overruns_the_datagram_drops_it_whole() {
    for unknown in [
        &[6, 4, 0xaa, 0xbb, 0xcc][..],
        &[6][..],
        &[6, 0x80][..],
        &[0xff, 0xff, 0xff, 0xff, 0x7f, 0][..],
    ] {
        let mut a: Node<8, 16> =
            Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
        // The unknown update last, so its length runs past the end.
        let mut datagram = alive_at("b", addr(2));
        datagram.extend_from_slice(unknown);
        assert_eq!(
            a.handle_datagram(Instant::from_secs(1), addr(2), &datagram),
            Err(crate::wire::DropReason::Malformed),
            "{unknown:?}"
        );
        assert!(a.member("b").is_none(), "nothing applied");
    }
}

/// The nonce of every sealed datagram `a` sends to `b` after a ping from it.
fn nonces(a: &mut Node<8, 16>, count: usize) -> Vec<Vec<u8>> {
    let ping = frame(
        Message::Ping {
            seq: 1,
            target: "a",
            suspected: None,
        },
        &[],
    );
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    for _ in 0..count {
        a.set_plaintext(crate::Plaintext::Accept);
        a.handle_datagram(Instant::from_secs(1), addr(2), &ping)
            .unwrap();
        while let Some(_t) = a.poll_transmit(Instant::from_secs(1), &mut buf) {
            assert_eq!(buf[1], crate::crypto::ENVELOPE_XCHACHA20POLY1305);
            out.push(buf[6..6 + crate::crypto::NONCE_LEN].to_vec());
        }
    }
    out
}

#[test]
fn setting_the_keyring_again_with_the_same_entropy_repeats_no_nonce() {
    let key = crate::Key::from_bytes([7; 32]);
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    a.set_keyring(crate::Keyring::new(key.clone()), [1; 16]);
    let mut seen = nonces(&mut a, 3);
    a.set_keyring(crate::Keyring::new(key), [1; 16]);
    seen.extend(nonces(&mut a, 3));
    assert_eq!(seen.len(), 6);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a nonce was reused");
}

#[test]
fn configure_keeps_the_keyring() {
    let key = crate::Key::from_bytes([7; 32]);
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    a.set_keyring(crate::Keyring::new(key), [1; 16]);
    a.set_plaintext(crate::Plaintext::Accept);
    let before = nonces(&mut a, 2);
    a.configure(Identity::new("a", addr(1)).unwrap(), Config::lan(), 4)
        .unwrap();
    assert!(a.keyring().is_some(), "encryption silently turned off");
    let after = nonces(&mut a, 2);
    assert!(after.iter().all(|n| !before.contains(n)));
}

#[test]
fn a_remembered_seed_outside_the_cluster_gets_only_our_own_state() {
    let stranger = SocketAddr::from(([192, 0, 2, 66], 4444));
    let mut a: Node<32, 64> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::local(), 3).unwrap();
    let mut now = Instant::from_secs(1);
    a.join(now, stranger).unwrap();
    for i in 2..12u8 {
        let name = std::format!("m{i}");
        a.handle_datagram(now, addr(i), &alive_at(&name, addr(i)))
            .unwrap();
    }
    // The seed never answers; the node was joined through a member instead.
    a.join.seeds.clear();
    a.timers.join = None;
    let end = now + Duration::from_secs(120);
    let mut states = Vec::new();
    for _ in 0..100_000 {
        a.handle_timeout(now);
        for (to, bytes) in drain(&mut a, now) {
            if to == stranger {
                let f = crate::wire::decode(&bytes, 0).unwrap();
                states.push(f.updates().count());
            }
        }
        now = a.poll_timeout().unwrap().max(now);
        if now > end {
            break;
        }
    }
    assert!(!states.is_empty(), "the seed is still tried");
    assert!(states.iter().all(|&n| n == 1), "{states:?}");
}

#[test]
fn a_node_seeded_with_its_own_address_does_not_join_itself() {
    // addr(9) reaches the node itself (say, a wildcard bind seen through loopback).
    let mut a: Node<8, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 3).unwrap();
    let now = Instant::from_secs(1);
    a.join(now, addr(9)).unwrap();
    a.handle_timeout(now);
    let sent = drain(&mut a, now);
    let (_, request) = sent.iter().find(|(to, _)| *to == addr(9)).unwrap();
    assert_eq!(
        a.handle_datagram(now, addr(9), request),
        Err(crate::wire::DropReason::Ignored)
    );
    while let Some(e) = a.poll_event() {
        assert!(!matches!(e, Event::Joined { .. }), "joined itself");
    }
    assert_eq!(a.members().count(), 1);
    // The seed is forgotten: no more attempts.
    let later = now + Duration::from_secs(120);
    a.handle_timeout(later);
    assert!(drain(&mut a, later).iter().all(|(to, _)| *to != addr(9)));
}

/// A node can live in a `static`: built at compile time, configured in place.
static PLACED: Node<4, 4> = Node::unconfigured();

#[test]
fn an_unconfigured_node_is_silent_until_configured_in_place() {
    let mut n = Node::<4, 4>::unconfigured();
    assert_eq!(PLACED.members().count(), 0);
    assert_eq!(n.poll_timeout(), None);
    assert_eq!(n.join(Instant::ZERO, addr(2)), Err(JoinError::Unconfigured));
    assert_eq!(
        n.handle_datagram(Instant::ZERO, addr(2), &alive("b", 0, 2)),
        Err(DropReason::Ignored)
    );
    let mut bad = Config::lan();
    bad.gossip_interval = Duration::ZERO;
    let id = Identity::new("n1", addr(1)).unwrap();
    assert_eq!(
        n.configure(id.clone(), bad, 1),
        Err(ConfigError::ZeroGossipInterval)
    );
    n.configure(id, Config::lan(), 1).unwrap();
    assert_eq!(n.local().name(), "n1");
    assert_eq!(n.poll_timeout(), Some(Instant::ZERO));
    n.join(Instant::ZERO, addr(2)).unwrap();
    n.handle_datagram(Instant::ZERO, addr(2), &alive("b", 0, 2))
        .unwrap();
    assert_eq!(n.members().count(), 2);
}

#[test]
fn small_mtu_profile_keeps_every_datagram_within_512_bytes() {
    // Long tags make every state large, so push-pull needs several chunks; encryption
    // takes its 40 bytes out of the same budget.
    let mut net = Net::with_config(8, Config::small_mtu());
    for (i, n) in net.nodes.iter_mut().enumerate() {
        let tags = Tags::new()
            .with("role", "backend")
            .unwrap()
            .with("note", &"x".repeat(60))
            .unwrap();
        n.node.set_tags(Instant::ZERO, tags);
        let keyring = crate::Keyring::new(crate::Key::from_bytes([1; 32]));
        n.node.set_keyring(keyring, [i as u8; 16]);
    }
    net.run_for(Duration::from_secs(20));
    for (i, n) in net.nodes.iter().enumerate() {
        assert_eq!(n.node.members().count(), 8, "node {i}");
    }
    assert!(net.sent.iter().all(|b| b.len() <= 512));
    assert!(
        net.sent.iter().any(|b| b.len() > 400),
        "chunks fill the datagram"
    );
}

#[test]
fn every_seed_gets_its_turn() {
    let mut a = node(1);
    for i in 2..10 {
        a.join(Instant::ZERO, addr(i)).unwrap();
    }
    assert_eq!(
        a.join(Instant::ZERO, addr(10)),
        Err(JoinError::TooManySeeds)
    );
    let mut contacted = std::collections::BTreeSet::new();
    let mut buf = [0u8; 1500];
    let mut now = Instant::ZERO;
    // Two join attempts: at once, and after the first backoff.
    for _ in 0..100 {
        if now > Instant::ZERO + a.config().join_retry_initial {
            break;
        }
        a.handle_timeout(now);
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            if matches!(
                crate::wire::decode(&buf[..t.len], 0).unwrap().message,
                Message::Sync { .. }
            ) {
                contacted.insert(t.to);
            }
        }
        now = a.poll_timeout().unwrap().max(now);
    }
    assert_eq!(contacted.len(), 8, "{contacted:?}");
    assert_eq!(a.stats().outbox_full, 0);
}

#[test]
fn is_leaving_only_after_leave_and_not_before_configure() {
    let fresh: Node<4, 4> = Node::unconfigured();
    assert!(
        !fresh.is_leaving(),
        "an unconfigured node was not told to leave"
    );
    let mut a = node(1);
    assert!(!a.is_leaving());
    a.leave(Instant::ZERO);
    assert!(a.is_leaving());
}
