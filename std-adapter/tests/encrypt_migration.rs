//! Turning encryption on in a running plaintext cluster of real `rumor agent` processes on
//! loopback, with no split (docs/OPERATIONS.md): three plaintext agents are restarted one
//! by one with a key and `--plaintext send` (step 1), then switched to `accept` (step 2)
//! and to `refuse` (step 3) with `rumor keys --plaintext`. Nothing is dropped as plaintext
//! or unauthenticated on the way, nobody counts a failure, and during steps 2 and 3 no
//! member is ever seen anything but alive; an agent restarted between steps 2 and 3 keeps
//! `accept` from its keyring file; at the end an agent without the key cannot join.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::garbage::counter;
use common::watch::keeps_alive;
use common::{Agent, agree, args, expect_status, join_args, keygen, keyring_json, wait_for};
use serde_json::Value;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// Longest wait for the cluster to agree, or for a leave to be seen.
const CONVERGE: Duration = Duration::from_secs(30);
/// Pause between two agents of a step, so the watch sees the mixed states.
const AGENT_GAP: Duration = Duration::from_secs(1);
/// Pause after a step, so it has reached every agent's traffic before the next starts (as
/// an operator's rollout would).
const STEP_GAP: Duration = Duration::from_secs(2);
/// How long the cluster is watched while an agent without the key tries to join.
const OBSERVE: Duration = Duration::from_secs(5);
/// Counters that must stay 0 during the migration: plaintext refused, sealed datagrams
/// that did not open, sealed datagrams reaching an agent without a key.
const QUIET: [&str; 3] = [
    "dropped_plaintext",
    "dropped_unauthenticated",
    "dropped_envelope",
];

fn keyring_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.keyring.json"))
}

/// The other members of the cluster than `cluster[i]`.
fn others(cluster: &[Agent], i: usize) -> Vec<&Agent> {
    cluster
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, a)| a)
        .collect()
}

/// Stops `cluster[i]` gracefully, waits until the others saw it leave, and starts it
/// again (same name and addresses) with its keyring file, `extra` and the others as seeds;
/// then waits until the cluster agrees again.
fn restart(dir: &Path, cluster: &mut [Agent], i: usize, extra: &[&str]) {
    let name = cluster[i].name.clone();
    cluster[i].stop_gracefully();
    expect_status(&others(cluster, i), &name, "left", CONVERGE);
    let keyring = keyring_path(dir, &name).display().to_string();
    let mut v = args(&["--keyring-file", &keyring]);
    v.extend(args(extra));
    v.extend(join_args(&others(cluster, i)));
    cluster[i].restart(&v);
    agree(&cluster.iter().collect::<Vec<_>>(), CONVERGE);
}

/// `rumor keys --plaintext POLICY` on every agent, one after the other; each saved it.
fn step(cluster: &[&Agent], policy: &str) {
    for a in cluster {
        let out = a.keys(&["--plaintext", policy]);
        assert!(
            out.starts_with(&format!("plaintext policy set: {policy} "))
                && out.contains("saved to"),
            "{}: {out}",
            a.name
        );
        std::thread::sleep(AGENT_GAP);
    }
    std::thread::sleep(STEP_GAP);
}

/// The agent's policy, as `rumor keys --list` reports it (its last line) and in JSON.
fn policy(agent: &Agent) -> String {
    let list = agent.keys(&["--list"]);
    let last = list.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(&agent.keys(&["--list", "--format", "json"]))
        .expect("keys --format json is JSON");
    let from_json = json["plaintext"].as_str().expect("a plaintext field");
    assert_eq!(
        last,
        format!("plaintext: {from_json}"),
        "{}: {list}",
        agent.name
    );
    from_json.to_owned()
}

/// The policy in an agent's keyring file; absent means `refuse`.
fn policy_on_disk(dir: &Path, name: &str) -> Option<String> {
    let v = keyring_json(&keyring_path(dir, name));
    v.get("plaintext")
        .map(|p| p.as_str().expect("plaintext is a string").to_owned())
}

