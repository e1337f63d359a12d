//! Files two agents must not share: a second agent given the snapshot, the keyring file or
//! a render destination that a running agent holds refuses to start, with one line naming
//! the file and the holder; once the first agent is gone, the second starts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Agent, args, wait_for};

/// Runs `rumor agent FLAGS` on fresh loopback ports until it exits (at most 20 s, then it
/// is killed): its exit status and output.
fn run_agent(flags: &[String]) -> (Option<i32>, String) {
    let ip = common::loopback_ip();
    let (gossip, rpc) = common::free_ports(ip);
    let mut child = Command::new(common::RUMOR)
        .args(["agent", "--node", "second"])
        .args(["--bind", &format!("{ip}:{gossip}")])
        .args(["--rpc-addr", &format!("{ip}:{rpc}")])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rumor agent");
    let exited = wait_for(Duration::from_secs(20), || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("reap rumor agent");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (exited.and_then(|s| s.code()), text)
}

/// Starts an agent with `flags`, then a second one with the same flags: it must exit 1 at
/// once with one line about `what` in use by the first's PID; once the first has left,
/// the second starts.
fn second_agent_refused(dir: &Path, flags: &[String], what: &str) {
    let mut first = Agent::on_loopback(dir, "first", flags);
    let (code, output) = run_agent(flags);
    assert_eq!(code, Some(1), "the second agent was not refused:\n{output}");
    let line = format!("is in use by another rumor agent (pid {})", first.pid());
    assert!(
        output.contains(what) && output.contains(&line) && output.lines().count() == 1,
        "not one line about `{what} ... {line}`:\n{output}"
    );
    first.stop_gracefully();
    let mut second = Agent::on_loopback(dir, "second", flags);
    assert!(
        wait_for(Duration::from_secs(20), || second.members()).is_some(),
        "the second agent did not start once the first was gone:\n{}",
        second.log_text()
    );
    second.stop_gracefully();
}

#[test]
fn a_snapshot_is_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot.json").display().to_string();
    second_agent_refused(dir.path(), &args(&["--snapshot", &snapshot]), "snapshot");
}

#[test]
fn a_keyring_file_is_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring.json").display().to_string();
    let key = common::keygen();
    let flags = args(&["--encrypt", &key, "--keyring-file", &keyring]);
    second_agent_refused(dir.path(), &flags, "keyring file");
}

#[test]
fn a_render_destination_is_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rumor.toml");
    let dest = dir.path().join("members.json");
    std::fs::write(
        &config,
        format!(
            "[[render]]\nrenderer = \"json\"\ndest = \"{}\"\n",
            dest.display()
        ),
    )
    .unwrap();
    let flags = args(&["--config", &config.display().to_string()]);
    second_agent_refused(dir.path(), &flags, "render destination");
}
