//! The load balancer the demo shows following the cluster: node-1's render target writes
//! an HAProxy config with rumor's own `haproxy` renderer and, when `haproxy` is on the
//! PATH, applies each change to a real HAProxy through its runtime API.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumor_std::render::{
    ApiReload, DEFAULT_SERVER_OPTIONS, Endpoint, HaproxyBackend, LiveServer, Reload, Renderer,
    RuntimeApi, Target, split_backend,
};

use super::CliError;

/// The backend the renderer writes and the runtime API keeps in step.
const BACKEND: &str = "nodes";
/// Longest wait for HAProxy's stats socket to answer after its start.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a change to be rendered, and then to be live in HAProxy.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the rendered file and HAProxy's servers are polled.
const POLL: Duration = Duration::from_millis(50);

/// True if `haproxy -v` runs.
pub(super) fn haproxy_installed() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh directory under the system's temp dir, removed with everything in it when
/// dropped.
#[derive(Debug)]
struct Workdir(PathBuf);

impl Workdir {
    /// Creates `rumor-demo-<pid>-<nanos>`.
    fn create() -> Result<Workdir, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("rumor-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| CliError(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Workdir(dir))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `haproxy -W` (master-worker) in its own process group, killed with its workers when
/// dropped.
#[derive(Debug)]
struct Haproxy {
    /// The master.
    child: Child,
    /// Its stdout and stderr.
    log: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy on `cfg` and waits until its stats socket answers.
    async fn start(cfg: &Path, pid_file: &Path, api: &RuntimeApi) -> Result<Haproxy, CliError> {
        use std::os::unix::process::CommandExt;
        let log = cfg.with_extension("log");
        let out = std::fs::File::create(&log)?;
        let args = [
            OsStr::new("-W"),
            "-f".as_ref(),
            cfg.as_ref(),
            "-p".as_ref(),
            pid_file.as_ref(),
        ];
        let child = Command::new("haproxy")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| CliError(format!("cannot start haproxy: {e}")))?;
        let mut h = Haproxy { child, log };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let api = api.clone();
            if blocking(move || api.worker_pid()).await.is_ok() {
                return Ok(h);
            }
            if let Ok(Some(status)) = h.child.try_wait() {
                return Err(h.failed(&format!("haproxy exited ({status})")));
            }
            tokio::time::sleep(POLL).await;
        }
        Err(h.failed("haproxy's stats socket did not answer within 10 s"))
    }

    /// An error saying `what`, with the end of HAProxy's output.
    fn failed(&self, what: &str) -> CliError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        CliError(format!("{what}: {}", tail.join(" | ")))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process_group};
        let Some(group) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) else {
            return;
        };
        let _ = kill_process_group(group, Signal::TERM);
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = kill_process_group(group, Signal::KILL);
        let _ = self.child.wait();
    }
}

/// Runs a blocking call (file and socket I/O) off the runtime's only thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; HAProxy binds it right after).
fn free_port() -> Result<u16, CliError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The rendered config and, if installed, the HAProxy that runs it.
#[derive(Debug)]
pub(super) struct Balancer {
    /// The real HAProxy, if any (dropped before the directory it works in).
    haproxy: Option<Haproxy>,
    /// Its runtime API (the stats socket).
    api: RuntimeApi,
    /// Where HAProxy listens.
    frontend: SocketAddr,
    /// The render target that keeps `cfg` (and HAProxy) in step with node-1's members.
    target: Target,
    /// The `server` lines last printed.
    shown: Option<BTreeSet<String>>,
    /// HAProxy's retries and redispatches when last read.
    retried: u64,
    /// Holds every file; removed when dropped.
    _dir: Workdir,
}

impl Balancer {
    /// Renders the config of an empty cluster and starts HAProxy on it if `haproxy`.
    pub(super) async fn start(haproxy: bool) -> Result<Balancer, CliError> {
        let dir = Workdir::create()?;
        let (cfg, pid_file, sock) = (
            dir.0.join("haproxy.cfg"),
            dir.0.join("haproxy.pid"),
            dir.0.join("admin.sock"),
        );
        let frontend = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let renderer = HaproxyBackend {
            prelude: prelude(&sock, frontend),
            backend: BACKEND.to_owned(),
            ..HaproxyBackend::default()
        };
        std::fs::write(&cfg, renderer.render_members(&[])?.as_bytes())?;
        let api = RuntimeApi {
            endpoint: Endpoint::Unix(sock),
            timeout: Duration::from_secs(2),
        };
        let mut target = Target::new(Renderer::Haproxy(renderer), &cfg);
        target.coalesce_quiet = Duration::from_millis(200);
        target.coalesce_max = Duration::from_secs(1);
        target.command_timeout = Duration::from_secs(10);
        let haproxy = if haproxy {
            target.check = Some("haproxy -q -c -f {staged}".to_owned());
            target.reload = Reload::RuntimeApi(ApiReload {
                api: api.clone(),
                backend: BACKEND.to_owned(),
                server_options: DEFAULT_SERVER_OPTIONS.to_owned(),
                drain_timeout: Duration::from_secs(2),
                pid_file: Some(pid_file.clone()),
            });
            Some(Haproxy::start(&cfg, &pid_file, &api).await?)
        } else {
            None
        };
        Ok(Balancer {
            haproxy,
            api,
            frontend,
            target,
            shown: None,
            retried: 0,
            _dir: dir,
        })
    }

