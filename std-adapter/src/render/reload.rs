//! Making the consumer pick up a new file: a command, SIGUSR2 to an HAProxy master, or
//! the runtime API.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::backend::{SplitFile, split as split_backend};
use super::runtime_api::RuntimeApi;

/// How a target's consumer picks up a new file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Nothing to do (the consumer rereads the file by itself).
    None,
    /// A shell command (e.g. `systemctl reload haproxy`) that must exit 0.
    Command(String),
    /// SIGUSR2 to the HAProxy master whose pid is in `pid_file` (`haproxy -W -p FILE`): it
    /// re-executes itself and hands the listening sockets to new workers, dropping nothing.
    /// With `confirm`, the reload only counts as done once a new worker answers there; a
    /// master that failed to load the file keeps its old workers, and this reports it.
    Signal {
        /// The master's pid file.
        pid_file: PathBuf,
        /// The stats socket to confirm the reload on.
        confirm: Option<RuntimeApi>,
    },
    /// Apply the server changes through the runtime API, with no reload at all; the file
    /// is still written so a restart reproduces the state.
    RuntimeApi(ApiReload),
}

/// The runtime API mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiReload {
    /// The stats socket.
    pub api: RuntimeApi,
    /// The backend whose servers follow the membership.
    pub backend: String,
    /// Keywords of added servers (as in the rendered `server` lines, e.g. `check`).
    pub server_options: String,
    /// Longest wait for a leaving server's sessions to finish.
    pub drain_timeout: Duration,
    /// The master's pid file: when the file changed beyond its `server` lines (or on the
    /// first render), HAProxy is reloaded with SIGUSR2 first. Without it such changes
    /// wait for the next restart.
    pub pid_file: Option<PathBuf>,
}

impl Reload {
    /// Applies `new`, the file just installed; `previous` is the file HAProxy runs (none
    /// at the first render).
    pub(crate) fn run(
        &self,
        new: &str,
        previous: Option<&str>,
        timeout: Duration,
    ) -> Result<String, String> {
        match self {
            Reload::None => Ok("no reload configured".to_owned()),
            Reload::Command(script) => {
                crate::subprocess::run_blocking(script, timeout).map(|()| format!("ran `{script}`"))
            }
            Reload::Signal { pid_file, confirm } => {
                signal_master(pid_file, confirm.as_ref(), timeout)
            }
            Reload::RuntimeApi(r) => r.run(new, previous, timeout),
        }
    }
}

impl ApiReload {
    /// Keeps HAProxy's live servers of the backend equal to the `server` lines `new` has
    /// there, through the runtime API, and reloads (SIGUSR2) when anything else changed,
    /// when a server's options changed (the runtime API cannot change them), or when
    /// HAProxy refuses a runtime change (e.g. `add server` under a static balance
    /// algorithm).
    fn run(&self, new: &str, previous: Option<&str>, timeout: Duration) -> Result<String, String> {
        let next = split_backend(new, &self.backend)?;
        let full = needs_reload(previous, &next, &self.backend);
        if full {
            match &self.pid_file {
                // The new worker loaded the whole file, servers included: nothing is left
                // to sync, and a sync that failed now must not make the agent put the
                // previous file back under a worker that runs the new one.
                Some(pid_file) => return signal_master(pid_file, Some(&self.api), timeout),
                None => tracing::warn!(
                    "the rendered file changed beyond the server lines the runtime API can apply: \
                     restart HAProxy to apply it (or set pid_file to reload it)"
                ),
            }
        }
        match self.api.sync_servers(
            &self.backend,
            &next.servers,
            &self.server_options,
            self.drain_timeout,
        ) {
            Ok(report) => Ok(format!(
                "runtime API: added {:?}, enabled {:?}, removed {:?}, deleted {:?}",
                report.added, report.enabled, report.removed, report.deleted
            )),
            Err(e) if e.starts_with("HAProxy refused") && !full => match &self.pid_file {
                Some(pid_file) => {
                    let reloaded = signal_master(pid_file, Some(&self.api), timeout)?;
                    Ok(format!(
                        "runtime API refused ({e}); reloaded instead: {reloaded}"
                    ))
                }
                None => Err(format!(
                    "{e}; set pid_file so that rumor can reload HAProxy instead"
                )),
            },
            Err(e) => Err(e),
        }
    }
}

/// Whether going from `previous` (none at the first render) to `next` needs a reload:
/// anything but the synced backend's server set and addresses changed.
fn needs_reload(previous: Option<&str>, next: &SplitFile<'_>, backend: &str) -> bool {
    match previous.map(|p| split_backend(p, backend)) {
        Some(Ok(before)) => before.rest != next.rest || options_changed(&before, next),
        _ => true,
    }
}

