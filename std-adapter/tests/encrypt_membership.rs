//! Encrypted clusters of real `rumor agent` processes on loopback refuse outsiders: an
//! agent with the wrong key, and a plaintext agent pushing its own cluster, cannot join or
//! inject a member; a member whose key was revoked, and that therefore declares everyone
//! failed, convinces no one. Every refused datagram is counted in `rumor info` (the wrong
//! key's in `dropped_unauthenticated`, plaintext in `dropped_plaintext`), and no agent ever
//! logs a key.

mod common;

use std::time::Duration;

use common::garbage::counter;
use common::watch::keeps_alive;
use common::{Agent, agree, args, expect_status, join_args, keygen, wait_for};
use serde_json::Value;

const CORE: [&str; 3] = ["a", "b", "c"];
/// Long enough for several join retries and probe rounds of the outsiders.
const OBSERVE: Duration = Duration::from_secs(6);

/// `a` with `key`, then each of `names` with `key` joining `a`.
fn keyed_cluster(dir: &std::path::Path, key: &str, names: &[&str]) -> Vec<Agent> {
    let a = Agent::on_loopback(dir, names[0], &args(&["--encrypt", key]));
    let mut all = vec![];
    for name in &names[1..] {
        let mut v = args(&["--encrypt", key]);
        v.extend(join_args(&[&a]));
        all.push(Agent::on_loopback(dir, name, &v));
    }
    all.insert(0, a);
    all
}

/// Fails if any agent's log holds one of the keys.
fn assert_no_key_logged(agents: &[&Agent], keys: &[&str]) {
    for a in agents {
        let log = a.log_text();
        assert!(
            keys.iter().all(|k| !log.contains(k)),
            "{} logged a key",
            a.name
        );
    }
}

/// Whether a member refused both outsiders: d, whose datagrams do not open with the
/// cluster's key, and e, whose datagrams are plaintext.
fn refused_both(info: &Value) -> bool {
    counter(info, "dropped_unauthenticated") >= 1 && counter(info, "dropped_plaintext") >= 1
}

/// The names an agent lists, sorted.
fn names(agent: &Agent) -> Vec<String> {
    let mut v: Vec<String> = agent
        .members()
        .expect("members")
        .into_iter()
        .map(|m| m.name)
        .collect();
    v.sort();
    v
}

#[test]
fn encrypt_outsiders_cannot_join_inject_members_or_fail_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(), keygen());
    let cluster = keyed_cluster(dir.path(), &k1, &CORE);
    let core: Vec<&Agent> = cluster.iter().collect();
    agree(&core, Duration::from_secs(30));
    let before: Vec<Value> = core.iter().map(|m| m.info()).collect();

    // Outsiders: d has the wrong key; e is plaintext and already in a cluster with x, so
    // its join pushes two members (itself and x) at the keyed cluster.
    let mut d_args = args(&["--encrypt", &k2]);
    d_args.extend(join_args(&core));
    let d = Agent::on_loopback(dir.path(), "d", &d_args);
    let x = Agent::on_loopback(dir.path(), "x", &[]);
    let e = Agent::on_loopback(dir.path(), "e", &join_args(&[&x]));
    agree(&[&x, &e], Duration::from_secs(30));
    let mut join = vec!["join".to_owned(), "--wait".into(), "0s".into()];
    join.extend(core.iter().map(|m| m.gossip.to_string()));
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    let out = e.client(&join);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let refused = keeps_alive(
        &core,
        &CORE,
        &[],
        || {
            // Both outsiders reach every member (d's datagrams do not open, e's are
            // plaintext), and keep retrying for a while.
            let refused = wait_for(Duration::from_secs(30), || {
                core.iter().all(|m| refused_both(&m.info())).then_some(())
            });
            std::thread::sleep(OBSERVE);
            refused
        },
        || {},
    );
    assert!(
        refused.is_some(),
        "not every member refused the outsiders' datagrams"
    );

    for (m, before) in core.iter().zip(&before) {
        let now = m.info();
        assert!(
            refused_both(&now),
            "{}: {}",
            m.name,
            now["agent"]["protocol"]
        );
        // Nobody was suspected, failed or had to refute anything.
        for quiet in ["suspicions", "failures", "refutations"] {
            assert_eq!(
                counter(&now, quiet),
                counter(before, quiet),
                "{}: {quiet} changed",
                m.name
            );
        }
    }
    // The outsiders sent, and learned nothing.
    assert!(counter(&d.info(), "datagrams_sent") > 0);
    assert!(counter(&e.info(), "datagrams_sent") > 0);
    assert_eq!(names(&d), ["d"]);
    assert_eq!(names(&e), ["e", "x"]);
    assert_no_key_logged(&[&cluster[0], &cluster[1], &cluster[2], &d], &[&k1, &k2]);
}

#[test]
fn encrypt_revoked_member_cannot_mark_anyone_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(), keygen());
    let cluster = keyed_cluster(dir.path(), &k1, &["a", "b", "c", "d"]);
    let all: Vec<&Agent> = cluster.iter().collect();
    agree(&all, Duration::from_secs(30));
    let (core, d) = (&all[..3], all[3]);
    let before: Vec<Value> = core.iter().map(|m| m.info()).collect();

    // d keeps the member list but loses the cluster's key: it can reach no one, so it
    // suspects everyone and gossips their failure, sealed with a key nobody accepts.
    d.keys(&["--install", &k2]);
    d.keys(&["--use", &k2]);
    d.keys(&["--remove", &k1]);
    let d_gave_up = keeps_alive(
        core,
        &CORE,
        &["d"],
        || {
            wait_for(Duration::from_secs(120), || {
                CORE.iter()
                    .all(|n| d.status_of(n).as_deref() == Some("failed"))
                    .then_some(())
            })
        },
        || {},
    );
    assert!(
        d_gave_up.is_some(),
        "d never declared everyone failed: {:?}\n{}",
        d.members(),
        d.log_text()
    );
    // The members see d for what it is now: unreachable.
    expect_status(core, "d", "failed", Duration::from_secs(60));
    for (m, before) in core.iter().zip(&before) {
        let now = m.info();
        assert!(counter(&now, "dropped_unauthenticated") > 0, "{}", m.name);
        assert_eq!(
            counter(&now, "refutations"),
            counter(before, "refutations"),
            "{} had to refute a claim about itself",
            m.name
        );
    }
    assert!(counter(&d.info(), "failures") >= 3);
    assert_no_key_logged(&all, &[&k1, &k2]);
}