    /// The render target for node-1.
    pub(super) fn target(&self) -> Target {
        self.target.clone()
    }

    /// Where HAProxy listens, if it runs.
    pub(super) fn frontend(&self) -> Option<SocketAddr> {
        self.haproxy.as_ref().map(|_| self.frontend)
    }

    /// Waits until the rendered file has a server for each of `names` and no other, then
    /// (with HAProxy) until exactly those are in rotation, and prints the change.
    pub(super) async fn follow(
        &mut self,
        names: &[String],
        since: Instant,
    ) -> Result<(), CliError> {
        let cfg = self.target.dest.clone();
        let read = move || std::fs::read_to_string(&cfg).ok();
        let text = until_servers(names, "the rendered backend", read, |text: &String| {
            split_backend(text, BACKEND).map_or_else(
                |_| Vec::new(),
                |f| f.servers.into_iter().map(|s| s.server.name).collect(),
            )
        })
        .await?;
        let rendered = since.elapsed();
        self.print_section(&text);
        if self.haproxy.is_none() {
            println!(
                "    (rendered {:.2} s after the change)",
                rendered.as_secs_f64()
            );
            return Ok(());
        }
        let api = self.api.clone();
        let read = move || api.servers(BACKEND).ok();
        until_servers(
            names,
            "HAProxy's servers in rotation",
            read,
            |live: &Vec<LiveServer>| {
                let up = live.iter().filter(|s| !s.maint && !s.drain);
                up.map(|s| s.name.clone()).collect()
            },
        )
        .await?;
        println!(
            "    (rendered {:.2} s after the change, in HAProxy through its runtime API after {:.2} s, no reload)",
            rendered.as_secs_f64(),
            since.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// How many connections HAProxy retried since the last call, if it runs: on the same
    /// server (`wretr`) or, as the rendered backend's `option redispatch 1` makes it, on
    /// another one (`wredis`).
    pub(super) async fn retries(&mut self) -> Option<u64> {
        self.haproxy.as_ref()?;
        let api = self.api.clone();
        let stat = blocking(move || api.command("show stat").ok()).await?;
        let mut lines = stat.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (retr, redis) = (col("wretr")?, col("wredis")?);
        let row: Vec<&str> = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&BACKEND) && f.get(1) == Some(&"BACKEND"))?;
        let get = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let now = get(retr) + get(redis);
        Some(now.saturating_sub(std::mem::replace(&mut self.retried, now)))
    }

    /// Prints the backend section the first time, then the `server` lines that changed.
    fn print_section(&mut self, text: &str) {
        // After the prelude, whose frontend names the backend too.
        let section = text
            .find(&format!("\nbackend {BACKEND}\n"))
            .map_or(text, |at| &text[at + 1..]);
        let lines: BTreeSet<String> = section
            .lines()
            .filter(|l| l.trim_start().starts_with("server "))
            .map(|l| l.trim().to_owned())
            .collect();
        match &self.shown {
            None => {
                println!(
                    "    rendered by node-1 into {}:",
                    self.target.dest.display()
                );
                for line in section.lines() {
                    println!("      {line}");
                }
            }
            Some(before) => {
                println!("    backend {BACKEND}, rendered again by node-1:");
                for gone in before.difference(&lines) {
                    println!("      - {gone}");
                }
                for new in lines.difference(before) {
                    println!("      + {new}");
                }
                let kept = lines.intersection(before).count();
                println!("        ({kept} other server line(s) unchanged)");
            }
        }
        self.shown = Some(lines);
    }
}

/// Calls `read` (a blocking call) every [`POLL`] until the server names `names` finds in
/// its value are `want`, for at most [`FOLLOW_TIMEOUT`]; `what` names them in the error.
async fn until_servers<T: Send + 'static>(
    want: &[String],
    what: &str,
    read: impl Fn() -> Option<T> + Clone + Send + 'static,
    names: impl Fn(&T) -> Vec<String>,
) -> Result<T, CliError> {
    let want: BTreeSet<&String> = want.iter().collect();
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(v) = blocking(read.clone()).await
            && names(&v).iter().collect::<BTreeSet<_>>() == want
        {
            return Ok(v);
        }
        tokio::time::sleep(POLL).await;
    }
    Err(CliError(format!(
        "{what} did not become {want:?} within {} s",
        FOLLOW_TIMEOUT.as_secs()
    )))
}

/// The global, defaults and frontend sections: loopback only, the stats socket at `sock`.
fn prelude(sock: &Path, frontend: SocketAddr) -> String {
    format!(
        "global\n    stats socket {} mode 600 level admin\n    stats timeout 30s\n\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\n\
         frontend demo\n    bind {frontend}\n    default_backend {BACKEND}\n\n",
        sock.display()
    )
}
