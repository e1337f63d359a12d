//! Anti-amplification: bytes sent back per byte received from a source that has not shown
//! it receives at its address, and the dissemination budget such sources must not spend.

use std::net::SocketAddr;
use std::vec::Vec;

use super::tests::{Net, Peer, addr, frame};
use super::*;
use crate::wire::{Message, SyncKind, Update, WireAddr};

type Big = Node<32, 64>;

fn stranger() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 66], 4444))
}

/// A node that tracks `n` members, itself included, learned through one gossip datagram
/// from member 2 (so every update is still queued for dissemination).
fn node_of(n: u8) -> Big {
    let mut a = Big::new(Identity::new("n1", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let names: Vec<std::string::String> = (2..=n).map(|i| std::format!("member-{i:03}")).collect();
    let updates: Vec<Update<'_>> = names
        .iter()
        .zip(2..=n)
        .map(|(name, i)| Update::Alive {
            name,
            incarnation: 1,
            addr: WireAddr::from(addr(i)),
            tags: &[],
        })
        .collect();
    for chunk in updates.chunks(16) {
        a.handle_datagram(
            Instant::from_secs(1),
            addr(2),
            &frame(Message::Gossip, chunk),
        )
        .unwrap();
    }
    assert_eq!(a.members().count(), usize::from(n));
    a
}

/// Everything `a` sends to `to` until it has nothing more to send: (datagrams, bytes).
fn sent_to(a: &mut Big, to: SocketAddr) -> (Vec<Vec<u8>>, usize) {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    for _ in 0..1000 {
        let Some(t) = a.poll_transmit(Instant::from_secs(1), &mut buf) else {
            break;
        };
        if t.to == to {
            out.push(buf[..t.len].to_vec());
        }
    }
    let bytes = out.iter().map(Vec::len).sum();
    (out, bytes)
}

/// The smallest push-pull request: a header and `Sync`, no state (11 bytes).
fn bare_sync_request() -> Vec<u8> {
    frame(
        Message::Sync {
            kind: SyncKind::Request {
                first: true,
                join: false,
            },
            ltime: 0,
        },
        &[],
    )
}

/// A join request as a fresh node sends it: its own state only.
fn join_request(name: &str, at: SocketAddr) -> Vec<u8> {
    super::tests::own_sync_request(name, 0, at, true)
}

#[test]
fn an_unverified_bare_sync_request_gets_at_most_three_times_its_bytes() {
    let mut a = node_of(20);
    let _ = sent_to(&mut a, stranger());
    let request = bare_sync_request();
    assert_eq!(request.len(), 11);
    a.handle_datagram(Instant::from_secs(1), stranger(), &request)
        .unwrap();
    let (_, out) = sent_to(&mut a, stranger());
    std::println!(
        "20 members, bare Sync: {} bytes in, {out} bytes out ({:.1}x)",
        request.len(),
        out as f64 / request.len() as f64
    );
    assert!(out <= 3 * request.len(), "{out} bytes out");
    assert_eq!(a.stats().syncs_unverified, 1);
}

#[test]
fn an_unverified_join_request_gets_only_a_smaller_challenge() {
    for n in [2u8, 20, 32] {
        let mut a = node_of(n);
        let _ = sent_to(&mut a, stranger());
        let request = join_request("x", stranger());
        a.handle_datagram(Instant::from_secs(1), stranger(), &request)
            .unwrap();
        let (datagrams, out) = sent_to(&mut a, stranger());
        std::println!(
            "{n} members, join request: {} bytes in, {out} bytes out",
            request.len()
        );
        assert!(out <= 3 * request.len(), "{n} members: {out} bytes out");
        assert_eq!(datagrams.len(), 1, "one challenge");
        let challenge = crate::wire::decode(&datagrams[0], 0).unwrap();
        assert!(matches!(
            challenge.message,
            Message::Ping {
                target: "x",
                suspected: None,
                ..
            }
        ));
        assert_eq!(challenge.updates().count(), 0, "nothing piggybacked");
    }
}

#[test]
fn a_forged_ack_does_not_release_the_table_but_the_right_one_does() {
    let mut a = node_of(20);
    let _ = sent_to(&mut a, stranger());
    a.handle_datagram(
        Instant::from_secs(1),
        stranger(),
        &join_request("x", stranger()),
    )
    .unwrap();
    let (datagrams, _) = sent_to(&mut a, stranger());
    let Message::Ping { seq, .. } = crate::wire::decode(&datagrams[0], 0).unwrap().message else {
        panic!("a challenge ping");
    };
    let ack = |seq: u32| frame(Message::Ack { seq }, &[]);
    // Wrong sequence number, or the right one from another address: nothing.
    a.handle_datagram(Instant::from_secs(1), stranger(), &ack(seq.wrapping_add(1)))
        .unwrap();
    a.handle_datagram(Instant::from_secs(1), addr(9), &ack(seq))
        .unwrap();
    assert_eq!(sent_to(&mut a, stranger()).1, 0);
    // The requester answered: it gets every member.
    a.handle_datagram(Instant::from_secs(1), stranger(), &ack(seq))
        .unwrap();
    let (datagrams, _) = sent_to(&mut a, stranger());
    let states: usize = datagrams
        .iter()
        .map(|d| {
            let f = crate::wire::decode(d, 0).unwrap();
            assert!(matches!(
                f.message,
                Message::Sync {
                    kind: SyncKind::Response,
                    ..
                }
            ));
            f.updates()
                .filter(|u| matches!(u, Update::State { .. }))
                .count()
        })
        .sum();
    assert_eq!(states, 21, "20 members and the requester");
    // Verified now: its next request is answered at once.
    a.handle_datagram(
        Instant::from_secs(2),
        stranger(),
        &join_request("x", stranger()),
    )
    .unwrap();
    let (datagrams, _) = sent_to(&mut a, stranger());
    assert!(matches!(
        crate::wire::decode(&datagrams[0], 0).unwrap().message,
        Message::Sync {
            kind: SyncKind::Response,
            ..
        }
    ));
    assert_eq!(a.stats().syncs_challenged, 1);
}

#[test]
fn a_ping_from_a_stranger_gets_a_bare_ack_and_spends_no_retransmission() {
    let mut a = node_of(20);
    let queued: Vec<u8> = (0..a.queue.len())
        .map(|i| a.queue.get(i).unwrap().transmits)
        .collect();
    assert!(!queued.is_empty());
    let ping = frame(
        Message::Ping {
            seq: 7,
            target: "n1",
            suspected: None,
        },
        &[],
    );
    for from in [stranger(), addr(5)] {
        // addr(5) is a member, but it never answered a ping of ours: not verified.
        a.handle_datagram(Instant::from_secs(1), from, &ping)
            .unwrap();
        let (datagrams, out) = sent_to(&mut a, from);
        std::println!("Ping from {from}: {} bytes in, {out} out", ping.len());
        assert!(out <= 3 * ping.len(), "{out} bytes out for {}", ping.len());
        assert_eq!(datagrams.len(), 1);
        let after: Vec<u8> = (0..a.queue.len())
            .map(|i| a.queue.get(i).unwrap().transmits)
            .collect();
        assert_eq!(after, queued, "no retransmission spent");
    }
}

#[test]
fn a_verified_member_still_gets_updates_on_its_acks() {
    let mut a = node_of(20);
    let target = a.find("member-005").unwrap();
    a.verify_probe_target(target, addr(5));
    let ping = frame(
        Message::Ping {
            seq: 7,
            target: "n1",
            suspected: None,
        },
        &[],
    );
    a.handle_datagram(Instant::from_secs(1), addr(5), &ping)
        .unwrap();
    let (datagrams, _) = sent_to(&mut a, addr(5));
    assert!(
        crate::wire::decode(&datagrams[0], 0)
            .unwrap()
            .updates()
            .count()
            > 0
    );
    // An ack forwarded from elsewhere does not verify the target's address.
    let other = a.find("member-006").unwrap();
    a.verify_probe_target(other, addr(7));
    assert_eq!(a.verified_member(addr(6)), None);
    assert_eq!(a.verified_member(addr(5)), Some(target));
}

#[test]
fn joins_through_the_challenge_converge() {
    let mut net = Net::new(6);
    net.run_for(Duration::from_secs(5));
    for Peer { node: n, .. } in &net.nodes {
        assert_eq!(n.members().count(), 6, "{n:?}");
        assert!(n.members().all(|m| m.status() == Status::Alive));
    }
    // Every joiner went through a challenge at the seed, and was answered at once.
    assert!(net.nodes[0].node.stats().syncs_challenged >= 5);
    let joined: Vec<_> = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Joined { .. }))
        .collect();
    assert_eq!(joined.len(), 5);
}

