//! Reaping as PID 1 should, without stealing anyone's exit status.
//!
//! In a container the agent may be PID 1 (`rumor agent ... -- CMD`): every process whose
//! parent dies is handed to it, and stays a zombie until it is waited for. The agent's own
//! children (the service, handlers, render commands) are waited for by tokio, which must
//! get their status. So every child the agent starts is spawned here, under a lock
//! that also guards [`reap_orphans`]: a zombie is reaped only if the agent did not start
//! it, and a child cannot exit unnoticed between its start and its registration.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, WaitOptions, waitpid};
use tokio::process::{Child, Command};

/// Most `/proc` entries one scan looks at, so a scan is bounded whatever the host runs.
const MAX_SCAN: usize = 65_536;
/// Shortest time between two scans: a burst of SIGCHLDs costs one scan, and the agent's
/// single-threaded runtime keeps gossiping.
const SCAN_GAP: Duration = Duration::from_millis(100);

/// Processes the agent started and tokio waits for, with how many guards hold each
/// process ID (a reused ID may be held twice for a moment: by the guard of a child that
/// tokio already reaped, and by its successor's).
static STARTED: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

fn started() -> MutexGuard<'static, BTreeMap<i32, u32>> {
    STARTED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child started through [`spawn`]; dropping it (once the child has been waited for)
/// hands its process ID back to [`reap_orphans`].
#[derive(Debug)]
pub(crate) struct Registered(Option<i32>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let mut started = started();
            if let Some(n) = started.get_mut(&pid) {
                *n -= 1;
                if *n == 0 {
                    started.remove(&pid);
                }
            }
        }
    }
}

/// Starts `cmd`, registered as the agent's own child until the returned guard is dropped.
/// Drop the guard only after the child has been waited for (or after tokio took it over:
/// a `Child` dropped unwaited stays registered, since tokio reaps it in the background).
pub(crate) fn spawn(cmd: &mut Command) -> io::Result<(Child, Registered)> {
    let mut started = started();
    let child = cmd.spawn()?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    if let Some(pid) = pid {
        *started.entry(pid).or_default() += 1;
    }
    Ok((child, Registered(pid)))
}

/// Whether this process is the init process of its PID namespace, which inherits orphans.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Reaps every zombie child of this process that it did not start itself (orphans handed
/// to it as PID 1); returns how many. Reads `/proc`: elsewhere it reaps nothing.
pub fn reap_orphans() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let pids = dir
        .flatten()
        .take(MAX_SCAN)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()));
    reap_among(pids)
}

/// [`reap_orphans`] over the given process IDs only.
fn reap_among(pids: impl Iterator<Item = i32>) -> usize {
    let me = std::process::id();
    let mut reaped = 0;
    for pid in pids {
        if !is_zombie_child_of(pid, me) {
            continue;
        }
        let started = started();
        if started.contains_key(&pid) {
            continue;
        }
        let Some(p) = Pid::from_raw(pid) else {
            continue;
        };
        if let Ok(Some(_)) = waitpid(Some(p), WaitOptions::NOHANG) {
            reaped += 1;
        }
    }
    reaped
}

/// Reaps orphans on every SIGCHLD (at most one scan per 100 ms), for as long as
/// the agent runs: spawn it when [`is_init`]. `sigchld` is registered by the caller
/// before it starts any child, so no exit goes unnoticed; one scan runs at once.
pub async fn reap_forever(mut sigchld: tokio::signal::unix::Signal) {
    loop {
        let n = reap_orphans();
        if n > 0 {
            tracing::debug!(reaped = n, "reaped orphaned processes");
        }
        tokio::time::sleep(SCAN_GAP).await;
        if sigchld.recv().await.is_none() {
            return;
        }
    }
}

/// Whether `/proc/PID/stat` shows a zombie whose parent is `parent`.
fn is_zombie_child_of(pid: i32, parent: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_state_and_parent(&stat))
        .is_some_and(|(state, ppid)| state == 'Z' && ppid == parent)
}

/// The state letter and parent process ID of a `/proc/PID/stat` line. The command name
/// in parentheses may itself hold spaces and parentheses, so fields are read after the
/// last `)`.
fn parse_state_and_parent(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(
            parse_state_and_parent("42 (sleep) Z 1 42 42 0 -1"),
            Some(('Z', 1))
        );
        assert_eq!(
            parse_state_and_parent("7 (a) b (c)) S 300 7 7"),
            Some(('S', 300))
        );
        assert_eq!(parse_state_and_parent("7 (unterminated S 1"), None);
        assert_eq!(parse_state_and_parent("7 (x) S"), None);
        assert_eq!(parse_state_and_parent(""), None);
    }

    /// A zombie child the agent started itself is left to tokio, which gets its status;
    /// one it did not start (here: started with std, as an orphan would have been by
    /// someone else) is reaped.
    #[tokio::test]
    async fn only_children_the_agent_did_not_start_are_reaped() {
        let (mut ours, registered) = spawn(Command::new("true").kill_on_drop(true)).unwrap();
        let stranger = std::process::Command::new("true").spawn().unwrap();
        let stranger_pid = i32::try_from(stranger.id()).unwrap();
        let ours_pid = i32::try_from(ours.id().unwrap()).unwrap();
        let me = std::process::id();
        // Both exit at once; wait until both are zombies (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(is_zombie_child_of(stranger_pid, me) && is_zombie_child_of(ours_pid, me)) {
            assert!(Instant::now() < deadline, "children did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Only these two: other tests of this binary have children of their own.
        assert_eq!(reap_among([stranger_pid, ours_pid].into_iter()), 1);
        assert!(
            !is_zombie_child_of(stranger_pid, me),
            "the stranger was not reaped"
        );
        assert!(is_zombie_child_of(ours_pid, me), "our own child was reaped");
        let status = ours
            .wait()
            .await
            .expect("tokio still gets our child's status");
        assert!(status.success());
        drop(registered);
        drop(stranger);
    }
}
