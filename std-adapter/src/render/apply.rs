//! The safe apply pipeline of one target: render, skip when unchanged, stage, check,
//! rename atomically, reload; on any failure the last good file stays live.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RenderStats, Target};
use crate::member::MemberInfo;

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The rendering matched the live file: nothing was written or reloaded.
    Unchanged,
    /// A new file is live and the consumer took it.
    Changed {
        /// Size of the new file.
        bytes: usize,
        /// What the reload step did.
        reload: String,
    },
}

/// Why an apply failed. In every case the previous file is live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The renderer failed (e.g. a template error).
    Render(String),
    /// The staged file could not be written or renamed.
    Write(String),
    /// The check command refused the staged file.
    Check(String),
    /// The reload failed; the previous file was put back.
    Reload(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Render(e) => write!(f, "render failed: {e}"),
            ApplyError::Write(e) => write!(f, "write failed: {e}"),
            ApplyError::Check(e) => write!(f, "check failed: {e}"),
            ApplyError::Reload(e) => write!(f, "reload failed, previous file restored: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Applies renderings of one target, remembering the last good file.
#[derive(Debug)]
pub struct Applier {
    target: Target,
    /// The live file's bytes as last applied (or as found at start).
    live: Option<Vec<u8>>,
    stats: Arc<RenderStats>,
}

impl Applier {
    /// An applier for `target`; the destination's current content counts as applied.
    pub fn new(target: Target, stats: Arc<RenderStats>) -> Self {
        let live = fs::read(&target.dest).ok();
        Applier {
            target,
            live,
            stats,
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Renders `members` and, if the bytes changed, stages, checks, installs and reloads
    /// them. Failures are counted and leave the previous file live; the next call retries.
    ///
    /// It blocks while the check and reload commands run: call it from a thread that may
    /// block (`tokio::task::spawn_blocking` in async code), never from an async task.
    pub fn apply(&mut self, members: &[MemberInfo]) -> Result<Applied, ApplyError> {
        RenderStats::bump(&self.stats.renders);
        let result = self.try_apply(members);
        match &result {
            Ok(Applied::Unchanged) => RenderStats::bump(&self.stats.unchanged),
            Ok(Applied::Changed { .. }) => {
                // Clear the error first, so a reader that sees the new count never sees
                // the stale error with it.
                self.stats.set_error(None);
                RenderStats::bump(&self.stats.applied);
            }
            Err(e) => {
                // Set the error first, so a reader that sees the new failure count never
                // sees it without its error.
                self.stats.set_error(Some(e.to_string()));
                RenderStats::bump(match e {
                    ApplyError::Render(_) => &self.stats.render_failures,
                    ApplyError::Write(_) => &self.stats.write_failures,
                    ApplyError::Check(_) => &self.stats.check_failures,
                    ApplyError::Reload(_) => &self.stats.reload_failures,
                });
            }
        }
        result
    }

    fn try_apply(&mut self, members: &[MemberInfo]) -> Result<Applied, ApplyError> {
        let text = self
            .target
            .renderer
            .render_members(members)
            .map_err(|e| ApplyError::Render(e.0))?;
        if self.live.as_deref() == Some(text.as_bytes()) {
            return Ok(Applied::Unchanged);
        }
        let dest = &self.target.dest;
        let staged = staged_path(dest);
        write_file(&staged, text.as_bytes(), dest).map_err(ApplyError::Write)?;
        if let Some(check) = &self.target.check {
            let script = substitute(check, &staged, dest);
            if let Err(e) = crate::subprocess::run_blocking(&script, self.target.command_timeout) {
                let _ = fs::remove_file(&staged);
                return Err(ApplyError::Check(e));
            }
        }
        if let Err(e) = install(&staged, dest) {
            let _ = fs::remove_file(&staged);
            return Err(ApplyError::Write(e));
        }
        // A live file that is not UTF-8 (found at start) counts as unknown: a full reload.
        let previous = self
            .live
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok());
        match self
            .target
            .reload
            .run(&text, previous, self.target.command_timeout)
        {
            Ok(reload) => {
                let size = text.len();
                self.live = Some(text.into_bytes());
                Ok(Applied::Changed {
                    bytes: size,
                    reload,
                })
            }
            Err(e) => {
                // Keep disk and consumer in step: a restart must not load the new file
                // the running consumer refused.
                if let Some(previous) = &self.live
                    && let Err(w) =
                        write_file(&staged, previous, dest).and_then(|()| install(&staged, dest))
                {
                    return Err(ApplyError::Reload(format!(
                        "{e}; restoring the previous file failed too: {w}"
                    )));
                }
                Err(ApplyError::Reload(e))
            }
        }
    }
}

/// `.NAME.rumor-staged` next to `dest`: the same file system, so the rename is atomic,
/// and hidden, so a consumer loading a whole directory skips it.
pub fn staged_path(dest: &Path) -> PathBuf {
    crate::atomic_file::hidden_sibling(dest, "rumor-staged")
}

/// `{staged}` and `{dest}` replaced by the shell-quoted paths.
fn substitute(script: &str, staged: &Path, dest: &Path) -> String {
    script
        .replace("{staged}", &shell_quote(staged))
        .replace("{dest}", &shell_quote(dest))
}

fn shell_quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Writes and syncs `path` with the permissions of `like` (0644 if it does not exist).
fn write_file(path: &Path, bytes: &[u8], like: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let live = fs::metadata(like).ok();
    let mode = live
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    // Whatever sits at the staged path (a leftover, or a symlink planted to make the agent
    // write elsewhere) is removed, not followed; the file is then created exclusively,
    // which never follows a symlink either.
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    let written = (|| {
        f.write_all(bytes)?;
        // The umask may have taken bits off at creation.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = &live
            && (m.uid(), m.gid()) != (f.metadata()?.uid(), f.metadata()?.gid())
        {
            // Keep the live file's owner where we may (as root); otherwise the consumer
            // reads the file by its mode, as it did the live one.
            if let Err(e) = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid())) {
                tracing::debug!(error = %e, file = %path.display(), "cannot keep the live file's owner");
            }
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        // A full disk must not leave a partial file behind.
        let _ = fs::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}

/// Renames `staged` over `dest` and syncs the directory so the rename survives a crash.
fn install(staged: &Path, dest: &Path) -> Result<(), String> {
    fs::rename(staged, dest)
        .map_err(|e| format!("rename {} to {}: {e}", staged.display(), dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_sit_hidden_next_to_the_destination() {
        assert_eq!(
            staged_path(Path::new("/etc/haproxy/haproxy.cfg")),
            Path::new("/etc/haproxy/.haproxy.cfg.rumor-staged")
        );
    }

    #[test]
    fn a_symlink_at_the_staged_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        let victim = dir.path().join("victim");
        fs::write(&dest, "live").unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(&victim, "untouched").unwrap();
        let staged = staged_path(&dest);
        std::os::unix::fs::symlink(&victim, &staged).unwrap();
        write_file(&staged, b"new", &dest).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        let meta = fs::symlink_metadata(&staged).unwrap();
        assert!(meta.file_type().is_file(), "still a symlink");
        assert_eq!(fs::read_to_string(&staged).unwrap(), "new");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o640,
            "the live file's mode"
        );
    }

    #[test]
    fn placeholders_are_shell_quoted() {
        let s = substitute(
            "haproxy -c -f {staged} # {dest}",
            Path::new("/a b/.x"),
            Path::new("/etc/h.cfg"),
        );
        assert_eq!(s, "haproxy -c -f '/a b/.x' # /etc/h.cfg");
    }
}
