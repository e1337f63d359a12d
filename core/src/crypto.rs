//! Authenticated encryption of whole datagrams with XChaCha20-Poly1305, and a keyring that
//! rotates keys with no downtime.
//!
//! ```text
//! +---------+----------+------------+-----------------------+------------------+---------+
//! | version | envelope | cluster id | nonce                 | sealed body      | tag     |
//! | 1 byte  | 1 = XCP  | 4 bytes BE | 16 B salt + 8 B count | postcard, as in  | 16 B    |
//! |         |          |            |                       | a plain frame    |         |
//! +---------+----------+------------+-----------------------+------------------+---------+
//! ```
//! The 6 header bytes are authenticated as associated data, so version, envelope and cluster
//! id cannot be altered. The 24-byte nonce is a 16-byte salt drawn from caller-supplied
//! entropy when encryption is enabled, then a 64-bit counter: it never repeats under one key
//! as long as each boot brings fresh entropy. Overhead: [`ENCRYPTION_OVERHEAD`] bytes.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::wire::{DropReason, HEADER_LEN};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of the nonce carried in each encrypted datagram.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// What encryption adds to every datagram.
pub const ENCRYPTION_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Envelope byte of an XChaCha20-Poly1305 frame.
pub const ENVELOPE_XCHACHA20POLY1305: u8 = 1;
/// Keys a keyring holds: the primary plus up to three others accepted on receive.
pub const MAX_KEYS: usize = 4;

/// A 256-bit secret key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A key from its bytes (generate them with a cryptographic RNG).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Key(bytes)
    }

    /// The key's bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a keyring change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum KeyringError {
    /// Already [`MAX_KEYS`] keys.
    Full,
    /// The key is not in the keyring.
    NotInstalled,
    /// The primary key cannot be removed; make another one primary first.
    IsPrimary,
}

impl core::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyringError::Full => return write!(f, "the keyring already holds {MAX_KEYS} keys"),
            KeyringError::NotInstalled => "the key is not installed",
            KeyringError::IsPrimary => "the primary key cannot be removed",
        })
    }
}

impl core::error::Error for KeyringError {}

/// What a node with a keyring does about plaintext. The steps of turning encryption on in
/// a running plaintext cluster with no split (as memberlist's `GossipVerifyIncoming` and
/// `GossipVerifyOutgoing`), each done on every node before the next:
///
/// 1. set the keyring with [`Plaintext::Send`]: still sends plaintext, accepts both;
/// 2. [`Plaintext::Accept`]: sends encrypted, still accepts plaintext;
/// 3. [`Plaintext::Refuse`]: encrypted only.
///
/// Turning encryption off is the same in reverse. Without a keyring a node sends and
/// accepts plaintext only, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Plaintext {
    /// Sends and accepts encrypted datagrams only (the default, and the goal).
    #[default]
    Refuse,
    /// Sends encrypted datagrams, and still accepts plaintext.
    Accept,
    /// Sends plaintext, and accepts both.
    Send,
}

impl Plaintext {
    /// `refuse`, `accept` or `send`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Plaintext::Refuse => "refuse",
            Plaintext::Accept => "accept",
            Plaintext::Send => "send",
        }
    }
}

impl core::str::FromStr for Plaintext {
    type Err = UnknownPlaintext;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "refuse" => Ok(Plaintext::Refuse),
            "accept" => Ok(Plaintext::Accept),
            "send" => Ok(Plaintext::Send),
            _ => Err(UnknownPlaintext),
        }
    }
}

