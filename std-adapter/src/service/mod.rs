//! The service an agent announces, run as the agent's child (`rumor agent ... -- CMD`).
//!
//! Run this way, the agent owns the service's life the way a container's init does: it
//! starts the command in a process group of its own (so a terminal's Ctrl-C, or a
//! supervisor signalling the agent, reaches the agent alone), forwards the signals meant
//! for the service, reaps orphans when it is PID 1 ([`reaper`]), and stops the service
//! only once the cluster has let go of it: leave, wait for the leave to spread and for the
//! balancer's drain, then signal the service and exit with its status.

pub mod reaper;

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

/// A running service command.
#[derive(Debug)]
pub struct Service {
    child: Child,
    pid: Option<Pid>,
    /// Set once the child has been waited for; its process ID may then be reused, so no
    /// signal is sent to it any more.
    status: Option<ExitStatus>,
    _registered: reaper::Registered,
}

impl Service {
    /// Starts `argv` (a program and its arguments, looked up on `PATH`) with the agent's
    /// stdin, stdout and stderr and the agent's environment minus its secrets
    /// ([`crate::handler::SECRET_ENV_VARS`]), in a process group of its own.
    pub fn spawn(argv: &[String]) -> io::Result<Service> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0);
        crate::handler::without_secrets(cmd.as_std_mut());
        let (child, registered) = reaper::spawn(&mut cmd)?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        Ok(Service {
            child,
            pid,
            status: None,
            _registered: registered,
        })
    }

    /// The service's process ID, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.status.is_none().then(|| self.child.id()).flatten()
    }

    /// Sends `signal` to the service (not to its group: the service decides what its own
    /// children get). Does nothing once it has exited.
    pub fn signal(&self, signal: Signal) {
        if self.status.is_some() {
            return;
        }
        if let Some(pid) = self.pid
            && let Err(e) = kill_process(pid, signal)
        {
            tracing::debug!(error = %e, ?signal, "cannot signal the service");
        }
    }

    /// Waits for the service to exit. Cancel-safe: dropping the future leaves the service
    /// running, and a later call waits again.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.status = Some(status);
        Ok(status)
    }

    /// Stops the service: `signal`, then `SIGKILL` to its whole process group if it has
    /// not exited after `grace`. Returns its exit status.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) -> io::Result<ExitStatus> {
        self.signal(signal);
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        tracing::warn!(?grace, "the service did not stop in time: killing it");
        if self.status.is_none()
            && let Some(pid) = self.pid
            && let Err(e) = rustix::process::kill_process_group(pid, Signal::KILL)
        {
            tracing::debug!(error = %e, "cannot kill the service's process group");
        }
        self.wait().await
    }
}

/// The exit code a process reports for `status`, as a shell does: the code itself, or
/// 128 plus the number of the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from((128 + sig) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn the_exit_code_is_the_services_own_or_128_plus_its_signal() {
        let mut s = Service::spawn(&argv(&["sh", "-c", "exit 7"])).unwrap();
        assert_eq!(exit_code(s.wait().await.unwrap()), 7);
        let mut s = Service::spawn(&argv(&["sleep", "30"])).unwrap();
        let status = s.stop(Signal::TERM, Duration::from_secs(10)).await.unwrap();
        assert_eq!(exit_code(status), 128 + 15);
        assert_eq!(s.id(), None, "no process ID once it has exited");
    }

    #[tokio::test]
    async fn a_service_that_ignores_the_signal_is_killed_after_the_grace() {
        let mut s = Service::spawn(&argv(&["sh", "-c", "trap '' TERM; sleep 30 & wait"])).unwrap();
        // Give the shell time to set its trap (bounded: the test only gets slower).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = s
            .stop(Signal::TERM, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(exit_code(status), 128 + 9);
    }

    #[tokio::test]
    async fn a_missing_program_or_an_empty_command_is_an_error() {
        assert!(Service::spawn(&argv(&["/nonexistent/rumor-test-program"])).is_err());
        assert!(Service::spawn(&[]).is_err());
    }
}
