//! Round trips of every message, and the checks the property tests (in `props`) apply to
//! each frame they make: decode, re-encode, and feed it to a node.

use std::string::String;
use std::vec::Vec;

use super::*;
use crate::{Config, Identity, Instant, Node, Status};

const CLUSTER: u32 = 42;

fn v4(i: u8) -> WireAddr {
    WireAddr::V4([10, 0, 0, i], 7946)
}

fn sample_tags() -> &'static [u8] {
    static TAGS: std::sync::LazyLock<Tags> =
        std::sync::LazyLock::new(|| Tags::new().with("role", "backend").unwrap());
    TAGS.encoded()
}

/// One hand-made frame: what was encoded, and the bytes.
struct Sample {
    message: Message<'static>,
    updates: Vec<Update<'static>>,
    bytes: Vec<u8>,
}

/// Encodes `message` and as many of `updates` as fit into one frame; returns the bytes and
/// how many updates went in.
fn encode(message: &Message<'_>, updates: &[Update<'_>]) -> (Vec<u8>, usize) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut e = Encoder::new(&mut buf, CLUSTER, message).unwrap();
    let pushed = updates.iter().take_while(|u| e.push(u)).count();
    let n = e.len();
    (buf[..n].to_vec(), pushed)
}

/// Every message kind, each carrying every update kind it may carry.
fn samples() -> Vec<Sample> {
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
    let user = Update::User {
        origin: "b",
        ltime: 7,
        name: "deploy",
        payload: b"v2",
    };
    let gossip = std::vec![
        Update::Alive {
            name: "b",
            incarnation: 1,
            addr: v4(2),
            tags: sample_tags(),
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
        user,
    ];
    let mut out: Vec<Sample> = messages
        .into_iter()
        .map(|message| Sample {
            message,
            updates: gossip.clone(),
            bytes: Vec::new(),
        })
        .collect();
    out.push(Sample {
        message: Message::Sync {
            kind: SyncKind::Request {
                first: true,
                join: true,
            },
            ltime: 5,
        },
        // User events ride in Sync chunks too (anti-entropy for missed events).
        updates: std::vec![
            Update::State {
                name: "b",
                incarnation: 1,
                addr: v4(2),
                tags: sample_tags(),
                status: WireStatus::Suspect,
            },
            user,
        ],
        bytes: Vec::new(),
    });
    for s in &mut out {
        let (bytes, pushed) = encode(&s.message, &s.updates);
        assert_eq!(pushed, s.updates.len());
        s.bytes = bytes;
    }
    out
}

/// The message and updates of a decoded frame.
fn parts<'a>(frame: &Frame<'a>) -> (Message<'a>, Vec<Update<'a>>) {
    (frame.message, frame.updates().collect())
}

/// Decodes `bytes`; when they decode, encodes the result again and checks that it decodes
/// to the same message and updates, in no more bytes (postcard accepts over-long varints,
/// so the bytes themselves may differ). Returns the verdict.
fn decode_and_reencode(bytes: &[u8]) -> Result<(), DropReason> {
    let frame = decode(bytes, CLUSTER)?;
    let (message, updates) = parts(&frame);
    let (again, pushed) = encode(&message, &updates);
    assert_eq!(pushed, updates.len(), "a decoded frame does not fit again");
    assert!(again.len() <= bytes.len());
    let frame2 = decode(&again, CLUSTER).expect("a re-encoded frame decodes");
    assert_eq!(parts(&frame2), (message, updates));
    Ok(())
}

