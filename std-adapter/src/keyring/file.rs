//! The keyring file: the agent's keys in base64, which one is primary, and what the agent
//! does about plaintext ([`Plaintext`]), as JSON
//!
//! ```json
//! { "primary": "base64 key", "secondary": ["base64 key", "..."], "plaintext": "send" }
//! ```
//!
//! readable by its owner only ([`KEYRING_FILE_MODE`]), and replaced atomically on every
//! change (see [`crate::atomic_file`]), so an agent restarted after a rotation starts with
//! the keys it had, and one restarted while encryption is being turned on keeps its step.
//! `plaintext` is `refuse`, `accept` or `send`; absent, it is `refuse` (the default, and
//! the end of a migration), and it is written only when it is not `refuse`.

use std::path::{Path, PathBuf};

use rumor_core::{Key, Keyring, KeyringError, Plaintext, UnknownPlaintext};
use serde::{Deserialize, Serialize};

use super::{KeyError, encode_key, parse_key};
use crate::atomic_file;

/// Mode of a keyring file: read and write for its owner only.
pub const KEYRING_FILE_MODE: u32 = 0o600;

/// The file's JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    primary: String,
    #[serde(default)]
    secondary: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
}

/// What a keyring file holds: the keys, and what the agent does about plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedKeyring {
    /// The keys, the primary first.
    pub keyring: Keyring,
    /// What the agent does about plaintext (`refuse` when the file does not say).
    pub plaintext: Plaintext,
}

impl SavedKeyring {
    /// `keyring`, refusing plaintext.
    pub fn new(keyring: Keyring) -> Self {
        SavedKeyring {
            keyring,
            plaintext: Plaintext::Refuse,
        }
    }
}

/// A keyring file, by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringFile {
    path: PathBuf,
}

/// How the keyring file was found when the agent started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// It did not exist and was created from the key given.
    Created,
    /// It was read.
    Loaded {
        /// A key was given too, and the file does not hold it: the file wins.
        given_key_ignored: bool,
        /// A plaintext policy was given too, and differs from the file's: it was saved (the
        /// policy it replaced).
        plaintext_replaced: Option<Plaintext>,
        /// The file's permission bits, when others than its owner may read or write it.
        too_open: Option<u32>,
    },
}

/// Why the keyring file could not be used. Shown as one line naming the file.
#[derive(Debug)]
pub struct KeyringFileError {
    path: PathBuf,
    kind: FileErrorKind,
}

#[derive(Debug)]
enum FileErrorKind {
    Missing,
    Io(std::io::Error),
    Json(String),
    Key(&'static str, usize, KeyError),
    TooMany,
    Plaintext,
}

impl std::fmt::Display for KeyringFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display();
        match &self.kind {
            FileErrorKind::Missing => write!(
                f,
                "keyring file {p} does not exist; pass --encrypt KEY once to create it"
            ),
            FileErrorKind::Io(e) => write!(f, "keyring file {p}: {e}"),
            FileErrorKind::Json(e) => write!(f, "keyring file {p} is not a keyring: {e}"),
            FileErrorKind::Key("primary", _, e) => write!(f, "keyring file {p}: primary key: {e}"),
            FileErrorKind::Key(which, i, e) => {
                write!(f, "keyring file {p}: {which} key {}: {e}", i + 1)
            }
            FileErrorKind::TooMany => write!(f, "keyring file {p}: {}", KeyringError::Full),
            FileErrorKind::Plaintext => write!(f, "keyring file {p}: {UnknownPlaintext}"),
        }
    }
}

impl std::error::Error for KeyringFileError {}

/// What is wrong with the JSON, without quoting it (it may hold keys).
fn json_problem(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "line {}: expected {{\"primary\": KEY, \"secondary\": [KEY, ...], \"plaintext\": \
             POLICY}} (secondary and plaintext optional)",
            e.line()
        ),
        _ => format!("invalid JSON at line {} column {}", e.line(), e.column()),
    }
}

