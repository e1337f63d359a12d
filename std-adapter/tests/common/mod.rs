//! Helpers for tests that run real `rumor` processes: unique loopback addresses, agents
//! that are killed when the test ends (by PID), client calls, bounded waiting.
#![allow(dead_code, unreachable_pub)]

pub mod craft;
pub mod garbage;
pub mod wait;
pub mod watch;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::Value;

/// The `rumor` binary under test.
pub const RUMOR: &str = env!("CARGO_BIN_EXE_rumor");

/// A loopback address no other test process uses: 127.<pid>.<n>, so parallel test
/// binaries and parallel tests never share one.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 255, "too many loopback addresses in one test binary");
    let pid = std::process::id();
    Ipv4Addr::new(127, (pid >> 8) as u8, pid as u8, n)
}

/// A free UDP port and a free TCP port on `ip`.
pub fn free_ports(ip: Ipv4Addr) -> (u16, u16) {
    let udp = UdpSocket::bind((ip, 0)).expect("bind a UDP probe socket");
    let tcp = TcpListener::bind((ip, 0)).expect("bind a TCP probe socket");
    (
        udp.local_addr().unwrap().port(),
        tcp.local_addr().unwrap().port(),
    )
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    wait::poll_until(Duration::from_millis(200), timeout, f)
}

/// One member as `rumor members --format json` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub tags: Vec<(String, String)>,
}

/// Where an agent runs: the host, or a network namespace (commands go through
/// `ip netns exec`).
#[derive(Clone, Debug)]
pub enum Place {
    Host,
    Netns(String),
}

impl Place {
    fn command(&self) -> Command {
        match self {
            Place::Host => Command::new(RUMOR),
            Place::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, RUMOR]);
                c
            }
        }
    }
}

