//! A Serf user switches by changing one word: the HAProxy lab's Serf command lines, run
//! as they are with `rumor` in place of `serf` (on loopback), make the balancer's handlers
//! see the web node join and leave; `-replay` hands the buffered user events to a joining
//! node's handler; Serf's flags rumor cannot honour are refused in one line.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{RUMOR, free_ports, loopback_ip, one_line_error, wait_for};

/// A `rumor` process started with exactly the given arguments, killed (by PID) when
/// dropped.
struct Proc {
    name: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Runs `rumor ARGS...` with its output in `dir/NAME.log`.
    fn start(dir: &Path, name: &str, args: &[String]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the log");
        let child = Command::new(RUMOR)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn rumor");
        Proc {
            name: name.to_owned(),
            log,
            child: Some(child),
        }
    }

    /// The process's output so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT (a graceful leave, as the lab's run script sends), then waits at most 20 s
    /// for exit 0.
    fn interrupt(&mut self) {
        let child = self.child.as_mut().expect("running");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a valid pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("signal");
        let status = wait_for(Duration::from_secs(20), || {
            child.try_wait().expect("poll the agent")
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not exit 0 after SIGINT ({status:?}):\n{}",
            self.name,
            self.log_text()
        );
        self.child = None;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A gossip and an RPC address on a fresh loopback IP.
fn addrs() -> (SocketAddr, SocketAddr) {
    let ip = loopback_ip();
    let (g, r) = free_ports(ip);
    (SocketAddr::from((ip, g)), SocketAddr::from((ip, r)))
}

/// A handler script that appends `event=$SERF_EVENT` and its stdin to `out`.
fn recorder(dir: &Path, name: &str, out: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\n{{ echo \"event=$SERF_EVENT\"; cat; echo; }} >> '{}'\n",
        out.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Waits at most `secs` for `file` to hold `needle`.
fn wait_file(file: &Path, needle: &str, secs: u64) -> bool {
    wait_for(Duration::from_secs(secs), || {
        std::fs::read_to_string(file)
            .ok()
            .filter(|t| t.contains(needle))
            .map(|_| ())
    })
    .is_some()
}

/// `rumor ARGS...` run to completion.
fn rumor(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(RUMOR)
        .args(args)
        .env_remove("RUMOR_RPC_ADDR")
        .env_remove("RUMOR_RPC_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run rumor")
}

/// Waits until the agent at `rpc` answers `members` and lists `name` (through
/// `SERF_RPC_ADDR`, Serf's variable), without reading the output's shape beyond the name.
fn wait_member(rpc: SocketAddr, name: &str) -> bool {
    let rpc = rpc.to_string();
    wait_for(Duration::from_secs(20), || {
        let out = rumor(&["members"], &[("SERF_RPC_ADDR", &rpc)]);
        (out.status.success() && String::from_utf8_lossy(&out.stdout).contains(name)).then_some(())
    })
    .is_some()
}

#[test]
fn the_lab_command_lines_run_unchanged_and_replay_delivers_buffered_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let joins = d.join("joins.txt");
    let leaves = d.join("leaves.txt");
    let join_sh = recorder(d, "member-join.sh", &joins);
    let leave_sh = recorder(d, "member-leave.sh", &leaves);

    // The balancer: the lab's line, plus Serf-style addresses, joining itself.
    let (ha_gossip, ha_rpc) = addrs();
    let ha_line: Vec<String> = [
        "agent".to_owned(),
        "-node=ha".to_owned(),
        format!("-bind={ha_gossip}"),
        format!("-rpc-addr={ha_rpc}"),
        "--join".to_owned(),
        ha_gossip.to_string(),
        "--replay".to_owned(),
        "--event-handler".to_owned(),
        format!("member-join={}", join_sh.display()),
        "--event-handler".to_owned(),
        format!("member-leave,member-failed={}", leave_sh.display()),
        "--tag".to_owned(),
        "role=balancer".to_owned(),
    ]
    .to_vec();
    let _ha = Proc::start(d, "ha", &ha_line);
    assert!(
        wait_member(ha_rpc, "ha"),
        "ha never answered:\n{}",
        _ha.log_text()
    );

    // A web node in Serf's single-dash style, both value spellings.
    let (web_gossip, web_rpc) = addrs();
    let mut web = Proc::start(
        d,
        "web1",
        &[
            "agent".to_owned(),
            "-node".to_owned(),
            "web1".to_owned(),
            format!("-bind={web_gossip}"),
            "-rpc-addr".to_owned(),
            web_rpc.to_string(),
            format!("-join={ha_gossip}"),
            "-tag".to_owned(),
            "role=backend".to_owned(),
        ],
    );
    assert!(
        wait_file(&joins, "web1", 30),
        "ha's member-join handler never saw web1:\nha:\n{}\nweb1:\n{}",
        _ha.log_text(),
        web.log_text()
    );
    let seen = std::fs::read_to_string(&joins).unwrap();
    assert!(seen.contains("event=member-join"), "{seen}");
    assert!(
        seen.contains("role=backend") || seen.contains("\tbackend"),
        "{seen}"
    );

    // A user event, sent Serf-style through Serf's variables, then two late joiners:
    // with -replay the buffered event reaches the handler, without it it does not.
    let ha_rpc_text = ha_rpc.to_string();
    let out = rumor(
        &["event", "deploy", "v2"],
        &[("SERF_RPC_ADDR", &ha_rpc_text)],
    );
    assert!(out.status.success(), "{out:?}");
    let late = |name: &str, replay: bool, out: &Path| {
        let user_sh = recorder(d, &format!("{name}-user.sh"), out);
        let (g, r) = addrs();
        let mut line = vec![
            "agent".to_owned(),
            format!("-node={name}"),
            format!("-bind={g}"),
            format!("-rpc-addr={r}"),
            format!("-join={ha_gossip}"),
            format!("-event-handler=user={}", user_sh.display()),
        ];
        if replay {
            line.push("-replay".to_owned());
        } else {
            line.push("-replay=false".to_owned());
        }
        (Proc::start(d, name, &line), r)
    };
    let replayed = d.join("replayed.txt");
    let ignored = d.join("ignored.txt");
    let (with, with_rpc) = late("web2", true, &replayed);
    let (without, without_rpc) = late("web3", false, &ignored);
    assert!(wait_member(with_rpc, "ha"), "{}", with.log_text());
    assert!(wait_member(without_rpc, "ha"), "{}", without.log_text());
    // The payload, not just the event line: the handler writes them one after the other.
    assert!(
        wait_file(&replayed, "v2", 20),
        "-replay did not deliver the buffered event:\n{:?}\n{}",
        std::fs::read_to_string(&replayed),
        with.log_text()
    );
    let text = std::fs::read_to_string(&replayed).unwrap();
    assert!(text.contains("event=user"), "{text}");
    // Handlers coalesce user events for up to 3 s: wait longer than that for a wrong one.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !ignored.exists(),
        "without -replay, history was delivered: {:?}",
        std::fs::read_to_string(&ignored)
    );

    // The lab's stop: SIGINT makes web1 leave, and ha's member-leave handler sees it.
    web.interrupt();
    assert!(
        wait_file(&leaves, "web1", 30),
        "ha's member-leave handler never saw web1 leave:\n{}",
        _ha.log_text()
    );
    let seen = std::fs::read_to_string(&leaves).unwrap();
    assert!(seen.contains("event=member-leave"), "{seen}");
}

#[test]
fn serf_flags_rumor_cannot_honour_are_refused_in_one_line() {
    for line in [
        &["agent", "-node=x", "-discover=web"][..],
        &["agent", "-node=x", "-syslog"],
        &["agent", "-node=x", "-protocol=4"],
        &["agent", "-node=x", "-tags-file", "/tmp/tags.json"],
        &["agent", "-node=x", "-retry-max=3"],
    ] {
        let err = one_line_error(&rumor(line, &[]));
        assert!(err.contains("not supported"), "{line:?}: {err}");
    }
    // A Serf JSON config with a key rumor does not know: the key and the file are named.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serf.json");
    std::fs::write(&file, r#"{"node_name": "x", "statsite_prefix": "serf"}"#).unwrap();
    let err = one_line_error(&rumor(
        &["agent", &format!("-config-file={}", file.display())],
        &[],
    ));
    assert!(
        err.contains("statsite_prefix") && err.contains("serf.json"),
        "{err}"
    );
    // Not a Go boolean: a usage error (exit 2), as Go's flag package.
    let out = rumor(&["agent", "-replay=maybe"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_serf_config_dir_and_serf_variables_drive_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("serf.d");
    std::fs::create_dir(&conf).unwrap();
    let (gossip, rpc) = addrs();
    std::fs::write(
        conf.join("10-base.json"),
        format!(
            r#"{{"node_name": "base", "bind": "{gossip}", "rpc_addr": "{rpc}",
                "rpc_auth": "s3cret", "tags": {{"role": "backend"}},
                "leave_on_terminate": true}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("20-node.json"),
        r#"{"node_name": "web9", "tags": {"port": "3000"}}"#,
    )
    .unwrap();
    let _agent = Proc::start(
        dir.path(),
        "web9",
        &[
            "agent".to_owned(),
            format!("-config-dir={}", conf.display()),
        ],
    );
    let rpc_text = rpc.to_string();
    // SERF_RPC_AUTH is the token; rumor's own variables win when both are set.
    let listed = wait_for(Duration::from_secs(20), || {
        let out = rumor(
            &["members"],
            &[("SERF_RPC_ADDR", &rpc_text), ("SERF_RPC_AUTH", "s3cret")],
        );
        out.status.success().then_some(out)
    })
    .unwrap_or_else(|| panic!("no answer:\n{}", _agent.log_text()));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("web9"), "{text}");
    let out = rumor(
        &["members"],
        &[
            ("SERF_RPC_ADDR", &rpc_text),
            ("SERF_RPC_AUTH", "s3cret"),
            ("RUMOR_RPC_TOKEN", "wrong"),
        ],
    );
    assert!(!out.status.success(), "rumor's token should win: {out:?}");
    let out = rumor(
        &["members", "-rpc-auth=s3cret", "-rpc-addr", &rpc_text],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
}
