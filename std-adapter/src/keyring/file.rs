//! The keyring file: the agent's keys in base64 and which one is primary, as JSON
//!
//! ```json
//! { "primary": "base64 key", "secondary": ["base64 key", "..."] }
//! ```
//!
//! readable by its owner only ([`KEYRING_FILE_MODE`]), and replaced atomically on every
//! change (see [`crate::atomic_file`]), so an agent restarted after a rotation starts with
//! the keys it had.

use std::path::{Path, PathBuf};

use rumor_core::{Key, Keyring, KeyringError};
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
        }
    }
}

impl std::error::Error for KeyringFileError {}

/// What is wrong with the JSON, without quoting it (it may hold keys).
fn json_problem(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "line {}: expected {{\"primary\": KEY, \"secondary\": [KEY, ...]}}",
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

    /// The keyring in the file; `None` if there is no file.
    pub fn load(&self) -> Result<Option<Keyring>, KeyringFileError> {
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
        Ok(Some(keyring))
    }

    /// Replaces the file with `keyring`, atomically, with mode [`KEYRING_FILE_MODE`].
    pub fn save(&self, keyring: &Keyring) -> Result<(), KeyringFileError> {
        let stored = Stored {
            primary: encode_key(keyring.primary()),
            secondary: keyring.keys().skip(1).map(encode_key).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| self.error(FileErrorKind::Json(json_problem(&e))))?;
        bytes.push(b'\n');
        atomic_file::write(&self.path, &bytes, KEYRING_FILE_MODE)
            .map_err(|e| self.error(FileErrorKind::Io(e)))
    }

    /// The keyring to start with: the file's if it exists (a `given` key it does not hold
    /// is ignored, and reported), else a new file holding only `given`.
    pub fn open_or_create(
        &self,
        given: Option<&Key>,
    ) -> Result<(Keyring, Startup), KeyringFileError> {
        if let Some(keyring) = self.load()? {
            let too_open = self.mode().filter(|m| m & 0o077 != 0);
            let given_key_ignored = given.is_some_and(|k| !keyring.keys().any(|have| have == k));
            let startup = Startup::Loaded {
                given_key_ignored,
                too_open,
            };
            return Ok((keyring, startup));
        }
        let key = given.ok_or_else(|| self.error(FileErrorKind::Missing))?;
        let keyring = Keyring::new(key.clone());
        self.save(&keyring)?;
        Ok((keyring, Startup::Created))
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
        let e = file.open_or_create(None).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("--encrypt"),
            "{e}"
        );

        let (mut ring, startup) = file.open_or_create(Some(&key(1))).unwrap();
        assert_eq!(startup, Startup::Created);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, KEYRING_FILE_MODE);

        ring.install(key(2)).unwrap();
        ring.use_key(&key(2)).unwrap();
        file.save(&ring).unwrap();
        let (loaded, startup) = file.open_or_create(Some(&key(1))).unwrap();
        assert_eq!(loaded.primary(), &key(2));
        assert_eq!(loaded.keys().count(), 2);
        assert_eq!(
            startup,
            Startup::Loaded {
                given_key_ignored: false,
                too_open: None
            }
        );
        let (_, startup) = file.open_or_create(Some(&key(9))).unwrap();
        assert!(matches!(
            startup,
            Startup::Loaded {
                given_key_ignored: true,
                ..
            }
        ));
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, startup) = file.open_or_create(None).unwrap();
        assert!(matches!(
            startup,
            Startup::Loaded {
                too_open: Some(0o644),
                ..
            }
        ));
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
        ];
        for (text, want) in cases {
            std::fs::write(&path, &text).unwrap();
            let e = file.load().unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{text}: {e}");
            assert!(!e.contains(&good), "{e}");
        }
    }
}
