//! Making the consumer pick up a new file: a command, SIGUSR2 to an HAProxy master, or
//! the runtime API.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::runtime_api::RuntimeApi;
use super::select::Server;

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
    /// Applies a new file. `servers` is the membership's server set; `full` says the file
    /// changed beyond its server lines.
    pub(crate) fn run(
        &self,
        servers: &[Server],
        full: bool,
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
            Reload::RuntimeApi(r) => {
                let mut done = String::new();
                if full {
                    match &r.pid_file {
                        Some(pid_file) => {
                            done = signal_master(pid_file, Some(&r.api), timeout)?;
                            done.push_str("; ");
                        }
                        None => tracing::warn!(
                            "the rendered file changed beyond its server lines: restart HAProxy to apply it \
                             (or set pid_file to reload it)"
                        ),
                    }
                }
                let report =
                    r.api
                        .sync_servers(&r.backend, servers, &r.server_options, r.drain_timeout)?;
                done.push_str(&format!(
                    "runtime API: added {:?}, enabled {:?}, removed {:?}, deleted {:?}",
                    report.added, report.enabled, report.removed, report.deleted
                ));
                Ok(done)
            }
        }
    }
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