/// The `k`th of many joiners, each at its own address.
fn joiner(k: u8) -> (std::string::String, SocketAddr) {
    (
        std::format!("joiner-{k:02}"),
        SocketAddr::from(([198, 51, 100, k], 4444)),
    )
}

/// The challenge's sequence number in what `a` sent to `to`.
fn challenge_seq(a: &mut Big, to: SocketAddr) -> u32 {
    let (datagrams, _) = sent_to(a, to);
    match crate::wire::decode(&datagrams[0], 0).unwrap().message {
        Message::Ping { seq, .. } => seq,
        other => panic!("a challenge ping, not {other:?}"),
    }
}

/// Whether what `a` sent to `to` is a push-pull response.
fn answered(a: &mut Big, to: SocketAddr) -> bool {
    let (datagrams, _) = sent_to(a, to);
    datagrams.iter().any(|d| {
        matches!(
            crate::wire::decode(d, 0).unwrap().message,
            Message::Sync {
                kind: SyncKind::Response,
                ..
            }
        )
    })
}

fn ack(seq: u32) -> Vec<u8> {
    frame(Message::Ack { seq }, &[])
}

/// Twelve nodes join through one seed at once: all their requests arrive before any of
/// their acks. Each is answered after its one challenge; none waits for a join retry
/// (which used to happen to all but the last four, whose challenges pushed out the rest).
#[test]
fn a_burst_of_joiners_is_answered_after_one_challenge_each() {
    let mut a = node_of(4);
    let _ = sent_to(&mut a, stranger());
    let t = Instant::from_secs(1);
    let seqs: Vec<u32> = (1..=12)
        .map(|k| {
            let (name, at) = joiner(k);
            a.handle_datagram(t, at, &join_request(&name, at)).unwrap();
            challenge_seq(&mut a, at)
        })
        .collect();
    for (k, seq) in (1..=12).zip(seqs) {
        let (_, at) = joiner(k);
        a.handle_datagram(t, at, &ack(seq)).unwrap();
        assert!(answered(&mut a, at), "joiner {k} not answered");
    }
    assert_eq!(a.stats().syncs_challenged, 12);
}

