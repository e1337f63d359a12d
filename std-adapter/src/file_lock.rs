//! Files two agents must not share (the snapshot, the keyring file, a render target's
//! destination): each is claimed for the life of the agent with an exclusive `flock` on a
//! lock file beside it, `.NAME.rumor-lock`, which holds the owner's PID. The file itself is
//! replaced by renames, so its own inode cannot carry the lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// A claimed file; the claim ends when this is dropped (or the process exits).
#[derive(Debug)]
pub struct FileLock {
    /// The file claimed.
    path: PathBuf,
    /// The open lock file, holding the `flock`.
    _lock: File,
}

impl FileLock {
    /// Claims `path`, described as `what` (`snapshot`, `keyring file`, `render
    /// destination`) in the error: one line naming the other agent's PID.
    pub fn claim(path: &Path, what: &str) -> Result<FileLock, String> {
        let lock_path = lock_path(path);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("cannot lock the {what} {}: {e}", path.display()))?;
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut owner = String::new();
            let _ = lock.read_to_string(&mut owner);
            let owner = match owner.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(format!(
                "the {what} {} is in use by another rumor agent{owner}: give each agent its own",
                path.display()
            ));
        }
        // Ours now: record who holds it, for the next one's error message.
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = write!(lock, "{}", std::process::id());
        Ok(FileLock {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The file claimed.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `.NAME.rumor-lock` beside `path`.
fn lock_path(path: &Path) -> PathBuf {
    crate::atomic_file::hidden_sibling(path, "rumor-lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snapshot.json");
        let first = FileLock::claim(&file, "snapshot").unwrap();
        assert_eq!(first.path(), file);
        // flock locks are per open file description: a second open in the same process
        // conflicts as another process's would.
        let e = FileLock::claim(&file, "snapshot").unwrap_err();
        let pid = std::process::id();
        assert!(
            e.contains("in use by another rumor agent") && e.contains(&format!("(pid {pid})")),
            "{e}"
        );
        drop(first);
        assert!(FileLock::claim(&file, "snapshot").is_ok());
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let e = FileLock::claim(Path::new("/nonexistent-dir/x.json"), "snapshot").unwrap_err();
        assert!(
            e.starts_with("cannot lock the snapshot /nonexistent-dir/x.json"),
            "{e}"
        );
    }
}
