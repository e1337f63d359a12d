//! The `rumor` command's contract: bad flags exit 2, errors are one line and exit 1, the
//! config file works and flags override it, and `rumor demo` runs to a summary (with a
//! real HAProxy following the cluster when one is installed).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Agent, RUMOR, args, free_ports, loopback_ip, one_line_error, wait_for};

fn rumor(a: &[&str]) -> Output {
    Command::new(RUMOR).args(a).output().expect("run rumor")
}

#[test]
fn bad_flags_exit_2() {
    for a in [
        &["agent", "--no-such-flag"][..],
        &["members", "--format", "yaml"],
        &["members", "--status", "sleeping"],
        &["tags"],
        &["join"],
        &["force-leave"],
        &["agent", "--tag", "novalue"],
        &["agent", "--leave-timeout", "soon"],
        &["demo", "--nodes", "99"],
        &[],
    ] {
        let out = rumor(a);
        assert_eq!(
            out.status.code(),
            Some(2),
            "rumor {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(rumor(&["--help"]).status.success());
    assert!(rumor(&["--version"]).status.success());
}

#[test]
fn errors_are_one_line_with_exit_1() {
    let ip = loopback_ip();
    let (_, free_tcp) = free_ports(ip);
    let rpc = format!("{ip}:{free_tcp}");
    let err = one_line_error(&rumor(&["members", "--rpc-addr", &rpc]));
    assert!(err.contains("cannot reach the rumor agent"), "{err}");
    let err = one_line_error(&rumor(&["agent", "--config", "/nonexistent/rumor.toml"]));
    assert!(err.contains("cannot read config file"), "{err}");
    let err = one_line_error(&rumor(&["agent", "--node", "two words"]));
    assert!(err.contains("--node"), "{err}");
    let err = one_line_error(&rumor(&[
        "agent",
        "--node",
        "x",
        "--event-handler",
        "member-jion=true",
    ]));
    assert!(err.contains("member-jion"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "node = \"x\"\nbindd = \"127.0.0.1\"\n").unwrap();
    let err = one_line_error(&rumor(&["agent", "--config", bad.to_str().unwrap()]));
    assert!(err.contains("line 2") && err.contains("bindd"), "{err}");

    // A busy port: the agent says which and exits 1.
    let taken = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let err = one_line_error(&rumor(&[
        "agent",
        "--node",
        "x",
        "--bind",
        &bind,
        "--rpc-addr",
        &rpc,
        "--log-level",
        "error",
    ]));
    assert!(err.contains("cannot bind UDP"), "{err}");
}

#[test]
fn config_file_sets_everything_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback_ip();
    let (gossip, rpc) = free_ports(ip);
    let config = dir.path().join("rumor.toml");
    std::fs::write(
        &config,
        r#"
node = "from-file"
profile = "local"
leave_timeout = "2s"
log_level = "debug"
[tags]
role = "backend"
port = "3000"
"#,
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let mut a = Agent::start(
        dir.path(),
        "from-flag",
        format!("{ip}:{gossip}").parse().unwrap(),
        format!("{ip}:{rpc}").parse().unwrap(),
        common::Place::Host,
        &args(&["--config", &config_arg, "--tag", "port=8080"]),
    );
    let info = a.info();
    let local = &info["agent"]["local"];
    assert_eq!(local["name"], "from-flag");
    assert_eq!(local["tags"]["role"], "backend");
    assert_eq!(local["tags"]["port"], "8080");
    assert!(a.log_text().contains("profile=Local"), "{}", a.log_text());
    assert!(
        a.log_text().contains("DEBUG"),
        "log level from the file is not applied"
    );
    // `tags` changes them at run time.
    let out = a.client(&["tags", "--set", "zone=b", "--delete", "port"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "tags: role=backend,zone=b"
    );
    // `leave` over RPC stops the agent with exit 0.
    let out = a.client(&["leave"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = a
        .wait_exit(Duration::from_secs(15))
        .expect("the agent stops after leave");
    assert!(status.success());
}

#[test]
fn monitor_streams_events_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    // The monitor writes to a file, so its output can be read while it runs.
    let out_path = dir.path().join("monitor.out");
    let mut monitor = Command::new(RUMOR)
        .args([
            "monitor",
            "--format",
            "json",
            "--rpc-addr",
            &a.rpc.to_string(),
        ])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .spawn()
        .unwrap();
    // A monitor sees only what happens after it subscribed (no replay): make sure it is
    // live, by a user event it reports, before b joins.
    let live = wait_for(Duration::from_secs(20), || {
        if let Some(status) = monitor.try_wait().unwrap() {
            panic!("the monitor exited early ({status})");
        }
        assert!(a.client(&["event", "ready", "ready"]).status.success());
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["event"]["type"] == "user" && l["event"]["name"] == "ready")
            .then_some(())
    });
    assert!(
        live.is_some(),
        "the monitor never reported the ready event:\n{}",
        std::fs::read_to_string(&out_path).unwrap_or_default()
    );
    let b = wait_for(Duration::from_secs(5), || {
        Some(Agent::on_loopback(
            dir.path(),
            "b",
            &common::join_args(&[&a]),
        ))
    })
    .unwrap();
    let out = a.client(&["event", "ping", "hello"]);
    assert!(out.status.success());
    // Stopping the agent ends the stream, so the monitor's output can be read whole.
    assert!(a.client(&["leave"]).status.success());
    let got = wait_for(Duration::from_secs(15), || monitor.try_wait().unwrap())
        .expect("monitor ends with the agent");
    assert!(got.success());
    let text = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |f: &dyn Fn(&serde_json::Value) -> bool| lines.iter().any(f);
    assert!(
        has(&|l| l["event"]["type"] == "member-join" && l["event"]["member"]["name"] == "b"),
        "{text}"
    );
    assert!(
        has(&|l| l["event"]["type"] == "user" && l["event"]["payload"] == "hello"),
        "{text}"
    );
    assert!(has(&|l| l["event"]["type"] == "leave-complete"), "{text}");
    assert!(has(&|l| l["log"]["level"] == "INFO"), "{text}");
    drop(b);
}

/// Runs `rumor demo --nodes 4` with `extra` flags; its stdout, after checking it exited 0
/// with the membership summary.
fn demo(extra: &[&str]) -> String {
    let out = Command::new(RUMOR)
        .args(["demo", "--nodes", "4"])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("converged in"), "{text}");
    assert!(
        text.contains("crash of node-4  marked failed by 3/3 survivors"),
        "{text}"
    );
    assert!(
        text.contains("leave of node-3  marked left by 2/2 survivors"),
        "{text}"
    );
    text
}

#[test]
fn demo_runs_to_its_summary() {
    let text = demo(&["--no-haproxy"]);
    assert!(text.contains("apt-get install haproxy"), "{text}");
    // The rendered backend follows the join, the crash and the leave.
    assert!(text.contains("rendered by node-1 into"), "{text}");
    for change in [
        "+ server node-4 127.0.0.1:",
        "- server node-4 127.0.0.1:",
        "- server node-3 127.0.0.1:",
    ] {
        assert!(text.contains(change), "{change}: {text}");
    }
    assert!(!text.contains("requests through HAProxy"), "{text}");
}

/// With HAProxy installed (scripts/test installs it), the demo runs one and counts the
/// requests through it; none fails while a node leaves gracefully.
#[test]
fn demo_shows_haproxy_following_the_cluster() {
    let installed = Command::new("haproxy").arg("-v").output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
        "haproxy is not installed: run `apt-get install -y haproxy` (scripts/test does)"
    );
    let text = demo(&[]);
    assert!(
        text.contains("HAProxy (master-worker, runtime API) listens on http://127."),
        "{text}"
    );
    assert!(
        text.contains("    retry-on conn-failure empty-response"),
        "{text}"
    );
    assert!(text.contains("+ server node-4 127.0.0.1:"), "{text}");
    assert!(
        text.contains("phase              answered failed retried"),
        "{text}"
    );
    // Each row: phase name, answered, failed, retried, answers per backend.
    let row = |phase: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("  {phase} ")) && !l.contains('"'))
            .unwrap_or_else(|| panic!("no row for {phase}: {text}"));
        line[2 + phase.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    for phase in [
        "2 backends",
        "node-4 joins",
        "node-4 crashes",
        "node-3 leaves",
    ] {
        let r = row(phase);
        assert!(r[0].parse::<u64>().unwrap() > 0, "{phase} answered: {text}");
    }
    assert!(row("node-4 joins").contains(&"node-4".to_owned()), "{text}");
    assert_eq!(
        row("node-3 leaves")[1],
        "0",
        "failed during the leave: {text}"
    );
}

#[test]
fn join_verb_joins_and_reports_a_silent_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    let b = Agent::on_loopback(dir.path(), "b", &[]);
    let out = a.client(&["join", &b.gossip.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert_eq!(said.trim(), format!("joined the cluster via {}", b.gossip));
    common::expect_status(&[&b], "a", "alive", Duration::from_secs(20));
    // Nobody listens at this loopback address: an error after the wait, exit 1.
    let silent = loopback_ip();
    let (port, _) = free_ports(silent);
    let err = one_line_error(&a.client(&["join", "--wait", "500ms", &format!("{silent}:{port}")]));
    assert!(err.contains("no seed answered within 500ms"), "{err}");
}

#[test]
fn encrypt_key_errors_are_one_line_and_never_echo_the_key() {
    let short = "c2hvcnQga2V5IG9mIDE2IGI="; // 17 bytes
    let err = one_line_error(&rumor(&["agent", "--node", "x", "--encrypt", short]));
    assert!(
        err.contains("--encrypt: the key is 17 bytes") && !err.contains(short),
        "{err}"
    );
    let err = one_line_error(&rumor(&["agent", "--node", "x", "--encrypt", "%%%"]));
    assert!(err.contains("not valid base64"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("keyring.json");
    let missing = missing.to_str().unwrap();
    let err = one_line_error(&rumor(&["agent", "--node", "x", "--keyring-file", missing]));
    assert!(err.contains("does not exist; pass --encrypt"), "{err}");
    let k = common::keygen();
    assert_eq!(k.len(), 44);
    assert_ne!(k, common::keygen());

    // Keys commands against an agent without encryption, and bad keys given to them.
    let plain = Agent::on_loopback(dir.path(), "plain", &[]);
    let err = one_line_error(&plain.client(&["keys", "--list"]));
    assert!(err.contains("encryption is off"), "{err}");
    let err = one_line_error(&plain.client(&["keys", "--install", short]));
    assert!(err.contains("--install: the key is 17 bytes"), "{err}");

    // The core's refusals, each one line.
    let keyring = dir.path().join("k.keyring.json");
    let keyed = Agent::on_loopback(
        dir.path(),
        "keyed",
        &args(&["--encrypt", &k, "--keyring-file", keyring.to_str().unwrap()]),
    );
    let other = common::keygen();
    let err = one_line_error(&keyed.client(&["keys", "--remove", &k]));
    assert!(err.contains("the primary key cannot be removed"), "{err}");
    let err = one_line_error(&keyed.client(&["keys", "--use", &other]));
    assert!(err.contains("the key is not installed"), "{err}");
    for _ in 0..3 {
        keyed.keys(&["--install", &common::keygen()]);
    }
    let err = one_line_error(&keyed.client(&["keys", "--install", &other]));
    assert!(err.contains("already holds 4 keys"), "{err}");
    let list = keyed.keys(&["--list"]);
    assert_eq!(list.lines().count(), 5, "4 keys and the policy: {list}");
    assert_eq!(list.lines().next(), Some(format!("{k} (primary)").as_str()));
    assert_eq!(list.lines().last(), Some("plaintext: refuse"));
    let info = String::from_utf8(keyed.client(&["info"]).stdout).unwrap();
    assert!(info.contains("encryption = on (4 keys)"), "{info}");
    assert!(!keyed.log_text().contains(&k) && !keyed.log_text().contains(&other));
}
