//! Runs the check and reload commands: `/bin/sh -c` without the agent's secrets in the
//! environment, output captured, the whole process group killed after a timeout.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a running command is polled.
const POLL: Duration = Duration::from_millis(10);
/// Bytes of a command's output kept for the log.
const OUTPUT_MAX: usize = 4096;

/// Runs `script` with `/bin/sh -c`; `Ok` only if it exits 0 within `timeout`. The error is
/// a one-line reason with the end of the command's output.
pub(crate) fn run(script: &str, timeout: Duration) -> Result<(), String> {
    let mut child = crate::handler::without_secrets(&mut Command::new("/bin/sh"))
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{script}`: {e}"))?;
    let readers = [
        child.stdout.take().map(|o| thread::spawn(move || drain(o))),
        child.stderr.take().map(|e| thread::spawn(move || drain(e))),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) | Err(_) => {
                kill_group(child.id());
                let _ = child.wait();
                break None;
            }
        }
    };
    let output: Vec<String> = readers
        .into_iter()
        .flatten()
        .filter_map(|h| h.join().ok())
        .filter(|s| !s.is_empty())
        .collect();
    let output = output.join(" | ");
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(failure(script, &describe(s), &output)),
        None => Err(failure(
            script,
            &format!("timed out after {timeout:?} and was killed"),
            &output,
        )),
    }
}

fn failure(script: &str, what: &str, output: &str) -> String {
    if output.is_empty() {
        format!("`{script}` {what}")
    } else {
        format!("`{script}` {what}: {output}")
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with {code}"),
        None => format!("ended by {status}"),
    }
}

/// Reads a pipe to its end, keeping the last [`OUTPUT_MAX`] bytes on one line.
fn drain(mut pipe: impl Read) -> String {
    let mut buf = Vec::new();
    let _ = pipe.read_to_end(&mut buf);
    let start = buf.len().saturating_sub(OUTPUT_MAX);
    let text = String::from_utf8_lossy(&buf[start..]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kill_group(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(error = %e, "cannot kill a command's process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_failure_and_output() {
        assert_eq!(run("true", Duration::from_secs(5)), Ok(()));
        let e = run("echo out; echo err >&2; exit 3", Duration::from_secs(5)).unwrap_err();
        assert!(
            e.contains("exited with 3") && e.contains("out") && e.contains("err"),
            "{e}"
        );
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed() {
        let t0 = Instant::now();
        // The background sleep keeps the pipes open: it must die with the group.
        let e = run("sleep 30 & sleep 30", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
}
