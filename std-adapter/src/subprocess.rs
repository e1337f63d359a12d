//! The one way the agent runs a shell command: event handlers, render checks and reload
//! commands alike.
//!
//! `/bin/sh -c SCRIPT` runs in a process group of its own, without the agent's secrets in
//! its environment ([`crate::handler::SECRET_ENV_VARS`]), with the given stdin; the first
//! [`OUTPUT_KEPT`] bytes of stdout and of stderr are kept. Past its timeout the whole group
//! is killed. Once the shell has exited, its output is awaited for [`OUTPUT_GRACE`] at
//! most: a background child it started (`haproxy -f cfg -sf $(cat pid) &`, the lab's reload)
//! may hold the pipes open for its whole life. That child is left running, and its output
//! is still read, and discarded, until it closes the pipes, so it never blocks on a full
//! pipe nor dies of `SIGPIPE`.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Output kept per stream (Serf keeps 8 KiB too).
pub(crate) const OUTPUT_KEPT: usize = 8 * 1024;
/// How long a finished command's output pipes may stay open before the command's result
/// is taken without the rest of its output.
pub(crate) const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Script<'a> {
    /// Passed to `/bin/sh -c`.
    pub(crate) script: &'a str,
    /// Added to the agent's environment (from which the secrets are removed).
    pub(crate) env: Vec<(String, String)>,
    /// Written to the command's stdin, which is then closed.
    pub(crate) stdin: Vec<u8>,
    /// The command and everything it started in its group are killed after this.
    pub(crate) timeout: Duration,
}

/// How a command ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The shell exited (successfully or not) within the timeout.
    Exited {
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// It ran past the timeout and its process group was killed.
    TimedOut { stdout: String, stderr: String },
    /// It could not be started.
    SpawnFailed(io::Error),
}

impl Outcome {
    /// `Ok` when the command exited 0; otherwise a one-line reason with the end of its
    /// output (for render checks and reloads).
    pub(crate) fn into_result(self, script: &str) -> Result<(), String> {
        let (what, stdout, stderr) = match self {
            Outcome::Exited { status, .. } if status.success() => return Ok(()),
            Outcome::Exited {
                status,
                stdout,
                stderr,
            } => (describe(status), stdout, stderr),
            Outcome::TimedOut { stdout, stderr } => {
                ("timed out and was killed".to_owned(), stdout, stderr)
            }
            Outcome::SpawnFailed(e) => return Err(format!("cannot run `{script}`: {e}")),
        };
        let output = [stdout, stderr]
            .iter()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        Err(if output.is_empty() {
            format!("`{script}` {what}")
        } else {
            format!("`{script}` {what}: {output}")
        })
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with {code}"),
        None => format!("ended by {status}"),
    }
}

/// Runs `s` to its end, or kills it with its group at its timeout.
pub(crate) async fn run(s: Script<'_>) -> Outcome {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(s.script)
        .envs(s.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::handler::without_secrets(cmd.as_std_mut());
    // Registered until the end of this function, by which time it has been waited for.
    let (mut child, _registered) = match crate::service::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin must not block anything.
        let data = s.stdin;
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
        });
    }
    let stdout = child.stdout.take().map(Captured::start);
    let stderr = child.stderr.take().map(Captured::start);
    let pid = child.id();
    let status = match tokio::time::timeout(s.timeout, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => return Outcome::SpawnFailed(e),
        Err(_) => {
            kill_group(pid);
            let _ = child.wait().await;
            None
        }
    };
    let (stdout, stderr) = (
        Captured::finish(stdout).await,
        Captured::finish(stderr).await,
    );
    match status {
        Some(status) => Outcome::Exited {
            status,
            stdout,
            stderr,
        },
        None => Outcome::TimedOut { stdout, stderr },
    }
}

/// [`run`] from a thread that may block (a `spawn_blocking` task, or any thread outside
/// an async context): `Ok` when the command exited 0, else the reason (see
/// [`Outcome::into_result`]).
pub(crate) fn run_blocking(script: &str, timeout: Duration) -> Result<(), String> {
    let handle = runtime().map_err(|e| format!("cannot run `{script}`: {e}"))?;
    handle
        .block_on(run(Script {
            script,
            timeout,
            ..Script::default()
        }))
        .into_result(script)
}

/// The runtime commands run on: the caller's (the agent's) when it has one, else one of
/// this module's own, driven by a thread of its own for the life of the process so that
/// the output of background children goes on being drained.
fn runtime() -> Result<tokio::runtime::Handle, String> {
    static OWN: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        return Ok(h);
    }
    OWN.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime for commands: {e}"))?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("rumor-commands".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("cannot start a thread for commands: {e}"))?;
        Ok(handle)
    })
    .clone()
}

