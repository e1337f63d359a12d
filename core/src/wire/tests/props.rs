//! Property tests that reach the body decoder: frames built from random fields (valid and
//! not), random bodies behind a valid header, and valid frames mutated byte by byte, fed to
//! the decoder and to a node.

use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::tags::TAGS_MAX;

/// Owned fields from which a message or update of any kind is built ([`Fields::message`],
/// [`Fields::update`]), so that proptest can generate them.
#[derive(Clone, Debug)]
struct Fields {
    seq: u32,
    counters: [u32; 2],
    suspected: Option<u32>,
    names: [String; 3],
    addr: WireAddr,
    tags: Vec<u8>,
    payload: Vec<u8>,
    flags: [bool; 3],
}

/// Update kinds a Sync chunk may carry, then those other messages may carry.
const SYNC_UPDATES: u8 = 2;
const GOSSIP_UPDATES: u8 = 5;

impl Fields {
    fn message(&self, kind: u8) -> Message<'_> {
        let [target, ..] = &self.names;
        let (seq, ltime) = (self.seq, self.counters[0]);
        match kind % 6 {
            0 => Message::Ping {
                seq,
                target,
                suspected: self.suspected,
            },
            1 => Message::Ack { seq },
            2 => Message::Nack { seq },
            3 => Message::PingReq {
                seq,
                target,
                addr: self.addr,
            },
            4 => Message::Sync {
                kind: if self.flags[0] {
                    SyncKind::Response
                } else {
                    SyncKind::Request {
                        first: self.flags[1],
                        join: self.flags[2],
                    }
                },
                ltime,
            },
            _ => Message::Gossip,
        }
    }

    /// An update of kind `kind` among those `message` may carry.
    fn update(&self, message: &Message<'_>, kind: u8) -> Update<'_> {
        let [name, other, event] = &self.names;
        let (incarnation, ltime) = (self.counters[1], self.counters[0]);
        let (addr, tags) = (self.addr, self.tags.as_slice());
        let user = Update::User {
            origin: other,
            ltime,
            name: event,
            payload: &self.payload,
        };
        if matches!(message, Message::Sync { .. }) {
            let statuses = [
                WireStatus::Alive,
                WireStatus::Suspect,
                WireStatus::Failed,
                WireStatus::Left,
            ];
            return match kind % SYNC_UPDATES {
                0 => Update::State {
                    name,
                    incarnation,
                    addr,
                    tags,
                    status: statuses[usize::from(kind / SYNC_UPDATES) % 4],
                },
                _ => user,
            };
        }
        match kind % GOSSIP_UPDATES {
            0 => Update::Alive {
                name,
                incarnation,
                addr,
                tags,
            },
            1 => Update::Suspect {
                name,
                incarnation,
                from: other,
            },
            2 => Update::Failed { name, incarnation },
            3 => Update::Left { name, incarnation },
            _ => user,
        }
    }

    /// The frame of message kind `kind` with updates of kinds `kinds` (as many as fit).
    fn frame(&self, kind: u8, kinds: &[u8]) -> (Message<'_>, Vec<Update<'_>>, Vec<u8>) {
        let message = self.message(kind);
        let mut updates: Vec<Update<'_>> =
            kinds.iter().map(|&k| self.update(&message, k)).collect();
        let (bytes, pushed) = encode(&message, &updates);
        updates.truncate(pushed);
        (message, updates, bytes)
    }
}

fn valid_name() -> impl Strategy<Value = String> + Clone {
    // Up to 8 characters of at most 4 bytes: never over 32 bytes.
    prop_oneof!["[a-z0-9._-]{1,32}", "[^\\s\\p{C}]{1,8}"]
}

fn any_name() -> impl Strategy<Value = String> + Clone {
    prop_oneof![valid_name(), ".{0,40}", Just(String::new())]
}

fn valid_counter() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![
        Just(0),
        Just(MAX_COUNTER - 1),
        Just(MAX_COUNTER),
        0..=MAX_COUNTER
    ]
}

fn any_counter() -> impl Strategy<Value = u32> + Clone {
    prop_oneof![valid_counter(), Just(MAX_COUNTER + 1), any::<u32>()]
}

fn valid_tags() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(("[a-z]{1,8}", "[a-z0-9]{0,16}"), 0..4).prop_map(|pairs| {
        let mut tags = Tags::new();
        for (k, v) in pairs {
            tags.insert(&k, &v).unwrap();
        }
        tags.encoded().to_vec()
    })
}

fn fields(
    name: impl Strategy<Value = String> + Clone,
    counter: impl Strategy<Value = u32> + Clone,
    tags: impl Strategy<Value = Vec<u8>>,
    payload_max: usize,
) -> impl Strategy<Value = Fields> {
    let addr = prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| WireAddr::V4(ip, port)),
        any::<([u8; 16], u16)>().prop_map(|(ip, port)| WireAddr::V6(ip, port)),
    ];
    (
        (any::<u32>(), [counter.clone(), counter.clone()]),
        proptest::option::of(counter),
        [name.clone(), name.clone(), name],
        addr,
        tags,
        proptest::collection::vec(any::<u8>(), 0..=payload_max),
        any::<[bool; 3]>(),
    )
        .prop_map(
            |((seq, counters), suspected, names, addr, tags, payload, flags)| Fields {
                seq,
                counters,
                suspected,
                names,
                addr,
                tags,
                payload,
                flags,
            },
        )
}