/// Fails if any agent dropped a datagram as plaintext or unauthenticated so far.
fn assert_nothing_dropped(cluster: &[&Agent], when: &str) {
    for a in cluster {
        let info = a.info();
        for k in QUIET {
            assert_eq!(
                counter(&info, k),
                0,
                "{} {when}: {k}; {}",
                a.name,
                info["agent"]["protocol"]
            );
        }
    }
}

#[test]
fn encrypt_turned_on_in_a_running_cluster_loses_no_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen();

    // A plaintext cluster.
    let a = Agent::on_loopback(d, "a", &[]);
    let b = Agent::on_loopback(d, "b", &join_args(&[&a]));
    let c = Agent::on_loopback(d, "c", &join_args(&[&a]));
    let mut cluster = vec![a, b, c];
    agree(&cluster.iter().collect::<Vec<_>>(), CONVERGE);

    // Step 1: each agent in turn restarts with the key, still sending plaintext.
    for i in 0..cluster.len() {
        restart(
            d,
            &mut cluster,
            i,
            &["--encrypt", &key, "--plaintext", "send"],
        );
        let me = &cluster[i];
        assert_eq!(policy(me), "send", "{}", me.name);
        assert_eq!(policy_on_disk(d, &me.name).as_deref(), Some("send"));
        assert_eq!(me.info()["agent"]["keys"], 1, "{} has no keyring", me.name);
    }
    let all: Vec<&Agent> = cluster.iter().collect();
    assert_nothing_dropped(&all, "after step 1");

    // Step 2: every agent seals, and still accepts plaintext.
    keeps_alive(&all, &NAMES, &[], || step(&all, "accept"), || {});
    assert_nothing_dropped(&all, "after step 2");
    for a in &all {
        assert_eq!(policy_on_disk(d, &a.name).as_deref(), Some("accept"));
    }

    // An agent restarted now, with only its keyring file, keeps `accept`.
    restart(d, &mut cluster, 1, &[]);
    let all: Vec<&Agent> = cluster.iter().collect();
    assert_eq!(policy(all[1]), "accept");
    assert!(all[1].log_text().contains("keyring file loaded"));
    assert_nothing_dropped(&all, "after a restart at step 2");
    let failures: Vec<u64> = all.iter().map(|a| counter(&a.info(), "failures")).collect();

    // Step 3: encrypted only.
    keeps_alive(&all, &NAMES, &[], || step(&all, "refuse"), || {});
    assert_nothing_dropped(&all, "after step 3");
    agree(&all, CONVERGE);
    for (a, before) in all.iter().zip(&failures) {
        assert_eq!(
            counter(&a.info(), "failures"),
            *before,
            "{} counted a failure",
            a.name
        );
        assert_eq!(policy(a), "refuse");
        let on_disk = policy_on_disk(d, &a.name);
        assert!(
            on_disk.as_deref().is_none_or(|p| p == "refuse"),
            "{}: {on_disk:?}",
            a.name
        );
    }

    // An agent without the key cannot get in: its datagrams are refused as plaintext.
    let outsider = Agent::on_loopback(d, "outsider", &join_args(&all));
    let refused = keeps_alive(
        &all,
        &NAMES,
        &[],
        || {
            let refused = wait_for(CONVERGE, || {
                all.iter()
                    .all(|a| counter(&a.info(), "dropped_plaintext") > 0)
                    .then_some(())
            });
            std::thread::sleep(OBSERVE);
            refused
        },
        || {},
    );
    assert!(
        refused.is_some(),
        "not every agent refused the outsider's plaintext"
    );
    assert_eq!(
        outsider.members().map(|m| m.len()),
        Some(1),
        "the outsider learned a member"
    );
    for a in &all {
        assert_eq!(
            counter(&a.info(), "dropped_unauthenticated"),
            0,
            "{}",
            a.name
        );
    }
}
