//! Round trips of every message, and property tests feeding random bytes and random
//! mutations of valid frames to the decoder and to a node.

use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::{Config, Identity, Instant, Node, Status};

fn v4(i: u8) -> WireAddr {
    WireAddr::V4([10, 0, 0, i], 7946)
}

fn sample_frames() -> Vec<Vec<u8>> {
    let tags = Tags::new().with("role", "backend").unwrap();
    let messages = [
        Message::Ping {
            seq: 1,
            target: "a",
            suspected: Some(3),
        },
        Message::Ack { seq: 2 },
        Message::Nack { seq: 3 },
        Message::PingReq {
            seq: 4,
            target: "b",
            addr: WireAddr::V6([1; 16], 9),
        },
        Message::Gossip,
    ];
    let updates = [
        Update::Alive {
            name: "b",
            incarnation: 1,
            addr: v4(2),
            tags: tags.encoded(),
        },
        Update::Suspect {
            name: "c",
            incarnation: 2,
            from: "b",
        },
        Update::Failed {
            name: "d",
            incarnation: 3,
        },
        Update::Left {
            name: "e",
            incarnation: 4,
        },
        Update::User {
            origin: "b",
            ltime: 7,
            name: "deploy",
            payload: b"v2",
        },
    ];
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    for m in &messages {
        let mut e = Encoder::new(&mut buf, 42, m).unwrap();
        for u in &updates {
            assert!(e.push(u));
        }
        let n = e.len();
        out.push(buf[..n].to_vec());
    }
    let sync = Message::Sync {
        kind: SyncKind::Request {
            first: true,
            join: true,
        },
        ltime: 5,
    };
    let mut e = Encoder::new(&mut buf, 42, &sync).unwrap();
    assert!(e.push(&Update::State {
        name: "b",
        incarnation: 1,
        addr: v4(2),
        tags: tags.encoded(),
        status: WireStatus::Suspect,
    }));
    // User events ride in Sync chunks too (anti-entropy for missed events).
    assert!(e.push(&updates[4]));
    let n = e.len();
    out.push(buf[..n].to_vec());
    out
}

#[test]
fn every_message_round_trips() {
    for bytes in sample_frames() {
        let frame = decode(&bytes, 42).unwrap();
        let n = frame.updates().count();
        assert!(n == 5 || matches!(frame.message, Message::Sync { .. }) && n == 2);
    }
    assert_eq!(
        decode(&sample_frames()[0], 43).err(),
        Some(DropReason::Cluster)
    );
}

#[test]
fn sync_and_gossip_do_not_mix() {
    let mut buf = [0u8; 256];
    let mut e = Encoder::new(&mut buf, 0, &Message::Gossip).unwrap();
    assert!(e.push(&Update::State {
        name: "b",
        incarnation: 1,
        addr: v4(2),
        tags: &[],
        status: WireStatus::Alive,
    }));
    let n = e.len();
    assert_eq!(decode(&buf[..n], 0).err(), Some(DropReason::Malformed));
    // Nor do Sync chunks carry piggybacked claims.
    let sync = Message::Sync {
        kind: SyncKind::Response,
        ltime: 1,
    };
    let mut e = Encoder::new(&mut buf, 0, &sync).unwrap();
    assert!(e.push(&Update::Alive {
        name: "b",
        incarnation: 1,
        addr: v4(2),
        tags: &[],
    }));
    let n = e.len();
    assert_eq!(decode(&buf[..n], 0).err(), Some(DropReason::Malformed));
}

#[test]
fn the_encoder_never_overruns_its_buffer() {
    let mut buf = [0u8; 40];
    let mut e = Encoder::new(&mut buf, 0, &Message::Gossip).unwrap();
    let big = Update::User {
        origin: "origin",
        ltime: 1,
        name: "event",
        payload: &[7; 64],
    };
    assert!(!e.push(&big));
    assert_eq!(e.len(), HEADER_LEN + 1);
    assert!(Encoder::new(&mut [0u8; 3], 0, &Message::Gossip).is_none());
}

fn victim() -> Node<8, 8> {
    let id = Identity::new("a", "10.0.0.1:7946".parse().unwrap()).unwrap();
    let mut n: Node<8, 8> = Node::new(id, Config::lan().with_cluster_id(42), 1).unwrap();
    // Give it something to lose.
    let bytes = &sample_frames()[4];
    n.handle_datagram(
        Instant::from_secs(1),
        "10.0.0.2:7946".parse().unwrap(),
        bytes,
    )
    .unwrap();
    n
}

fn snapshot(n: &Node<8, 8>) -> Vec<(std::string::String, u32, Status, Vec<u8>)> {
    n.members()
        .map(|m| {
            (
                m.name().into(),
                m.incarnation(),
                m.status(),
                m.tags().encoded().to_vec(),
            )
        })
        .collect()
}

/// Feeds `bytes` to a node; when it is refused, the member table must be unchanged.
fn check_node_survives(bytes: &[u8]) {
    let mut n = victim();
    let before = snapshot(&n);
    let from = "10.0.0.3:7946".parse().unwrap();
    match n.handle_datagram(Instant::from_secs(2), from, bytes) {
        Ok(()) => {}
        Err(_) => {
            assert_eq!(before, snapshot(&n));
            assert_eq!(n.stats().dropped(), 1);
        }
    }
    n.handle_timeout(Instant::from_secs(3));
    let mut buf = [0u8; MAX_DATAGRAM];
    for _ in 0..64 {
        if n.poll_transmit(Instant::from_secs(3), &mut buf).is_none() {
            break;
        }
    }
    assert!(n.members().count() <= 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = decode(&bytes, 42);
        check_node_survives(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut bytes = std::vec![VERSION, ENVELOPE_PLAIN, 0, 0, 0, 42];
        bytes.extend_from_slice(&body);
        bytes.truncate(MAX_DATAGRAM);
        check_node_survives(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut bytes = sample_frames()[which].clone();
        for (pos, byte, op) in edits {
            let len = bytes.len();
            match op {
                0 if len > 0 => bytes[pos % len] = byte,
                1 if len > 0 => bytes[pos % len] ^= 1 << (byte % 8),
                2 => bytes.insert(pos % (len + 1), byte),
                _ if len > 0 => { bytes.remove(pos % len); }
                _ => {}
            }
        }
        check_node_survives(&bytes);
    }
}

#[test]
fn largest_updates_have_the_documented_sizes() {
    let name = "n".repeat(32);
    let mut tags = Tags::new();
    for (k, v) in [("k1", "v".repeat(40)), ("k2", "w".repeat(48))] {
        tags.insert(k, &v).unwrap();
    }
    assert_eq!(tags.encoded().len(), 96);
    let size = |u: &Update<'_>| postcard::to_slice(u, &mut [0u8; 512]).unwrap().len();
    let addr = WireAddr::V6([0xff; 16], u16::MAX);
    let alive = Update::Alive {
        name: &name,
        incarnation: MAX_COUNTER,
        addr,
        tags: tags.encoded(),
    };
    let state = Update::State {
        name: &name,
        incarnation: MAX_COUNTER,
        addr,
        tags: tags.encoded(),
        status: WireStatus::Left,
    };
    let user = Update::User {
        origin: &name,
        ltime: MAX_COUNTER,
        name: &name,
        payload: &[0; USER_PAYLOAD_MAX],
    };
    // docs/PROTOCOL.md quotes these figures.
    assert_eq!((size(&alive), size(&state), size(&user)), (156, 157, 137));
}