impl core::fmt::Display for Plaintext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`Plaintext`] policy name other than `refuse`, `accept` and `send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownPlaintext;

impl core::fmt::Display for UnknownPlaintext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("plaintext policy must be refuse, accept or send")
    }
}

impl core::error::Error for UnknownPlaintext {}

/// One primary key (used to send) and up to three more (accepted on receive).
///
/// Rolling rotation with no downtime: `install` the new key on every node, then `use_key`
/// it on every node, then `remove` the old one from every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    /// `keys[0]` is the primary.
    keys: heapless::Vec<Key, MAX_KEYS>,
}

impl Keyring {
    /// A keyring holding only `primary`.
    pub fn new(primary: Key) -> Self {
        let mut keys = heapless::Vec::new();
        // Cannot fail: capacity is at least 1.
        let _ = keys.push(primary);
        Keyring { keys }
    }

    /// The key used to send.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key, the primary first.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// Accepts `key` on receive too (installing a key twice is harmless).
    pub fn install(&mut self, key: Key) -> Result<(), KeyringError> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        self.keys.push(key).map_err(|_| KeyringError::Full)
    }

    /// Makes an installed key the primary.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::NotInstalled)?;
        self.keys.swap(0, i);
        Ok(())
    }

    /// Stops accepting `key`.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyringError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::NotInstalled)?;
        if i == 0 {
            return Err(KeyringError::IsPrimary);
        }
        self.keys.remove(i);
        Ok(())
    }
}

/// The keyring plus the nonce state of this boot.
#[derive(Debug)]
pub(crate) struct Sealer {
    pub(crate) keyring: Keyring,
    salt: [u8; 16],
    counter: u64,
}

impl Sealer {
    pub(crate) fn new(keyring: Keyring, entropy: [u8; 16]) -> Self {
        Sealer {
            keyring,
            salt: entropy,
            counter: 0,
        }
    }

    /// This sealer with another keyring and salt, its nonce counter going on from where it
    /// is: a keyring set again within one boot, even with the same entropy, never repeats
    /// a nonce.
    pub(crate) fn rekeyed(&self, keyring: Keyring, entropy: [u8; 16]) -> Self {
        Sealer {
            keyring,
            salt: entropy,
            counter: self.counter,
        }
    }

    fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..16].copy_from_slice(&self.salt);
        n[16..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        n
    }

    /// Seals the frame in `buf[..len]`, whose body starts at `HEADER_LEN + NONCE_LEN`
    /// (the nonce room left empty by the encoder); `buf` must have `TAG_LEN` spare bytes.
    /// Returns the sealed length.
    pub(crate) fn seal(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        if len < HEADER_LEN + NONCE_LEN || buf.len() < len + TAG_LEN {
            return None;
        }
        buf[1] = ENVELOPE_XCHACHA20POLY1305;
        let nonce = self.next_nonce();
        buf[HEADER_LEN..HEADER_LEN + NONCE_LEN].copy_from_slice(&nonce);
        let cipher = XChaCha20Poly1305::new(&(*self.keyring.primary().as_bytes()).into());
        let (head, rest) = buf.split_at_mut(HEADER_LEN + NONCE_LEN);
        let body = &mut rest[..len - head.len()];
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &head[..HEADER_LEN], body.into())
            .ok()?;
        buf[len..len + TAG_LEN].copy_from_slice(&tag);
        Some(len + TAG_LEN)
    }

    /// Opens the sealed frame `data` (header already checked) into `scratch`, trying every
    /// key; returns the plaintext body.
    pub(crate) fn open<'s>(
        &self,
        data: &[u8],
        scratch: &'s mut [u8],
    ) -> Result<&'s [u8], DropReason> {
        let body_start = HEADER_LEN + NONCE_LEN;
        if data.len() < body_start + TAG_LEN {
            return Err(DropReason::Truncated);
        }
        let (aad, rest) = data.split_at(HEADER_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| DropReason::Malformed)?;
        let tag = Tag::try_from(tag).map_err(|_| DropReason::Malformed)?;
        let out = scratch
            .get_mut(..sealed.len())
            .ok_or(DropReason::Oversized)?;
        for key in self.keyring.keys() {
            out.copy_from_slice(sealed);
            let cipher = XChaCha20Poly1305::new(&(*key.as_bytes()).into());
            if cipher
                .decrypt_inout_detached(&nonce, aad, (&mut *out).into(), &tag)
                .is_ok()
            {
                return Ok(out);
            }
        }
        Err(DropReason::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn rotation_follows_install_use_remove() {
        let mut r = Keyring::new(key(1));
        r.install(key(2)).unwrap();
        r.install(key(2)).unwrap();
        assert_eq!(r.keys().count(), 2);
        assert_eq!(r.remove(&key(1)), Err(KeyringError::IsPrimary));
        r.use_key(&key(2)).unwrap();
        assert_eq!(r.primary(), &key(2));
        r.remove(&key(1)).unwrap();
        assert_eq!(r.use_key(&key(1)), Err(KeyringError::NotInstalled));
        for b in 3..6 {
            r.install(key(b)).unwrap();
        }
        assert_eq!(r.install(key(9)), Err(KeyringError::Full));
        assert_eq!(std::format!("{:?}", key(7)), "Key(..)");
    }

    #[test]
    fn sealed_frames_open_with_any_installed_key_only() {
        let mut tx = Sealer::new(Keyring::new(key(1)), [7; 16]);
        let mut buf = [0u8; 128];
        buf[..HEADER_LEN].copy_from_slice(&[1, 0, 0, 0, 0, 42]);
        let body = b"hello body";
        let start = HEADER_LEN + NONCE_LEN;
        buf[start..start + body.len()].copy_from_slice(body);
        let n = tx.seal(&mut buf, start + body.len()).unwrap();
        assert_eq!(n, start + body.len() + TAG_LEN);
        let mut scratch = [0u8; 128];
        let mut rx = Keyring::new(key(2));
        rx.install(key(1)).unwrap();
        let rx = Sealer::new(rx, [0; 16]);
        assert_eq!(rx.open(&buf[..n], &mut scratch).unwrap(), body);
        // Any flipped bit, header included, fails authentication.
        for i in 0..n {
            let mut bad = buf;
            bad[i] ^= 1;
            assert!(rx.open(&bad[..n], &mut scratch).is_err(), "byte {i}");
        }
        let other = Sealer::new(Keyring::new(key(3)), [0; 16]);
        assert_eq!(
            other.open(&buf[..n], &mut scratch),
            Err(DropReason::Unauthenticated)
        );
    }

    /// Seals a small frame and returns the nonce it carries.
    fn sealed_nonce(tx: &mut Sealer) -> [u8; NONCE_LEN] {
        let mut buf = [0u8; HEADER_LEN + NONCE_LEN + 4 + TAG_LEN];
        buf[..HEADER_LEN].copy_from_slice(&[1, 0, 0, 0, 0, 42]);
        tx.seal(&mut buf, HEADER_LEN + NONCE_LEN + 4).unwrap();
        buf[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().unwrap()
    }

    #[test]
    fn nonces_are_the_salt_then_a_counter_that_never_repeats() {
        let mut seen = std::collections::BTreeSet::new();
        for entropy in [[7u8; 16], [8; 16]] {
            let mut tx = Sealer::new(Keyring::new(key(1)), entropy);
            let mut last = None;
            for k in 0..1000 {
                if k == 500 {
                    // Rotating the primary key does not restart the count.
                    tx.keyring.install(key(2)).unwrap();
                    tx.keyring.use_key(&key(2)).unwrap();
                }
                let nonce = sealed_nonce(&mut tx);
                assert_eq!(nonce[..16], entropy);
                let count = u64::from_be_bytes(nonce[16..].try_into().unwrap());
                assert!(last.is_none_or(|l| count > l), "{count} after {last:?}");
                last = Some(count);
                assert!(seen.insert(nonce), "nonce {k} reused");
            }
        }
        // Distinct entropy, distinct nonces, even at the same count.
        assert_eq!(seen.len(), 2000);
    }
}