/// A `rumor agent` process, killed (SIGKILL, by PID) when dropped.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub gossip: SocketAddr,
    pub rpc: SocketAddr,
    pub place: Place,
    pub log: PathBuf,
    /// Extra environment variables of the agent process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Agent {
    /// Starts `rumor agent --node NAME --bind GOSSIP --rpc-addr RPC ARGS...`, logging to
    /// `dir/NAME.log`.
    pub fn start(
        dir: &Path,
        name: &str,
        gossip: SocketAddr,
        rpc: SocketAddr,
        place: Place,
        args: &[String],
    ) -> Agent {
        Agent::start_with_env(dir, name, gossip, rpc, place, args, &[])
    }

    /// [`Agent::start`] with extra environment variables (kept for restarts).
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        gossip: SocketAddr,
        rpc: SocketAddr,
        place: Place,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Agent {
        let mut agent = Agent {
            name: name.to_owned(),
            gossip,
            rpc,
            place,
            log: dir.join(format!("{name}.log")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        agent.restart(args);
        agent
    }

    /// Starts an agent on a fresh loopback address of the host.
    pub fn on_loopback(dir: &Path, name: &str, args: &[String]) -> Agent {
        Agent::on_loopback_with_env(dir, name, args, &[])
    }

    /// [`Agent::on_loopback`] with extra environment variables (kept for restarts).
    pub fn on_loopback_with_env(
        dir: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Agent {
        let ip = loopback_ip();
        let (g, r) = free_ports(ip);
        let (gossip, rpc) = (SocketAddr::from((ip, g)), SocketAddr::from((ip, r)));
        Agent::start_with_env(dir, name, gossip, rpc, Place::Host, args, env)
    }

    /// Starts the process again (after it exited), with these arguments.
    pub fn restart(&mut self, args: &[String]) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the agent log");
        let mut cmd = self.place.command();
        cmd.args(["agent", "--node", &self.name])
            .args(["--bind", &self.gossip.to_string()])
            .args(["--rpc-addr", &self.rpc.to_string()])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn rumor agent"));
        let rpc = self.rpc;
        let up = wait_for(Duration::from_secs(20), || {
            if let Some(status) = self.try_exit() {
                panic!(
                    "{} exited at start ({status}):\n{}",
                    self.name,
                    self.log_text()
                );
            }
            // Up when the RPC answers, even if only to refuse a missing token.
            let out = self.client(&["info", "--format", "json"]);
            (out.status.success() || String::from_utf8_lossy(&out.stderr).contains("unauthorized"))
                .then_some(())
        });
        assert!(
            up.is_some(),
            "{} RPC at {rpc} never answered:\n{}",
            self.name,
            self.log_text()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent is running").id()
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL the agent");
            c.wait().expect("reap the agent");
        }
    }

    /// Sends a signal (e.g. SIGTERM) by PID.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a valid pid");
        rustix::process::kill_process(pid, sig).expect("signal the agent");
    }

    /// Stops the agent gracefully (SIGTERM: it leaves the cluster) and waits at most 20 s
    /// for it to exit 0.
    pub fn stop_gracefully(&mut self) {
        self.signal(rustix::process::Signal::TERM);
        let status = self.wait_exit(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not exit 0 after SIGTERM ({status:?}):\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits at most `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_for(timeout, || self.try_exit());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().expect("poll the agent")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exit().is_none()
    }

    /// Runs `rumor ARGS --rpc-addr <this agent's RPC>`, where the agent runs.
    pub fn client(&self, args: &[&str]) -> Output {
        let mut cmd = self.place.command();
        cmd.args(args).args(["--rpc-addr", &self.rpc.to_string()]);
        cmd.stdin(Stdio::null()).output().expect("run rumor")
    }

    /// `rumor members --format json`, parsed; `None` if the call failed.
    pub fn members(&self) -> Option<Vec<Member>> {
        let out = self.client(&["members", "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        Some(parse_members(&out.stdout))
    }

    /// The status this agent gives `name`, if it knows it.
    pub fn status_of(&self, name: &str) -> Option<String> {
        self.members()?
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.status)
    }

    /// `rumor info --format json`, parsed.
    pub fn info(&self) -> Value {
        let out = self.client(&["info", "--format", "json"]);
        assert!(
            out.status.success(),
            "info failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("info is JSON")
    }

    /// `rumor keys ARGS`, which must succeed; its output.
    pub fn keys(&self, args: &[&str]) -> String {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        let out = self.client(&all);
        assert!(
            out.status.success(),
            "{}: rumor {all:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("keys output is UTF-8")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Parses `rumor members --format json`: Serf's shape, `{"members": [...]}` (a bare
/// array, as older rumor printed, is accepted too).
pub fn parse_members(json: &[u8]) -> Vec<Member> {
    let v: Value = serde_json::from_slice(json).expect("members output is JSON");
    v.get("members")
        .unwrap_or(&v)
        .as_array()
        .expect("a JSON array of members")
        .iter()
        .map(|m| Member {
            name: m["name"].as_str().expect("name").to_owned(),
            addr: m["addr"].as_str().expect("addr").to_owned(),
            status: m["status"].as_str().expect("status").to_owned(),
            tags: m["tags"]
                .as_object()
                .expect("tags object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("tag value").to_owned()))
                .collect(),
        })
        .collect()
}

/// Every agent's view as sorted `(name, addr, status)` triples.
pub fn views(agents: &[&Agent]) -> Vec<Option<Vec<(String, String, String)>>> {
    agents
        .iter()
        .map(|a| {
            a.members().map(|ms| {
                let mut v: Vec<_> = ms.into_iter().map(|m| (m.name, m.addr, m.status)).collect();
                v.sort();
                v
            })
        })
        .collect()
}

/// Waits until every agent sees exactly `agents`, all alive; panics with every view and
/// the logs if that does not happen within `timeout`. Returns the agreed view.
pub fn agree(agents: &[&Agent], timeout: Duration) -> Vec<(String, String, String)> {
    let agreed = wait_for(timeout, || {
        let v = views(agents);
        let first = v[0].clone()?;
        (first.len() == agents.len()
            && first.iter().all(|(_, _, s)| s == "alive")
            && v.iter().all(|x| x.as_ref() == Some(&first)))
        .then_some(first)
    });
    agreed.unwrap_or_else(|| {
        let logs: Vec<String> = agents
            .iter()
            .map(|a| format!("--- log of {}:\n{}", a.name, a.log_text()))
            .collect();
        panic!("no agreement: {:?}\n{}", views(agents), logs.join("\n"))
    })
}

/// A new key from `rumor keygen`.
pub fn keygen() -> String {
    let out = Command::new(RUMOR)
        .arg("keygen")
        .output()
        .expect("run rumor keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// Waits until every agent in `observers` gives `name` the status `want`; panics with
/// every view and log if that does not happen within `timeout`.
pub fn expect_status(observers: &[&Agent], name: &str, want: &str, timeout: Duration) {
    let ok = wait_for(timeout, || {
        observers
            .iter()
            .all(|a| a.status_of(name).as_deref() == Some(want))
            .then_some(())
    });
    if ok.is_none() {
        let views: Vec<String> = observers
            .iter()
            .map(|a| {
                format!(
                    "{} sees {name} as {:?}\n--- log of {}:\n{}",
                    a.name,
                    a.status_of(name),
                    a.name,
                    a.log_text()
                )
            })
            .collect();
        panic!(
            "not every agent saw {name} {want} within {timeout:?}:\n{}",
            views.join("\n")
        );
    }
}

/// A keyring file, parsed as JSON; panics unless only its owner may read it (mode 0600).
pub fn keyring_json(path: &Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    serde_json::from_slice(&std::fs::read(path).expect("read the keyring file"))
        .expect("the keyring file is JSON")
}

/// Checks that a `rumor` command failed the way every verb fails: exit 1 and one line
/// `error: ...` on stderr; returns that line.
pub fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "status {:?}", out.status);
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// `--join ADDR` for each seed.
pub fn join_args(seeds: &[&Agent]) -> Vec<String> {
    seeds
        .iter()
        .flat_map(|s| ["--join".to_owned(), s.gossip.to_string()])
        .collect()
}

/// Turns `&str`s into owned arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}