/// One output stream, read to its end by a task of its own.
struct Captured {
    kept: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Captured {
    fn start(pipe: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(read_to_end(pipe, kept.clone()));
        Captured { kept, reader }
    }

    /// What was kept once the stream ended, or after [`OUTPUT_GRACE`] if it is still open;
    /// the reader then goes on draining it in the background.
    async fn finish(this: Option<Self>) -> String {
        let Some(mut c) = this else {
            return String::new();
        };
        if tokio::time::timeout(OUTPUT_GRACE, &mut c.reader)
            .await
            .is_err()
        {
            tracing::debug!(
                "a command's output is still open after it exited: a background child holds it"
            );
        }
        let kept = c.kept.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&kept).into_owned()
    }
}

/// Reads `pipe` to its end, keeping its first [`OUTPUT_KEPT`] bytes in `kept`.
async fn read_to_end(mut pipe: impl AsyncRead + Unpin, kept: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut k) = kept.lock() {
                    let room = OUTPUT_KEPT.saturating_sub(k.len());
                    k.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
}

/// Kills a command's whole process group (the shell and anything it started).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
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
    use std::time::Instant;

    fn script(script: &str, timeout: Duration) -> Script<'_> {
        Script {
            script,
            timeout,
            ..Script::default()
        }
    }

    #[tokio::test]
    async fn success_failure_and_output() {
        let ok = run(script("true", Duration::from_secs(5))).await;
        assert_eq!(ok.into_result("true"), Ok(()));
        let s = "echo out; echo err >&2; exit 3";
        let e = run(script(s, Duration::from_secs(5)))
            .await
            .into_result(s)
            .unwrap_err();
        assert!(
            e.contains("exited with 3") && e.contains("out") && e.contains("err"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn stdin_and_environment_reach_the_command() {
        let out = run(Script {
            script: r#"read -r line; echo "$line $GREETING""#,
            env: vec![("GREETING".into(), "hello".into())],
            stdin: b"from stdin\n".to_vec(),
            timeout: Duration::from_secs(5),
        })
        .await;
        match out {
            Outcome::Exited { status, stdout, .. } => {
                assert!(status.success());
                assert_eq!(stdout, "from stdin hello\n");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The lab's reload (`haproxy ... &`) leaves a child holding the output pipes: the
    /// command's result comes within the grace, and the child lives on.
    #[tokio::test]
    async fn a_background_child_holding_the_output_does_not_hang_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let s = format!("echo started; sleep 30 & echo $! > {}", pid_file.display());
        let t0 = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            run(script(&s, Duration::from_secs(10))),
        )
        .await
        .expect("the command's result never came");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        match out {
            Outcome::Exited { status, stdout, .. } => {
                assert!(status.success());
                assert_eq!(stdout, "started\n");
            }
            other => panic!("{other:?}"),
        }
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        assert!(
            rustix::process::test_kill_process(pid).is_ok(),
            "the background child was killed"
        );
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }

    #[tokio::test]
    async fn a_hanging_command_and_its_children_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let s = format!("(sleep 2; touch {}) & sleep 60", marker.display());
        let t0 = Instant::now();
        let out = run(script(&s, Duration::from_millis(300))).await;
        assert!(matches!(out, Outcome::TimedOut { .. }), "{out:?}");
        assert!(t0.elapsed() < Duration::from_secs(30));
        // The background child was in the same process group and died with it.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a child of the killed command survived");
    }

    #[tokio::test]
    async fn output_is_kept_up_to_its_cap_and_the_rest_drained() {
        // 64 KiB, more than a pipe holds: the command must not block on it.
        let s = "head -c 65536 /dev/zero | tr '\\0' x";
        let out = run(script(s, Duration::from_secs(10))).await;
        match out {
            Outcome::Exited { status, stdout, .. } => {
                assert!(status.success());
                assert_eq!(stdout.len(), OUTPUT_KEPT);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blocking_runs_work_with_and_without_a_runtime() {
        // A plain thread (a library user's): the module's own runtime.
        assert_eq!(run_blocking("true", Duration::from_secs(5)), Ok(()));
        // A blocking task of the agent's runtime: that runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            tokio::task::spawn_blocking(|| run_blocking("exit 4", Duration::from_secs(5)))
                .await
                .unwrap()
        });
        assert_eq!(r, Err("`exit 4` exited with 4".to_owned()));
    }
}
