//! Changing a running agent's keyring: list, install, use, remove, and the plaintext
//! policy, each saved to the keyring file (when the agent has one) before the node uses it,
//! so the file never lags behind the keys and policy in use.

use std::path::PathBuf;

use rumor_core::{Key, Keyring, KeyringError, Plaintext};

use crate::keyring::{KeyringFile, KeyringFileError, SavedKeyring};

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
    /// From now on, do this about plaintext: the steps of turning encryption on in a
    /// running plaintext cluster (see [`Plaintext`]).
    Plaintext(Plaintext),
}

impl KeyChange {
    /// What the change did, for the log (never the key).
    fn past_tense(&self) -> &'static str {
        match self {
            KeyChange::List => "listed",
            KeyChange::Install(_) => "key installed",
            KeyChange::Use(_) => "primary key changed",
            KeyChange::Remove(_) => "key removed",
            KeyChange::Plaintext(_) => "plaintext policy set",
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
    /// What the agent does about plaintext.
    pub plaintext: Plaintext,
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
                    _ => "",
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

    /// Applies `change` to `keyring` and `plaintext` (the node's; `keyring` is `None` when
    /// encryption is off): on a copy first, saved to the file, and only then to the node.
    /// Logs what changed.
    pub(crate) fn apply(
        &self,
        keyring: Option<&mut Keyring>,
        plaintext: &mut Plaintext,
        change: KeyChange,
    ) -> Result<KeyringView, KeyringChangeError> {
        let keyring = keyring.ok_or(KeyringChangeError::Disabled)?;
        let mut next = SavedKeyring {
            keyring: keyring.clone(),
            plaintext: *plaintext,
        };
        match &change {
            KeyChange::List => Ok(()),
            KeyChange::Install(k) => next.keyring.install(k.clone()),
            KeyChange::Use(k) => next.keyring.use_key(k),
            KeyChange::Remove(k) => next.keyring.remove(k),
            KeyChange::Plaintext(p) => {
                next.plaintext = *p;
                Ok(())
            }
        }
        .map_err(KeyringChangeError::Refused)?;
        if next.keyring != *keyring || next.plaintext != *plaintext {
            if let Some(file) = &self.file {
                file.save(&next).map_err(|e: KeyringFileError| {
                    tracing::error!(error = %e, "cannot save the keyring file");
                    KeyringChangeError::Save(e.to_string())
                })?;
            }
            (*keyring, *plaintext) = (next.keyring, next.plaintext);
            tracing::info!(
                keys = keyring.keys().count(),
                plaintext = %plaintext,
                saved = self.file.is_some(),
                "keyring: {}",
                change.past_tense()
            );
        }
        Ok(KeyringView {
            keys: keyring.keys().cloned().collect(),
            file: self.file.as_ref().map(|f| f.path().to_path_buf()),
            plaintext: *plaintext,
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
        let mut plain = Plaintext::Refuse;
        let view = store
            .apply(Some(&mut ring), &mut plain, KeyChange::Install(key(2)))
            .unwrap();
        assert_eq!(view.keys, [key(1), key(2)]);
        assert_eq!(view.plaintext, Plaintext::Refuse);
        assert_eq!(file.load().unwrap(), Some(SavedKeyring::new(ring.clone())));
        store
            .apply(Some(&mut ring), &mut plain, KeyChange::Use(key(2)))
            .unwrap();
        assert_eq!(file.load().unwrap().unwrap().keyring.primary(), &key(2));

        let refused = store.apply(Some(&mut ring), &mut plain, KeyChange::Remove(key(2)));
        assert_eq!(
            refused,
            Err(KeyringChangeError::Refused(KeyringError::IsPrimary))
        );
        assert!(refused.unwrap_err().to_string().contains("--use"));
        assert_eq!(
            store.apply(None, &mut plain, KeyChange::List),
            Err(KeyringChangeError::Disabled)
        );

        // A file that cannot be written refuses the change and leaves the node's keys.
        let broken = KeyStore::new(Some(KeyringFile::new(dir.path().join("no/such/dir"))));
        let before = ring.clone();
        let e = broken
            .apply(Some(&mut ring), &mut plain, KeyChange::Remove(key(1)))
            .unwrap_err();
        assert!(matches!(e, KeyringChangeError::Save(_)), "{e}");
        assert_eq!(ring, before);
    }

    #[test]
    fn encrypt_plaintext_policy_is_saved_before_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::new(dir.path().join("keyring.json"));
        let store = KeyStore::new(Some(file.clone()));
        let mut ring = Keyring::new(key(1));
        let mut plain = Plaintext::Send;
        for step in [Plaintext::Accept, Plaintext::Refuse, Plaintext::Send] {
            let view = store
                .apply(Some(&mut ring), &mut plain, KeyChange::Plaintext(step))
                .unwrap();
            assert_eq!((view.plaintext, plain), (step, step));
            let saved = file.load().unwrap().unwrap();
            assert_eq!((saved.plaintext, saved.keyring), (step, ring.clone()));
        }
        // Listing reports the policy and writes nothing.
        std::fs::remove_file(file.path()).unwrap();
        let view = store
            .apply(Some(&mut ring), &mut plain, KeyChange::List)
            .unwrap();
        assert_eq!(view.plaintext, Plaintext::Send);
        assert!(!file.path().exists());
        // Without encryption there is no policy to set.
        assert_eq!(
            store.apply(None, &mut plain, KeyChange::Plaintext(Plaintext::Refuse)),
            Err(KeyringChangeError::Disabled)
        );
        // A file that cannot be written refuses the change and leaves the node's policy.
        let broken = KeyStore::new(Some(KeyringFile::new(dir.path().join("no/such/dir"))));
        let e = broken
            .apply(
                Some(&mut ring),
                &mut plain,
                KeyChange::Plaintext(Plaintext::Refuse),
            )
            .unwrap_err();
        assert!(matches!(e, KeyringChangeError::Save(_)), "{e}");
        assert_eq!(plain, Plaintext::Send);
    }
}
