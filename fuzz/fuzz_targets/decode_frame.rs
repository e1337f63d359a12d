//! Arbitrary bytes into a node, four ways: raw to a plaintext node, raw to an encrypted node,
//! sealed with the cluster key (built here from the documented format with the same AEAD
//! crate) so the fuzzer reaches the decoder behind authentication, and raw to an encrypted
//! node that still accepts plaintext (a migration's middle step). Every rejected datagram
//! must leave the member table as it was.
#![no_main]

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libfuzzer_sys::fuzz_target;
use rumor_core::{
    Config, HEADER_LEN, Identity, Instant, Key, Keyring, NONCE_LEN, Node, Plaintext, TAG_LEN,
    VERSION,
};

const KEY: [u8; 32] = [7; 32];
const CLUSTER: u32 = 42;

type N = Node<8, 8>;

fn node(encrypted: bool) -> N {
    let id = Identity::new("a", "10.0.0.1:7946".parse().unwrap()).unwrap();
    let mut n: N = Node::new(id, Config::lan().with_cluster_id(CLUSTER), 1).unwrap();
    if encrypted {
        n.set_keyring(Keyring::new(Key::from_bytes(KEY)), [3; 16]);
    }
    n
}

fn snapshot(n: &N) -> Vec<(String, u32, rumor_core::Status)> {
    n.members()
        .map(|m| (m.name().to_owned(), m.incarnation(), m.status()))
        .collect()
}

fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = vec![VERSION, 1];
    out.extend_from_slice(&CLUSTER.to_be_bytes());
    let nonce = [5u8; NONCE_LEN];
    out.extend_from_slice(&nonce);
    let mut sealed = body.to_vec();
    let cipher = XChaCha20Poly1305::new(&KEY.into());
    let tag = cipher
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &out[..HEADER_LEN],
            sealed.as_mut_slice().into(),
        )
        .unwrap();
    out.extend_from_slice(&sealed);
    out.extend_from_slice(&tag);
    debug_assert_eq!(out.len(), HEADER_LEN + NONCE_LEN + body.len() + TAG_LEN);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let (mut n, bytes) = match mode % 4 {
        0 => (node(false), data.to_vec()),
        1 => (node(true), data.to_vec()),
        2 => (node(true), seal(data)),
        _ => {
            let mut n = node(true);
            n.set_plaintext(Plaintext::Accept);
            (n, data.to_vec())
        }
    };
    let before = snapshot(&n);
    let from = "10.0.0.2:7946".parse().unwrap();
    if n.handle_datagram(Instant::from_secs(1), from, &bytes)
        .is_err()
    {
        assert_eq!(before, snapshot(&n), "a dropped datagram changed state");
        assert_eq!(n.stats().dropped(), 1);
    }
    let mut buf = [0u8; 1500];
    for _ in 0..64 {
        let Some(t) = n.poll_transmit(Instant::from_secs(1), &mut buf) else {
            break;
        };
        assert!(t.len <= n.config().max_datagram);
    }
    while n.poll_event().is_some() {}
    assert!(n.members().count() <= 8);
});
