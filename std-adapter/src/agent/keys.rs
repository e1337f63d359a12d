//! Changing a running agent's keyring: list, install, use, remove, each saved to the
//! keyring file (when the agent has one) before the node uses it, so the file never lags
//! behind the keys in use.

use std::path::PathBuf;

use rumor_core::{Key, Keyring, KeyringError};

use crate::keyring::{KeyringFile, KeyringFileError};

/// What to do with the keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Nothing: report the keys.
    List,
    /// Accept this key on receive too.
    Install(Key),
    /// Seal with this installed key from now on.
    Use(Key),
    /// Stop accepting this key (not the primary).
    Remove(Key),
}

impl KeyChange {
    /// What the change did, for the log (never the key).
    fn past_tense(&self) -> &'static str {
        match self {
            KeyChange::List => "listed",
            KeyChange::Install(_) => "key installed",
            KeyChange::Use(_) => "primary key changed",
            KeyChange::Remove(_) => "key removed",
        }
    }
}

/// The keyring after a change. Its `Debug` output shows no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringView {
    /// Every key, the primary first.
    pub keys: Vec<Key>,
    /// Where the keyring is saved, if anywhere.
    pub file: Option<PathBuf>,
}

/// Why a keyring change was refused; the keyring is then unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringChangeError {
    /// The agent runs without encryption: there is no keyring to change.
    Disabled,
    /// The core refused the change.
    Refused(KeyringError),
    /// The keyring file could not be written.
    Save(String),
}

impl std::fmt::Display for KeyringChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyringChangeError::Disabled => f.write_str(
                "encryption is off on this agent (start it with --encrypt or --keyring-file)",
            ),
            KeyringChangeError::Refused(e) => {
                let hint = match e {
                    KeyringError::Full => "; remove a key first",
                    KeyringError::NotInstalled => "; install it first",
                    KeyringError::IsPrimary => "; make another key primary first (--use)",
                };
                write!(f, "{e}{hint}")
            }
            KeyringChangeError::Save(e) => write!(f, "{e}; the keyring is unchanged"),
        }
    }
}

impl std::error::Error for KeyringChangeError {}

/// The agent's keyring state beside the node: where to save it.
#[derive(Debug, Default)]
pub(crate) struct KeyStore {
    file: Option<KeyringFile>,
}

impl KeyStore {
    pub(crate) fn new(file: Option<KeyringFile>) -> Self {
        KeyStore { file }
    }

    /// Applies `change` to `keyring` (the node's, `None` when encryption is off): on a
    /// copy first, saved to the file, and only then to the node. Logs what changed.
    pub(crate) fn apply(
        &self,
        keyring: Option<&mut Keyring>,
        change: KeyChange,
    ) -> Result<KeyringView, KeyringChangeError> {
        let keyring = keyring.ok_or(KeyringChangeError::Disabled)?;
        let mut next = keyring.clone();
        match &change {
            KeyChange::List => Ok(()),
            KeyChange::Install(k) => next.install(k.clone()),
            KeyChange::Use(k) => next.use_key(k),
            KeyChange::Remove(k) => next.remove(k),
        }
        .map_err(KeyringChangeError::Refused)?;
        if next != *keyring {
            if let Some(file) = &self.file {
                file.save(&next).map_err(|e: KeyringFileError| {
                    tracing::error!(error = %e, "cannot save the keyring file");
                    KeyringChangeError::Save(e.to_string())
                })?;
            }
            *keyring = next;
            tracing::info!(
                keys = keyring.keys().count(),
                saved = self.file.is_some(),
                "keyring: {}",
                change.past_tense()
            );
        }
        Ok(KeyringView {
            keys: keyring.keys().cloned().collect(),
            file: self.file.as_ref().map(|f| f.path().to_path_buf()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    #[test]
    fn encrypt_changes_are_saved_before_they_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::new(dir.path().join("keyring.json"));
        let store = KeyStore::new(Some(file.clone()));
        let mut ring = Keyring::new(key(1));
        let view = store
            .apply(Some(&mut ring), KeyChange::Install(key(2)))
            .unwrap();
        assert_eq!(view.keys, [key(1), key(2)]);
        assert_eq!(file.load().unwrap(), Some(ring.clone()));
        store
            .apply(Some(&mut ring), KeyChange::Use(key(2)))
            .unwrap();
        assert_eq!(file.load().unwrap().unwrap().primary(), &key(2));

        let refused = store.apply(Some(&mut ring), KeyChange::Remove(key(2)));
        assert_eq!(
            refused,
            Err(KeyringChangeError::Refused(KeyringError::IsPrimary))
        );
        assert!(refused.unwrap_err().to_string().contains("--use"));
        assert_eq!(
            store.apply(None, KeyChange::List),
            Err(KeyringChangeError::Disabled)
        );

        // A file that cannot be written refuses the change and leaves the node's keys.
        let broken = KeyStore::new(Some(KeyringFile::new(dir.path().join("no/such/dir"))));
        let before = ring.clone();
        let e = broken
            .apply(Some(&mut ring), KeyChange::Remove(key(1)))
            .unwrap_err();
        assert!(matches!(e, KeyringChangeError::Save(_)), "{e}");
        assert_eq!(ring, before);
    }
}