impl KeyringFile {
    /// The keyring file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyringFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, kind: FileErrorKind) -> KeyringFileError {
        KeyringFileError {
            path: self.path.clone(),
            kind,
        }
    }

    /// The keyring in the file, and its plaintext policy; `None` if there is no file.
    pub fn load(&self) -> Result<Option<SavedKeyring>, KeyringFileError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(FileErrorKind::Io(e))),
        };
        let stored: Stored = serde_json::from_slice(&bytes)
            .map_err(|e| self.error(FileErrorKind::Json(json_problem(&e))))?;
        let key = |which, i, text: &str| {
            parse_key(text).map_err(|e| self.error(FileErrorKind::Key(which, i, e)))
        };
        let mut keyring = Keyring::new(key("primary", 0, &stored.primary)?);
        for (i, text) in stored.secondary.iter().enumerate() {
            keyring
                .install(key("secondary", i, text)?)
                .map_err(|_| self.error(FileErrorKind::TooMany))?;
        }
        let plaintext = match stored.plaintext.as_deref() {
            None => Plaintext::Refuse,
            Some(text) => text
                .parse()
                .map_err(|_| self.error(FileErrorKind::Plaintext))?,
        };
        Ok(Some(SavedKeyring { keyring, plaintext }))
    }

    /// Replaces the file with `saved`, atomically, with mode [`KEYRING_FILE_MODE`]. The
    /// plaintext policy is written only when it is not `refuse`.
    pub fn save(&self, saved: &SavedKeyring) -> Result<(), KeyringFileError> {
        let keyring = &saved.keyring;
        let stored = Stored {
            primary: encode_key(keyring.primary()),
            secondary: keyring.keys().skip(1).map(encode_key).collect(),
            plaintext: (saved.plaintext != Plaintext::Refuse)
                .then(|| saved.plaintext.as_str().to_owned()),
        };
        let mut bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| self.error(FileErrorKind::Json(json_problem(&e))))?;
        bytes.push(b'\n');
        atomic_file::write(&self.path, &bytes, KEYRING_FILE_MODE)
            .map_err(|e| self.error(FileErrorKind::Io(e)))
    }

    /// The keyring to start with: the file's if it exists (a `given` key it does not hold
    /// is ignored, and reported), else a new file holding only `given`. A `plaintext`
    /// policy given is used and saved (so a restart keeps it); else the file's is used, and
    /// a new file refuses plaintext.
    pub fn open_or_create(
        &self,
        given: Option<&Key>,
        plaintext: Option<Plaintext>,
    ) -> Result<(SavedKeyring, Startup), KeyringFileError> {
        if let Some(mut saved) = self.load()? {
            let given_key_ignored =
                given.is_some_and(|k| !saved.keyring.keys().any(|have| have == k));
            let mut plaintext_replaced = None;
            if let Some(p) = plaintext.filter(|p| *p != saved.plaintext) {
                plaintext_replaced = Some(saved.plaintext);
                saved.plaintext = p;
                self.save(&saved)?;
            }
            let too_open = self.mode().filter(|m| m & 0o077 != 0);
            let startup = Startup::Loaded {
                given_key_ignored,
                plaintext_replaced,
                too_open,
            };
            return Ok((saved, startup));
        }
        let key = given.ok_or_else(|| self.error(FileErrorKind::Missing))?;
        let saved = SavedKeyring {
            keyring: Keyring::new(key.clone()),
            plaintext: plaintext.unwrap_or_default(),
        };
        self.save(&saved)?;
        Ok((saved, Startup::Created))
    }

    fn mode(&self) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&self.path).ok()?;
        Some(meta.permissions().mode() & 0o777)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    #[test]
    fn encrypt_keyring_file_is_created_private_and_survives_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::new(dir.path().join("keyring.json"));
        let e = file.open_or_create(None, None).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("--encrypt"),
            "{e}"
        );

        let (mut saved, startup) = file.open_or_create(Some(&key(1)), None).unwrap();
        assert_eq!(startup, Startup::Created);
        assert_eq!(saved.plaintext, Plaintext::Refuse);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, KEYRING_FILE_MODE);

        saved.keyring.install(key(2)).unwrap();
        saved.keyring.use_key(&key(2)).unwrap();
        file.save(&saved).unwrap();
        let (loaded, startup) = file.open_or_create(Some(&key(1)), None).unwrap();
        assert_eq!(loaded.keyring.primary(), &key(2));
        assert_eq!(loaded.keyring.keys().count(), 2);
        assert_eq!(
            startup,
            Startup::Loaded {
                given_key_ignored: false,
                plaintext_replaced: None,
                too_open: None
            }
        );
        let (_, startup) = file.open_or_create(Some(&key(9)), None).unwrap();
        assert!(matches!(
            startup,
            Startup::Loaded {
                given_key_ignored: true,
                ..
            }
        ));
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, startup) = file.open_or_create(None, None).unwrap();
        assert!(matches!(
            startup,
            Startup::Loaded {
                too_open: Some(0o644),
                ..
            }
        ));
    }

    #[test]
    fn encrypt_keyring_file_keeps_the_plaintext_policy() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyringFile::new(dir.path().join("keyring.json"));
        let json = || -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap()
        };

        // Created with a policy: it is written, and read back.
        let (saved, _) = file
            .open_or_create(Some(&key(1)), Some(Plaintext::Send))
            .unwrap();
        assert_eq!(saved.plaintext, Plaintext::Send);
        assert_eq!(json()["plaintext"], "send");
        assert_eq!(file.load().unwrap(), Some(saved.clone()));

        // Not given at the next start: the file's is used, and the file is left alone.
        let (loaded, startup) = file.open_or_create(Some(&key(1)), None).unwrap();
        assert_eq!(loaded, saved);
        assert!(matches!(
            startup,
            Startup::Loaded {
                plaintext_replaced: None,
                ..
            }
        ));

        // Given and different: used, saved, and reported.
        let (loaded, startup) = file.open_or_create(None, Some(Plaintext::Accept)).unwrap();
        assert_eq!(loaded.plaintext, Plaintext::Accept);
        assert!(matches!(
            startup,
            Startup::Loaded {
                plaintext_replaced: Some(Plaintext::Send),
                ..
            }
        ));
        assert_eq!(json()["plaintext"], "accept");
        assert_eq!(file.load().unwrap().unwrap().plaintext, Plaintext::Accept);

        // Refuse, the default, is not written: the file is then what it was before
        // migrations existed.
        let (loaded, _) = file.open_or_create(None, Some(Plaintext::Refuse)).unwrap();
        assert_eq!(loaded.plaintext, Plaintext::Refuse);
        let v = json();
        assert!(v.get("plaintext").is_none(), "{v}");
        assert_eq!(v["primary"], encode_key(&key(1)));

        // Written by hand: `refuse` is accepted too.
        std::fs::write(
            file.path(),
            format!(
                r#"{{"primary": "{}", "plaintext": "refuse"}}"#,
                encode_key(&key(1))
            ),
        )
        .unwrap();
        assert_eq!(
            file.load().unwrap(),
            Some(SavedKeyring::new(Keyring::new(key(1))))
        );
    }

    #[test]
    fn encrypt_bad_keyring_files_are_explained_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let file = KeyringFile::new(&path);
        let good = encode_key(&key(1));
        let cases = [
            ("{".to_owned(), "invalid JSON"),
            (format!(r#"{{"secondary": "{good}"}}"#), "expected"),
            (r#"{"keys": []}"#.to_owned(), "is not a keyring"),
            (r#"{"primary": "short"}"#.to_owned(), "primary key"),
            (
                format!(r#"{{"primary": "{good}", "secondary": ["{good}", "!!"]}}"#),
                "secondary key 2",
            ),
            (
                format!(
                    r#"{{"primary": "{good}", "secondary": ["{}", "{}", "{}", "{}"]}}"#,
                    encode_key(&key(2)),
                    encode_key(&key(3)),
                    encode_key(&key(4)),
                    encode_key(&key(5))
                ),
                "4 keys",
            ),
            (
                format!(r#"{{"primary": "{good}", "plaintext": "maybe"}}"#),
                "plaintext policy must be refuse, accept or send",
            ),
            (
                format!(r#"{{"primary": "{good}", "plaintext": true}}"#),
                "\"plaintext\": POLICY",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, &text).unwrap();
            let e = file.load().unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{text}: {e}");
            assert!(!e.contains(&good), "{e}");
        }
    }
}