fn valid_fields() -> impl Strategy<Value = Fields> {
    fields(
        valid_name(),
        valid_counter(),
        valid_tags(),
        USER_PAYLOAD_MAX,
    )
}

fn any_fields() -> impl Strategy<Value = Fields> {
    let tags = prop_oneof![
        valid_tags(),
        proptest::collection::vec(any::<u8>(), 0..TAGS_MAX + 8)
    ];
    fields(any_name(), any_counter(), tags, USER_PAYLOAD_MAX + 8)
}

/// `bytes` with `edits` applied: (position, byte, operation) with operations set, flip a
/// bit, insert, remove.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, op) in edits {
        let len = bytes.len();
        match op {
            0 if len > 0 => bytes[pos % len] = byte,
            1 if len > 0 => bytes[pos % len] ^= 1 << (byte % 8),
            2 => bytes.insert(pos % (len + 1), byte),
            _ if len > 0 => {
                bytes.remove(pos % len);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = decode(&bytes, CLUSTER);
        check_node_survives(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut bytes = std::vec![VERSION, ENVELOPE_PLAIN];
        bytes.extend_from_slice(&CLUSTER.to_be_bytes());
        bytes.extend_from_slice(&body);
        bytes.truncate(MAX_DATAGRAM);
        let _ = decode_and_reencode(&bytes);
        check_node_survives(&bytes);
    }

    #[test]
    fn valid_frames_decode_to_what_was_encoded(
        f in valid_fields(),
        kind in any::<u8>(),
        kinds in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let (message, updates, bytes) = f.frame(kind, &kinds);
        let frame = decode(&bytes, CLUSTER).expect("a valid frame decodes");
        prop_assert_eq!(parts(&frame), (message, updates));
        decode_and_reencode(&bytes).unwrap();
        check_node_survives(&bytes);
    }

    #[test]
    fn frames_with_any_field_decode_as_encoded_or_are_malformed(
        f in any_fields(),
        kind in any::<u8>(),
        kinds in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let (message, updates, bytes) = f.frame(kind, &kinds);
        let valid = message.is_valid() && updates.iter().all(Update::is_valid);
        match decode(&bytes, CLUSTER) {
            Ok(frame) => {
                prop_assert!(valid, "accepted {:?}", (message, updates));
                prop_assert_eq!(parts(&frame), (message, updates));
            }
            Err(reason) => {
                prop_assert!(!valid, "refused {:?}", (message, updates));
                prop_assert_eq!(reason, DropReason::Malformed);
            }
        }
        check_node_survives(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        f in valid_fields(),
        kind in any::<u8>(),
        kinds in proptest::collection::vec(any::<u8>(), 0..6),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let bytes = mutate(f.frame(kind, &kinds).2, &edits);
        let _ = decode_and_reencode(&bytes);
        check_node_survives(&bytes);
    }
}

/// Found by `valid_frames_decode_to_what_was_encoded`: once a node has witnessed a user
/// event at Lamport time `MAX_COUNTER`, its `Sync` chunks carry `MAX_COUNTER + 1`, which
/// every peer drops as malformed.
#[test]
fn a_lamport_time_at_the_cap_does_not_make_the_node_send_malformed_frames() {
    let f = Fields {
        seq: 0,
        counters: [MAX_COUNTER, 0],
        suspected: None,
        names: ["a", "a", "a"].map(String::from),
        addr: v4(0),
        tags: Vec::new(),
        payload: Vec::new(),
        flags: [false, true, false],
    };
    // A first Sync request carrying a user event at the cap.
    check_node_survives(&f.frame(4, &[1]).2);
}

/// Every byte of every sample frame, in turn, set to values that matter to postcard
/// (varint continuation, enum tags, bool and option tags, lengths): whatever still
/// decodes re-encodes to the same frame, and nothing panics.
#[test]
fn every_byte_of_every_message_mutated_never_panics() {
    let (mut accepted, mut malformed) = (0, 0);
    for s in samples() {
        for pos in HEADER_LEN..s.bytes.len() {
            let original = s.bytes[pos];
            for value in [0, 1, 2, 5, 6, 0x20, 0x7f, 0x80, 0xff, original ^ 1] {
                let mut bytes = s.bytes.clone();
                bytes[pos] = value;
                match decode_and_reencode(&bytes) {
                    Ok(()) => accepted += 1,
                    Err(DropReason::Malformed) => malformed += 1,
                    Err(other) => panic!("byte {pos} set to {value}: {other:?}"),
                }
                check_node_survives(&bytes);
            }
        }
    }
    std::println!("{accepted} mutants decoded, {malformed} malformed");
    // Both paths are taken: the mutants reach the update decoder and its checks.
    assert!(
        accepted > 100 && malformed > 100,
        "{accepted} / {malformed}"
    );
}
