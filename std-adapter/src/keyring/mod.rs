//! Keys for authenticated encryption as an operator handles them: base64 text, new keys
//! from the OS random number generator, and the keyring file an agent keeps up to date so
//! that it still gets in after a restart that follows a rotation (or keeps its step while
//! encryption is being turned on).
//!
//! No function here logs or echoes a key: error messages describe what is wrong with a key,
//! never the key itself.

mod file;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rumor_core::{KEY_LEN, Key, Keyring};

pub use self::file::{KEYRING_FILE_MODE, KeyringFile, KeyringFileError, SavedKeyring, Startup};

/// Why a key given as text is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not standard base64 (with `=` padding).
    Base64,
    /// Valid base64 of the wrong number of bytes.
    Length(usize),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Base64 => write!(
                f,
                "the key is not valid base64 (a key is {KEY_LEN} random bytes in standard \
                 base64; make one with `rumor keygen`)"
            ),
            KeyError::Length(n) => write!(
                f,
                "the key is {n} bytes; a key is {KEY_LEN} bytes (make one with `rumor keygen`)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// A key from its base64 text (surrounding whitespace ignored).
pub fn parse_key(text: &str) -> Result<Key, KeyError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    let bytes: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Length(bytes.len()))?;
    Ok(Key::from_bytes(bytes))
}

/// The base64 text of a key (44 characters).
pub fn encode_key(key: &Key) -> String {
    STANDARD.encode(key.as_bytes())
}

/// A new key from the OS random number generator.
pub fn generate_key() -> std::io::Result<Key> {
    let mut bytes = [0u8; KEY_LEN];
    os_random(&mut bytes)?;
    Ok(Key::from_bytes(bytes))
}

/// Fresh entropy for [`rumor_core::Node::set_keyring`]: it salts the nonces of this boot,
/// so it must come from the OS on every start.
pub fn entropy() -> std::io::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    os_random(&mut bytes)?;
    Ok(bytes)
}

fn os_random(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf)
        .map_err(|e| std::io::Error::other(format!("the OS random number generator failed: {e}")))
}

/// The keys of a keyring as base64, the primary first.
pub fn encode_keyring(keyring: &Keyring) -> Vec<String> {
    keyring.keys().map(encode_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_keys_round_trip_through_base64() {
        let key = generate_key().unwrap();
        let text = encode_key(&key);
        assert_eq!(text.len(), 44);
        assert_eq!(parse_key(&format!(" {text}\n")).unwrap(), key);
        assert_ne!(generate_key().unwrap(), key);
        assert_ne!(entropy().unwrap(), entropy().unwrap());
    }

    #[test]
    fn encrypt_bad_keys_are_explained_without_echoing_them() {
        assert_eq!(parse_key("not base64!"), Err(KeyError::Base64));
        assert_eq!(
            parse_key(&STANDARD.encode([7u8; 16])),
            Err(KeyError::Length(16))
        );
        assert_eq!(parse_key(""), Err(KeyError::Length(0)));
        let secretish = STANDARD.encode([9u8; 31]);
        let msg = parse_key(&secretish).unwrap_err().to_string();
        assert!(
            msg.contains("31 bytes") && !msg.contains(&secretish),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