/// An ack is one answer: replayed (as an on-path observer could), it releases nothing more.
#[test]
fn a_replayed_challenge_ack_releases_nothing_more() {
    let mut a = node_of(4);
    let _ = sent_to(&mut a, stranger());
    let t = Instant::from_secs(1);
    let (name, at) = joiner(1);
    a.handle_datagram(t, at, &join_request(&name, at)).unwrap();
    let seq = challenge_seq(&mut a, at);
    a.handle_datagram(t, at, &ack(seq)).unwrap();
    assert!(answered(&mut a, at));
    // Forget the verification, as if the member had been reaped and its slot reused.
    a.verified = [0; 32];
    for _ in 0..3 {
        a.handle_datagram(t, at, &ack(seq)).unwrap();
        assert_eq!(sent_to(&mut a, at).1, 0, "a replay released an answer");
    }
}

/// A challenge can be answered until the end of the epoch after the one it was sent in,
/// and not later.
#[test]
fn a_challenge_ack_is_accepted_for_one_more_epoch_and_no_longer() {
    let sent = Instant::from_secs(1);
    let epoch = verify::CHALLENGE_EPOCH.as_millis();
    // Sent in epoch 0 (t = 1 s): the last accepted instant ends epoch 1.
    for (late, accepted) in [(2 * epoch - 1, true), (2 * epoch, false)] {
        let mut a = node_of(4);
        let _ = sent_to(&mut a, stranger());
        let (name, at) = joiner(1);
        a.handle_datagram(sent, at, &join_request(&name, at))
            .unwrap();
        let seq = challenge_seq(&mut a, at);
        a.handle_datagram(Instant::from_millis(late), at, &ack(seq))
            .unwrap();
        assert_eq!(answered(&mut a, at), accepted, "ack at {late} ms");
    }
}
