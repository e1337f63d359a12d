//! A rolling key rotation on a live cluster of real `rumor agent` processes: install the
//! new key everywhere, use it everywhere, remove the old one everywhere, all with
//! `rumor keys`, while user events flow and the membership is watched. No member is ever
//! seen anything but alive, every event reaches every agent's handler, no datagram is
//! refused; then an agent restarted with only its keyring file rejoins, and an agent with
//! the old key cannot.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::garbage::counter;
use common::watch::keeps_alive;
use common::{Agent, agree, args, expect_status, join_args, keygen, wait_for};
use rustix::process::Signal;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// Pause between two phases of the rotation, so each phase has reached every agent's
/// traffic before the next starts (as an operator's rollout would).
const PHASE_GAP: Duration = Duration::from_secs(2);

/// Where `name` keeps its keyring, and where its handler writes the events it got.
fn keyring_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.keyring.json"))
}

fn events_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.ticks"))
}

/// The flags of one member: keys from its keyring file, and a `user:tick` handler that
/// appends each payload to its own file.
fn member_args(dir: &Path, name: &str, encrypt: Option<&str>, seeds: &[&Agent]) -> Vec<String> {
    let handler = format!(
        r#"user:tick=echo "$(cat)" >> {}"#,
        events_path(dir, name).display()
    );
    let keyring = keyring_path(dir, name).display().to_string();
    let mut v = args(&["--keyring-file", &keyring, "--event-handler", &handler]);
    if let Some(k) = encrypt {
        v.extend(args(&["--encrypt", k]));
    }
    v.extend(join_args(seeds));
    v
}

/// The payloads an agent's handler received, with how many times each.
fn received(dir: &Path, name: &str) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(events_path(dir, name)).unwrap_or_default();
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        *seen.entry(line.to_owned()).or_default() += 1;
    }
    seen
}

/// The keyring file's keys: (primary, secondary).
fn keyring_file(dir: &Path, name: &str) -> (String, Vec<String>) {
    let path = keyring_path(dir, name);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let secondary = v["secondary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    (v["primary"].as_str().unwrap().to_owned(), secondary)
}

/// Runs one phase of the rotation (`--install`, `--use` or `--remove` of `key`) on every
/// agent, one after the other, and checks each saved it.
fn on_every_agent(agents: &[&Agent], op: &str, key: &str) {
    for a in agents {
        let out = a.keys(&[op, key]);
        assert!(out.contains("saved to"), "{}: {out}", a.name);
    }
    std::thread::sleep(PHASE_GAP);
}

#[test]
fn encrypt_rolling_rotation_loses_no_member_or_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old, new) = (keygen(), keygen());
    let a = Agent::on_loopback(d, "a", &member_args(d, "a", Some(&old), &[]));
    let b = Agent::on_loopback(d, "b", &member_args(d, "b", Some(&old), &[&a]));
    let mut c = Agent::on_loopback(d, "c", &member_args(d, "c", Some(&old), &[&a]));
    agree(&[&a, &b, &c], Duration::from_secs(30));

    // Events from each agent in turn, one per poll of the watch, during the whole rotation.
    let mut sent: Vec<String> = Vec::new();
    let senders = [&a, &b, &c];
    let mut send = || {
        let n = sent.len();
        let payload = format!("tick-{n}");
        let out = senders[n % 3].client(&["event", "tick", &payload]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sent.push(payload);
    };
    let agents = [&a, &b, &c];
    keeps_alive(
        &agents,
        &NAMES,
        &[],
        || {
            std::thread::sleep(PHASE_GAP);
            on_every_agent(&agents, "--install", &new);
            on_every_agent(&agents, "--use", &new);
            on_every_agent(&agents, "--remove", &old);
        },
        &mut send,
    );
    // One event per poll of the watch: how many depends on how fast the machine polls.
    assert!(sent.len() >= 5, "only {} events sent", sent.len());
    eprintln!("{} user events sent during the rotation", sent.len());

    // Every event reached every handler exactly once.
    let want: BTreeMap<String, usize> = sent.iter().map(|p| (p.clone(), 1)).collect();
    for name in NAMES {
        let got = wait_for(Duration::from_secs(30), || {
            (received(d, name) == want).then_some(())
        });
        assert!(
            got.is_some(),
            "{name} got {:?}, want {} events",
            received(d, name),
            want.len()
        );
    }
    // Nothing was refused, and only the new key is left, in memory and on disk.
    for agent in agents {
        let info = agent.info();
        assert_eq!(
            counter(&info, "dropped_unauthenticated"),
            0,
            "{}",
            agent.name
        );
        assert_eq!(
            agent.keys(&["--list"]),
            format!("{new} (primary)\nplaintext: refuse\n")
        );
        assert_eq!(keyring_file(d, &agent.name), (new.clone(), vec![]));
    }

    // c restarts with only its keyring file (no --encrypt) and rejoins.
    c.signal(Signal::TERM);
    assert!(
        c.wait_exit(Duration::from_secs(20))
            .expect("c exits")
            .success()
    );
    expect_status(&[&a, &b], "c", "left", Duration::from_secs(30));
    c.restart(&member_args(d, "c", None, &[&a]));
    agree(&[&a, &b, &c], Duration::from_secs(30));
    assert!(c.log_text().contains("keyring file loaded"));

    // An agent that still has only the old key cannot get in.
    let refused_before = counter(&a.info(), "dropped_unauthenticated");
    let mut stale_args = args(&["--encrypt", &old]);
    stale_args.extend(join_args(&[&a]));
    let stale = Agent::on_loopback(d, "stale", &stale_args);
    let refused = wait_for(Duration::from_secs(20), || {
        (counter(&a.info(), "dropped_unauthenticated") > refused_before).then_some(())
    });
    assert!(refused.is_some(), "a never refused the old key");
    assert_eq!(stale.members().map(|m| m.len()), Some(1));
    agree(&[&a, &b, &c], Duration::from_secs(5));
}
