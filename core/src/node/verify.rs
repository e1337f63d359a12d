//! Anti-amplification: which addresses have shown that they receive what is sent to them.
//!
//! A datagram's source address can be forged, so a small request must not be answered
//! with many bytes to an address that never proved it asked (QUIC's rule: at most three
//! times what was received). An address is *verified* once it answered one of our pings:
//! an ack to a probe, or to a challenge. A challenge is a ping with an unpredictable
//! sequence number, sent (with nothing piggybacked) to the source of a push-pull request
//! that is not verified; the push-pull answer follows its ack.
//!
//! Until then the source gets only that challenge, smaller than the request (it names the
//! requester, whose own state the request carries), and acks or nacks with nothing
//! piggybacked, no larger than the ping that asked for them, so no dissemination budget is
//! spent on it either.

use core::net::SocketAddr;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::Node;
use super::sync::SyncSession;
use super::transmit::Outgoing;
use crate::name::Name;

/// Push-pull requests waiting for their challenge's ack.
pub(super) const CHALLENGES: usize = 4;

/// A challenge in flight: the ack with `seq` from `from` releases the push-pull answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Challenge {
    from: SocketAddr,
    seq: u32,
}

/// The per-node secret, drawn from the seed: it keys the address fingerprints of verified
/// members and generates the challenges' sequence numbers, which a forger who cannot read
/// what is sent to the forged address cannot predict.
#[derive(Clone, Debug)]
pub(super) struct Secret {
    key: [u8; 32],
    counter: u64,
}

impl Secret {
    /// All zero, for a node not configured yet.
    pub(super) const ZERO: Secret = Secret {
        key: [0; 32],
        counter: 0,
    };

    pub(super) fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        let mut x = seed ^ 0x5EC2_E7C0_0C1E_5EED;
        for chunk in key.chunks_exact_mut(8) {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            chunk.copy_from_slice(&mix(x).to_le_bytes());
        }
        Secret { key, counter: 0 }
    }

    /// A fresh unpredictable challenge: XChaCha20's keystream under the secret key, with a
    /// nonce that never repeats.
    fn next_cookie(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&self.counter.to_le_bytes());
        let mut out = [0u8; 4];
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        // Encrypting zeros yields the keystream; the tag is not needed.
        let _ = cipher.encrypt_inout_detached(&XNonce::from(nonce), &[], (&mut out[..]).into());
        u32::from_le_bytes(out)
    }

    /// Keyed fingerprint of an address, never zero (zero marks "not verified").
    pub(super) fn fingerprint(&self, addr: SocketAddr) -> u32 {
        let mut h = u64::from_le_bytes([
            self.key[0],
            self.key[1],
            self.key[2],
            self.key[3],
            self.key[4],
            self.key[5],
            self.key[6],
            self.key[7],
        ]);
        let mut eat = |b: &[u8]| {
            for &x in b {
                h = mix(h ^ u64::from(x));
            }
        };
        match addr {
            SocketAddr::V4(a) => eat(&a.ip().octets()),
            SocketAddr::V6(a) => eat(&a.ip().octets()),
        }
        eat(&addr.port().to_le_bytes());
        (h as u32).max(1)
    }
}

/// splitmix64's finaliser.
fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<const M: usize, const U: usize> Node<M, U> {
    /// The slot of the live member at `addr` whose address is verified, if any.
    ///
    /// A scan of the table: it runs once per ping, ack or nack sent, not per update.
    pub(super) fn verified_member(&self, addr: SocketAddr) -> Option<usize> {
        let f = self.secret.fingerprint(addr);
        self.table.remote_range().find(|&i| {
            self.verified.get(i) == Some(&f)
                && self
                    .table
                    .get(i)
                    .is_some_and(|s| s.addr == addr && s.status.is_live())
        })
    }

    /// `addr` answered a ping of ours: every live member at that address is verified.
    pub(super) fn verify(&mut self, addr: SocketAddr) {
        let f = self.secret.fingerprint(addr);
        for i in self.table.remote_range() {
            if self.table.get(i).is_some_and(|s| s.addr == addr)
                && let Some(v) = self.verified.get_mut(i)
            {
                *v = f;
            }
        }
    }

    /// Verifies the target of the probe acked from `from`, when the ack came from its
    /// address (an ack forwarded by a helper proves nothing about the target's address).
    pub(super) fn verify_probe_target(&mut self, target: usize, from: SocketAddr) {
        if self.table.get(target).is_some_and(|s| s.addr == from)
            && let Some(v) = self.verified.get_mut(target)
        {
            *v = self.secret.fingerprint(from);
        }
    }

    /// A first push-pull request from `from`: answered in full when `from` is verified;
    /// otherwise challenged with a ping to `requester` (the name in the request's first
    /// state, the requester's own), and answered once the ack comes back. A request that
    /// names nobody is not answered.
    pub(super) fn on_sync_request(&mut self, from: SocketAddr, requester: Option<Name>) {
        if self.verified_member(from).is_some() {
            self.start_sync(from, SyncSession::response(from));
            return;
        }
        let Some(target) = requester else {
            self.stats.syncs_unverified += 1;
            return;
        };
        self.stats.syncs_challenged += 1;
        let seq = self.secret.next_cookie();
        self.challenges.retain(|c| c.from != from);
        if self.challenges.is_full() {
            // The oldest gives way: a flood of forged requests delays an honest one by a
            // join retry at worst.
            self.challenges.remove(0);
        }
        let _ = self.challenges.push(Challenge { from, seq });
        self.enqueue(Outgoing::Challenge {
            to: from,
            seq,
            target,
        });
    }

    /// An ack with `seq` from `from` that answers a challenge: `from` is verified and gets
    /// its push-pull answer. False when it answers no challenge.
    pub(super) fn on_challenge_ack(&mut self, from: SocketAddr, seq: u32) -> bool {
        let Some(i) = self
            .challenges
            .iter()
            .position(|c| c.seq == seq && c.from == from)
        else {
            return false;
        };
        self.challenges.remove(i);
        self.verify(from);
        self.start_sync(from, SyncSession::response(from));
        true
    }
}