#[test]
fn every_message_round_trips() {
    for s in samples() {
        let frame = decode(&s.bytes, CLUSTER).unwrap();
        assert_eq!(parts(&frame), (s.message, s.updates.clone()));
        // Encoding is canonical: what decodes encodes back to the same bytes.
        assert_eq!(encode(&s.message, &s.updates).0, s.bytes);
    }
    let bytes = &samples()[0].bytes;
    assert_eq!(decode(bytes, CLUSTER + 1).err(), Some(DropReason::Cluster));
    let mut sealed = bytes.clone();
    sealed[1] = 1;
    assert_eq!(decode(&sealed, CLUSTER).err(), Some(DropReason::Envelope));
    let mut newer = bytes.clone();
    newer[0] = VERSION + 1;
    assert_eq!(decode(&newer, CLUSTER).err(), Some(DropReason::Version));
    assert_eq!(
        decode(&bytes[..5], CLUSTER).err(),
        Some(DropReason::Truncated)
    );
    // Any byte cut off the end, or added to it, spoils the body.
    assert_eq!(
        decode(&bytes[..bytes.len() - 1], CLUSTER).err(),
        Some(DropReason::Malformed)
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode(&longer, CLUSTER).err(), Some(DropReason::Malformed));
}

#[test]
fn sync_and_gossip_do_not_mix() {
    let state = Update::State {
        name: "b",
        incarnation: 1,
        addr: v4(2),
        tags: &[],
        status: WireStatus::Alive,
    };
    let (bytes, _) = encode(&Message::Gossip, &[state]);
    assert_eq!(decode(&bytes, CLUSTER).err(), Some(DropReason::Malformed));
    // Nor do Sync chunks carry piggybacked claims.
    let sync = Message::Sync {
        kind: SyncKind::Response,
        ltime: 1,
    };
    let alive = Update::Alive {
        name: "b",
        incarnation: 1,
        addr: v4(2),
        tags: &[],
    };
    let (bytes, _) = encode(&sync, &[alive]);
    assert_eq!(decode(&bytes, CLUSTER).err(), Some(DropReason::Malformed));
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

const VICTIM: &str = "a";

fn victim_addr() -> core::net::SocketAddr {
    "10.0.0.1:7946".parse().unwrap()
}

fn victim() -> Node<8, 8> {
    let id = Identity::new(VICTIM, victim_addr()).unwrap();
    let config = Config::lan().with_cluster_id(CLUSTER);
    let mut n: Node<8, 8> = Node::new(id, config, 1).unwrap();
    // Give it something to lose.
    let bytes = &samples()[4].bytes;
    let from = "10.0.0.2:7946".parse().unwrap();
    n.handle_datagram(Instant::from_secs(1), from, bytes)
        .unwrap();
    n
}

type Snapshot = Vec<(String, u32, Status, Vec<u8>)>;

fn snapshot(n: &Node<8, 8>) -> Snapshot {
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

/// Feeds `bytes` to a node. The node refuses exactly what the decoder refuses, for the
/// same reason, and then changes nothing; it accepts what decodes (unless the message is
/// not for it), stays alive under its own name and address, and everything it sends
/// afterwards decodes.
fn check_node_survives(bytes: &[u8]) {
    let mut n = victim();
    let before = snapshot(&n);
    let received = n.stats().datagrams_received;
    let from = "10.0.0.3:7946".parse().unwrap();
    let verdict = n.handle_datagram(Instant::from_secs(2), from, bytes);
    let accepted = match (decode(bytes, CLUSTER).map(|_| ()), verdict) {
        (Ok(()), Ok(())) => true,
        (Ok(()), Err(DropReason::Ignored)) => false,
        (Err(reason), Err(r)) if reason == r => false,
        (decoded, verdict) => panic!("decoder says {decoded:?}, node says {verdict:?}"),
    };
    if accepted {
        assert_eq!(n.stats().datagrams_received, received + 1);
        assert_eq!(n.stats().dropped(), 0);
    } else {
        assert_eq!(before, snapshot(&n));
        assert_eq!(n.stats().dropped(), 1);
        assert_eq!(n.stats().datagrams_received, received);
    }
    let me = n.local();
    assert_eq!((me.name(), me.addr()), (VICTIM, victim_addr()));
    assert_eq!(me.status(), Status::Alive);
    n.handle_timeout(Instant::from_secs(3));
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut sent = 0;
    while let Some(t) = n.poll_transmit(Instant::from_secs(3), &mut buf) {
        decode_and_reencode(&buf[..t.len]).expect("the node sent a frame peers would drop");
        sent += 1;
        assert!(sent < 64, "the node never stops sending");
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

mod props;
