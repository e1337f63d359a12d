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

/// How long a service may take to go once SIGKILL was sent before the agent gives up
/// waiting for it (it is then stuck in the kernel, and reported as an error).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A running service command.
#[derive(Debug)]
pub struct Service {
    child: Child,
    pid: Option<Pid>,
    /// Set once the child has been waited for; its process ID may then be reused, so no
    /// signal is sent to it any more.
    status: Option<ExitStatus>,
    /// Waiting for the child failed: it is treated as gone (no more signals).
    lost: bool,
    /// The signal [`Service::stop`] sent, if it was called.
    stopped_with: Option<Signal>,
    _registered: reaper::Registered,
}

impl Service {
    /// Starts `argv` (a program and its arguments, looked up on `PATH`) with the agent's
    /// stdout and stderr, stdin from `/dev/null` (in a background process group, reading a
    /// terminal would stop it), and the agent's environment minus its secrets
    /// ([`crate::handler::SECRET_ENV_VARS`]), in a process group of its own.
    pub fn spawn(argv: &[String]) -> io::Result<Service> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
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
            lost: false,
            stopped_with: None,
            _registered: registered,
        })
    }

    /// The service's process ID, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.running().then(|| self.child.id()).flatten()
    }

    fn running(&self) -> bool {
        self.status.is_none() && !self.lost
    }

    /// Sends `signal` to the service (not to its group: the service decides what its own
    /// children get). Does nothing once it has exited.
    pub fn signal(&self, signal: Signal) {
        if !self.running() {
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
        let status = self.child.wait().await.inspect_err(|_| self.lost = true)?;
        self.status = Some(status);
        Ok(status)
    }

    /// Stops the service: `signal` and `SIGCONT` (a stopped process would otherwise keep
    /// the signal pending), then `SIGKILL` to it and to its process group if it has not
    /// exited after `grace`. Returns its exit status, or an error if it is still there
    /// 5 s after the SIGKILL.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) -> io::Result<ExitStatus> {
        if self.running() {
            self.stopped_with = Some(signal);
        }
        self.signal(signal);
        self.signal(Signal::CONT);
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        tracing::warn!(?grace, "the service did not stop in time: killing it");
        if self.running()
            && let Some(pid) = self.pid
        {
            // The process itself, even if it left its group, then whatever is left of it.
            self.signal(Signal::KILL);
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        tokio::time::timeout(KILL_WAIT, self.wait())
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the service is still there after SIGKILL",
                ))
            })
    }
}

impl Service {
    /// The exit code for the agent once the service exited with `status`: 0 when the
    /// signal [`Service::stop`] sent is what ended it (the stop went as asked, so a
    /// supervisor's `restart: on-failure` does not fire), else [`exit_code`]: a code of
    /// its own, the service's own end, or SIGKILL after the stop timeout.
    pub fn exit_code(&self, status: ExitStatus) -> u8 {
        use std::os::unix::process::ExitStatusExt;
        match (self.stopped_with, status.signal()) {
            (Some(sent), Some(ended)) if sent.as_raw() == ended => 0,
            _ => exit_code(status),
        }
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
        let status = s.wait().await.unwrap();
        assert_eq!((exit_code(status), s.exit_code(status)), (7, 7));
        // Ended by a signal nobody asked the service to stop with: a failure.
        let mut s = Service::spawn(&argv(&["sleep", "30"])).unwrap();
        s.signal(Signal::TERM);
        let status = s.wait().await.unwrap();
        assert_eq!(s.exit_code(status), 128 + 15);
        let mut s = Service::spawn(&argv(&["sleep", "30"])).unwrap();
        let status = s.stop(Signal::TERM, Duration::from_secs(10)).await.unwrap();
        assert_eq!(exit_code(status), 128 + 15);
        assert_eq!(s.exit_code(status), 0, "ended by the stop asked for");
        assert_eq!(s.id(), None, "no process ID once it has exited");
    }

    /// A stopped process keeps a signal it catches pending: the stop must wake it.
    #[tokio::test]
    async fn a_stopped_service_still_stops_on_the_signal() {
        let script = "trap 'exit 4' TERM; echo >&2 trapped; while :; do sleep 0.05; done";
        let mut s = Service::spawn(&argv(&["sh", "-c", script])).unwrap();
        // Give the shell time to set its trap (bounded: the test only gets slower).
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.signal(Signal::STOP);
        let status = s.stop(Signal::TERM, Duration::from_secs(3)).await.unwrap();
        assert_eq!(
            exit_code(status),
            4,
            "SIGKILLed instead of handling SIGTERM"
        );
    }

    /// A service that left its process group (here: joined the test's) and ignores the
    /// signal is still killed.
    #[tokio::test]
    async fn a_service_outside_its_group_is_killed_after_the_grace() {
        let script = "import os, signal, sys, time\n\
                      signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                      os.setpgid(0, os.getpgid(os.getppid()))\n\
                      print('moved', flush=True)\n\
                      time.sleep(30)";
        let mut s = Service::spawn(&argv(&["python3", "-c", script])).unwrap();
        let pid = Pid::from_raw(i32::try_from(s.id().unwrap()).unwrap()).unwrap();
        let moved = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            rustix::process::getpgid(Some(pid)).is_ok_and(|g| g != pid)
        });
        assert!(moved, "the script did not leave its group");
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            s.stop(Signal::TERM, Duration::from_millis(300)),
        )
        .await
        .expect("stop returns")
        .unwrap();
        assert_eq!(exit_code(status), 128 + 9);
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
