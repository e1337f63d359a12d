//! `rumor agent` processes (package `rumor-std`, binary `rumor`, on the kernel's network
//! stack) inside a test's network namespace: their member lists through
//! `rumor members --format json`, their events through `rumor monitor --format json`.
//!
//! The binary is `$RUMOR_BIN` when set; otherwise the test builds it from this workspace
//! with cargo (same target directory and profile as the test, so a workspace test run has
//! already built it and this only checks that it is fresh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::Netns;
use super::{Transcript, poll_until, run_bounded};

/// The `rumor` binary: `$RUMOR_BIN`, or built by cargo from this workspace.
pub(crate) fn rumor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RUMOR_BIN") {
            return PathBuf::from(bin);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "rumor-std", "--bin", "rumor"])
            .args(["--message-format", "json-render-diagnostics"])
            .current_dir(workspace)
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let out = build.output().expect("run cargo to build rumor");
        assert!(out.status.success(), "rumor-std does not build");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "rumor")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no rumor executable")
    })
}

/// One member as an agent lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) status: String,
}

/// A `rumor agent` in a namespace, killed (SIGKILL, by PID) when dropped, with its monitor
/// if one was started. Its log (stderr) goes to a file, shown when a test fails.
#[derive(Debug)]
pub(crate) struct Agent {
    name: String,
    netns: String,
    rpc: String,
    log: PathBuf,
    child: Option<Child>,
    monitor: Option<(Child, Transcript)>,
}

impl Agent {
    /// Starts `rumor agent --node NAME --bind BIND --rpc-addr RPC --profile lan` in `ns`,
    /// joining through `seeds`, logging to `log`. The `lan` profile is the boards'
    /// `Config::lan()`.
    pub(crate) fn start(
        ns: &Netns,
        name: &str,
        bind: &str,
        rpc: &str,
        seeds: &[String],
        log: PathBuf,
    ) -> Agent {
        let mut command = ns.command(rumor_bin());
        command.args(["agent", "--node", name, "--bind", bind, "--rpc-addr", rpc]);
        command.args(["--profile", "lan", "--log-level", "debug"]);
        for s in seeds {
            command.args(["--join", s]);
        }
        let file = std::fs::File::create(&log).expect("create the agent's log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start rumor agent");
        Agent {
            name: name.to_owned(),
            netns: ns.name().to_owned(),
            rpc: rpc.to_owned(),
            log,
            child: Some(child),
            monitor: None,
        }
    }

    /// A client command (`rumor VERB ARGS --rpc-addr RPC`) in the agent's namespace.
    fn client(&self, verb: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns])
            .arg(rumor_bin())
            .arg(verb)
            .args(args)
            .args(["--rpc-addr", &self.rpc]);
        command
    }

    /// Starts streaming the agent's events (`rumor monitor --format json`), and makes sure
    /// the stream is live: sends a user event `NAME-watching` through the agent and waits
    /// (5 s at most) for the monitor to report it. Returns the event's name.
    pub(crate) fn watch(&mut self) -> String {
        let mut command = self.client("monitor", &["--format", "json", "--log-level", "error"]);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rumor monitor");
        let stream = Transcript::collect(child.stdout.take().expect("piped stdout"));
        self.monitor = Some((child, stream));
        let event = format!("{}-watching", self.name);
        let live = poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
            let sent = run_bounded(self.client("event", &[&event]), Duration::from_secs(5));
            assert!(
                sent.is_some_and(|o| o.status.success()),
                "rumor event failed"
            );
            poll_until(
                Duration::from_millis(500),
                Duration::from_millis(20),
                || self.event_at("user", &event),
            )
        });
        assert!(live.is_some(), "{}'s monitor reports no events", self.name);
        event
    }

    /// Sends a user event `name` to the cluster through the agent (`rumor event NAME`);
    /// false when the agent refused it or did not answer within 5 s.
    pub(crate) fn send_event(&self, name: &str) -> bool {
        let sent = run_bounded(self.client("event", &[name]), Duration::from_secs(5));
        sent.is_some_and(|o| o.status.success())
    }

    /// When the agent's monitor first reported an event of type `kind` (`member-failed`,
    /// `member-leave`, `user`, ...) about the member or user event `name`.
    pub(crate) fn event_at(&self, kind: &str, name: &str) -> Option<Instant> {
        let (_, stream) = self.monitor.as_ref()?;
        let (at, _) = stream.find(0, |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|v| {
                let e = &v["event"];
                e["type"] == kind && (e["member"]["name"] == name || e["name"] == name)
            })
        })?;
        Some(at)
    }

    /// The agent's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `rumor members --format json` through the agent's RPC; `None` when it does not
    /// answer within 5 s.
    pub(crate) fn members(&self) -> Option<Vec<Member>> {
        let command = self.client("members", &["--format", "json"]);
        let out = run_bounded(command, Duration::from_secs(5))?;
        if !out.status.success() {
            return None;
        }
        let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
        // Serf's shape, `{"members": [...]}`; a bare array from an older rumor too.
        doc.get("members")
            .unwrap_or(&doc)
            .as_array()?
            .iter()
            .map(|m| {
                Some(Member {
                    name: m["name"].as_str()?.to_owned(),
                    addr: m["addr"].as_str()?.to_owned(),
                    status: m["status"].as_str()?.to_owned(),
                })
            })
            .collect()
    }

    /// The agent's view: member name to status; `None` when it does not answer.
    pub(crate) fn view(&self) -> Option<BTreeMap<String, String>> {
        let members = self.members()?;
        Some(members.into_iter().map(|m| (m.name, m.status)).collect())
    }

    /// Kills the agent (and its monitor) at once.
    pub(crate) fn stop(&mut self) {
        if let Some((mut child, mut stream)) = self.monitor.take() {
            let _ = child.kill();
            let _ = child.wait();
            stream.finish();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The agent's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
