//! Encryption at the node level: sealed traffic, wrong keys, and a rolling key rotation.

use std::net::SocketAddr;

use super::tests::{Net, addr, frame};
use super::*;
use crate::crypto::{ENCRYPTION_OVERHEAD, Key, Plaintext};
use crate::wire::{DropReason, Message, Update};

fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

fn encrypt_all(net: &mut Net, k: &Key) {
    for (i, n) in net.nodes.iter_mut().enumerate() {
        n.node.set_keyring(Keyring::new(k.clone()), [i as u8; 16]);
    }
}

#[test]
fn encrypted_cluster_converges_and_every_datagram_is_sealed() {
    let mut net = Net::new(3);
    encrypt_all(&mut net, &key(1));
    net.run_for(Duration::from_secs(5));
    for i in 0..3 {
        assert_eq!(net.nodes[i].node.members().count(), 3, "node {i}");
        assert_eq!(net.nodes[i].node.stats().dropped(), 0);
    }
    assert!(
        net.sent
            .iter()
            .all(|b| b[1] == crate::ENVELOPE_XCHACHA20POLY1305)
    );
    assert!(net.sent.iter().all(|b| b.len() <= 1400));
    assert!(
        net.sent
            .iter()
            .all(|b| b.len() >= crate::HEADER_LEN + ENCRYPTION_OVERHEAD)
    );
}

#[test]
fn encrypt_wrong_key_or_plaintext_node_cannot_join_or_inject() {
    let mut net = Net::new(4);
    encrypt_all(&mut net, &key(1));
    net.nodes[3].node.set_keyring(Keyring::new(key(2)), [9; 16]);
    net.run_for(Duration::from_secs(10));
    // n4 knows only its seed, n1: n1 drops all it sends, so nobody answers it and nobody
    // else ever hears from it.
    assert_eq!(net.nodes[3].node.members().count(), 1);
    assert!(net.nodes[0].node.stats().dropped_unauthenticated > 0);
    for i in 0..3 {
        assert!(net.nodes[i].node.member("n4").is_none(), "node {i}");
        assert_eq!(net.nodes[i].node.members().count(), 3, "node {i}");
        if i != 0 {
            assert_eq!(
                net.nodes[i].node.stats().dropped_unauthenticated,
                0,
                "node {i}"
            );
        }
    }
    // Plaintext changes nothing on an encrypted node: neither a claim that n2 failed nor a
    // join request.
    let n2 = net.nodes[0].node.member("n2").unwrap().incarnation();
    let claim = frame(
        Message::Gossip,
        &[Update::Failed {
            name: "n2",
            incarnation: n2,
        }],
    );
    let mut plain: Node<8, 16> =
        Node::new(Identity::new("evil", addr(9)).unwrap(), Config::lan(), 5).unwrap();
    plain.join(net.now, addr(1)).unwrap();
    plain.handle_timeout(net.now);
    let mut buf = [0u8; 1500];
    let t = plain.poll_transmit(net.now, &mut buf).unwrap();
    let from: SocketAddr = addr(9);
    for bytes in [&claim[..], &buf[..t.len]] {
        assert_eq!(
            net.nodes[0].node.handle_datagram(net.now, from, bytes),
            Err(DropReason::Plaintext)
        );
    }
    assert_eq!(net.nodes[0].node.stats().dropped_plaintext, 2);
    assert_eq!(
        net.nodes[0].node.member("n2").unwrap().status(),
        Status::Alive
    );
    assert!(net.nodes[0].node.member("evil").is_none());
}

#[test]
fn encrypt_rolling_rotation_loses_no_member() {
    let mut net = Net::new(4);
    encrypt_all(&mut net, &key(1));
    net.run_for(Duration::from_secs(5));
    // Install everywhere, use everywhere, remove everywhere, with traffic in between.
    type Step = fn(&mut Keyring);
    let steps: [Step; 3] = [
        |k| k.install(key(2)).unwrap(),
        |k| k.use_key(&key(2)).unwrap(),
        |k| k.remove(&key(1)).unwrap(),
    ];
    for step in steps {
        for i in 0..4 {
            step(net.nodes[i].node.keyring_mut().unwrap());
            net.run_for(Duration::from_millis(300));
        }
        net.run_for(Duration::from_secs(2));
    }
    net.run_for(Duration::from_secs(30));
    for i in 0..4 {
        let n = &net.nodes[i].node;
        assert_eq!(n.keyring().unwrap().keys().count(), 1);
        assert!(n.members().all(|m| m.status() == Status::Alive), "node {i}");
        assert_eq!(n.members().count(), 4);
        assert_eq!(n.stats().dropped_unauthenticated, 0, "node {i}");
    }
}

#[test]
fn encrypt_turned_on_in_a_running_plaintext_cluster_splits_nothing() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    // Each step on every node, one node at a time, with traffic in between.
    type Step = fn(&mut Node<8, 16>, u8);
    let steps: [Step; 3] = [
        |n, i| {
            n.set_plaintext(Plaintext::Send);
            n.set_keyring(Keyring::new(key(1)), [i; 16]);
        },
        |n, _| n.set_plaintext(Plaintext::Accept),
        |n, _| n.set_plaintext(Plaintext::Refuse),
    ];
    for step in steps {
        for i in 0..4 {
            step(&mut net.nodes[i].node, i as u8);
            net.run_for(Duration::from_millis(700));
        }
        net.run_for(Duration::from_secs(2));
    }
    let sent_before = net.sent.len();
    net.run_for(Duration::from_secs(30));
    for i in 0..4 {
        let n = &net.nodes[i].node;
        assert_eq!(n.members().count(), 4, "node {i}");
        assert_eq!(n.stats().suspicions, 0, "node {i} suspected someone");
        assert_eq!(n.stats().dropped(), 0, "node {i}");
    }
    assert!(
        net.sent[sent_before..]
            .iter()
            .all(|b| b[1] == crate::ENVELOPE_XCHACHA20POLY1305),
        "encrypted only at the end"
    );
}
