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
use crate::time::{Duration, Instant};

/// Challenges answered recently, remembered so that a replayed ack releases nothing more.
pub(super) const ANSWERED: usize = 4;

/// A challenge's sequence number is keyed by the requester's address and the epoch, this
/// long, it was sent in; its ack is accepted until the end of the next epoch. No state is
/// kept per challenge, so a burst of joiners, however large, is challenged all at once.
pub(super) const CHALLENGE_EPOCH: Duration = Duration::from_secs(5);

/// A challenge already answered: the ack for `from` in `epoch` released its push-pull answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answered {
    from: SocketAddr,
    epoch: u64,
}

/// The per-node secret, drawn from the seed: it keys the address fingerprints of verified
/// members and the challenges' sequence numbers, which a forger who cannot read what is
/// sent to the forged address cannot predict.
#[derive(Clone, Debug)]
pub(super) struct Secret {
    key: [u8; 32],
}

impl Secret {
    /// All zero, for a node not configured yet.
    pub(super) const ZERO: Secret = Secret { key: [0; 32] };

    pub(super) fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        let mut x = seed ^ 0x5EC2_E7C0_0C1E_5EED;
        for chunk in key.chunks_exact_mut(8) {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            chunk.copy_from_slice(&mix(x).to_le_bytes());
        }
        Secret { key }
    }

    /// The challenge for `from` in `epoch`: XChaCha20's keystream under the secret key,
    /// with the address and the epoch as the nonce, so each pair gets its own.
    fn cookie(&self, from: SocketAddr, epoch: u64) -> u32 {
        let mut nonce = [0u8; 24];
        match from {
            SocketAddr::V4(a) => nonce[..4].copy_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => nonce[..16].copy_from_slice(&a.ip().octets()),
        }
        nonce[16] = u8::from(from.is_ipv6());
        nonce[17..19].copy_from_slice(&from.port().to_le_bytes());
        // An epoch is 5 s: 40 bits last 174,000 years.
        nonce[19..24].copy_from_slice(&epoch.to_le_bytes()[..5]);
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
    pub(super) fn on_sync_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        requester: Option<Name>,
    ) {
        if self.verified_member(from).is_some() {
            self.start_sync(from, SyncSession::response(from));
            return;
        }
        let Some(target) = requester else {
            self.stats.syncs_unverified += 1;
            return;
        };
        self.stats.syncs_challenged += 1;
        let seq = self.secret.cookie(from, epoch(now));
        self.enqueue(Outgoing::Challenge {
            to: from,
            seq,
            target,
        });
    }

    /// An ack with `seq` from `from` that answers a challenge of this epoch or the last
    /// one, not answered yet: `from` is verified and gets its push-pull answer. Any other
    /// ack changes nothing.
    pub(super) fn on_challenge_ack(&mut self, now: Instant, from: SocketAddr, seq: u32) {
        let current = epoch(now);
        let Some(epoch) = [current, current.saturating_sub(1)]
            .into_iter()
            .find(|&e| self.secret.cookie(from, e) == seq)
        else {
            return;
        };
        let answer = Answered { from, epoch };
        if self.answered.iter().any(|a| *a == answer) {
            return;
        }
        if self.answered.is_full() {
            let _ = self.answered.pop_front();
        }
        let _ = self.answered.push_back(answer);
        self.verify(from);
        self.start_sync(from, SyncSession::response(from));
    }
}

/// The challenge epoch `now` falls in.
fn epoch(now: Instant) -> u64 {
    now.as_millis() / CHALLENGE_EPOCH.as_millis()
}