/// Whether a server present in both files has other options in `after`.
fn options_changed(before: &SplitFile<'_>, after: &SplitFile<'_>) -> bool {
    after.servers.iter().any(|a| {
        before
            .servers
            .iter()
            .any(|b| b.server.name == a.server.name && b.options != a.options)
    })
}

/// Refuses `pid` unless it is an HAProxy process: a stale pid file may name a PID that
/// the system has since given to something else, which SIGUSR2 would kill. Its command
/// name (`/proc/PID/comm`, readable whoever owns the process) must start with `haproxy`.
fn ensure_haproxy(pid: rustix::process::Pid, pid_file: &Path) -> Result<(), String> {
    let raw = pid.as_raw_nonzero();
    let comm = std::fs::read_to_string(format!("/proc/{raw}/comm")).map_err(|e| {
        format!(
            "pid {raw} from {} is not running ({e}): not signalled",
            pid_file.display()
        )
    })?;
    let comm = comm.trim();
    if comm.starts_with("haproxy") {
        Ok(())
    } else {
        Err(format!(
            "pid {raw} from {} is `{comm}`, not HAProxy (a stale pid file?): not signalled",
            pid_file.display()
        ))
    }
}

/// How often the stats socket is asked whether a new worker is up.
const CONFIRM_POLL: Duration = Duration::from_millis(50);

/// Sends SIGUSR2 to the master in `pid_file`, then (with `confirm`) waits for a new worker.
fn signal_master(
    pid_file: &Path,
    confirm: Option<&RuntimeApi>,
    timeout: Duration,
) -> Result<String, String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("cannot read HAProxy's pid file {}: {e}", pid_file.display()))?;
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| format!("no pid in {}", pid_file.display()))?;
    ensure_haproxy(pid, pid_file)?;
    let before = confirm.and_then(|api| api.worker_pid().ok());
    rustix::process::kill_process(pid, rustix::process::Signal::USR2)
        .map_err(|e| format!("cannot signal HAProxy master {}: {e}", pid.as_raw_nonzero()))?;
    let (Some(api), Some(before)) = (confirm, before) else {
        return Ok(format!("sent SIGUSR2 to master {}", pid.as_raw_nonzero()));
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(now) = api.worker_pid()
            && now != before
        {
            return Ok(format!("reloaded: worker {before} replaced by {now}"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "HAProxy master {} did not start a new worker within {timeout:?} (its log says why); \
                 the old worker keeps serving",
                pid.as_raw_nonzero()
            ));
        }
        thread::sleep(CONFIRM_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_sets_and_addresses_of_the_synced_backend_skip_the_reload() {
        let base = "backend nodes\n    server a 10.0.0.1:80 check\nbackend other\n    server o 10.0.1.1:80\n";
        let reload = |after: &str| {
            needs_reload(Some(base), &split_backend(after, "nodes").unwrap(), "nodes")
        };
        // Servers come, go and move: the runtime API does it.
        assert!(!reload(
            "backend nodes\n    server a 10.0.0.2:80 check\n    server b 10.0.0.3:80 check\nbackend other\n    server o 10.0.1.1:80\n"
        ));
        // A server's options, another backend's servers, any other line: a reload.
        assert!(reload(
            "backend nodes\n    server a 10.0.0.1:80 check weight 5\nbackend other\n    server o 10.0.1.1:80\n"
        ));
        assert!(reload(
            "backend nodes\n    server a 10.0.0.1:80 check\nbackend other\n    server o 10.0.1.2:80\n"
        ));
        assert!(reload(
            "backend nodes\n    balance first\n    server a 10.0.0.1:80 check\nbackend other\n    server o 10.0.1.1:80\n"
        ));
        // The first render.
        assert!(needs_reload(
            None,
            &split_backend(base, "nodes").unwrap(),
            "nodes"
        ));
    }

    /// A pid file left by an HAProxy that is gone, whose PID now belongs to another
    /// process: SIGUSR2 (which ends a process that does not handle it) is not sent.
    #[test]
    fn a_pid_that_is_not_haproxy_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("haproxy.pid");
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, format!("{}\n", other.id())).unwrap();
        // Until its exec, the child still has the test thread's name.
        let comm = format!("/proc/{}/comm", other.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let e = signal_master(&pid_file, None, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("is `sleep`, not HAProxy"), "{e}");
        thread::sleep(Duration::from_millis(100));
        assert!(
            other.try_wait().unwrap().is_none(),
            "the process was signalled"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
