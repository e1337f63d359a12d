//! Several `rumor agent` processes on loopback addresses (127.x.y.z): they join and agree
//! on the membership; `kill -9` makes one failed everywhere; SIGTERM makes one left (not
//! failed) everywhere; a restart with `--snapshot` rejoins with no `--join`; `rumor
//! force-leave` turns a failed member into a left one everywhere, and refuses live ones.

mod common;

use std::time::Duration;

use common::{Agent, agree, args, expect_status, join_args, one_line_error, wait_for};
use rustix::process::Signal;

/// LAN timing, as deployed (the local profile's retransmit multiplier of 2 is too low for a
/// leave to reach every member of a small cluster; see the report on core dissemination).
const DETECT: Duration = Duration::from_secs(60);

#[test]
fn loopback_cluster_joins_detects_failure_and_leave_and_rejoins_from_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &args(&["--tag", "role=balancer"]));
    let backend = |name: &str, extra: &[&str]| {
        let mut v = args(&["--tag", "role=backend", "--tag", "port=3000"]);
        v.extend(join_args(&[&a]));
        v.extend(args(extra));
        Agent::on_loopback(dir.path(), name, &v)
    };
    let mut b = backend("b", &[]);
    let mut c = backend("c", &[]);
    let snapshot = dir.path().join("d.snapshot.json");
    let snap_arg = snapshot.display().to_string();
    let mut d = backend("d", &["--snapshot", &snap_arg]);

    // Everyone sees everyone alive, with the same addresses.
    let all = [&a, &b, &c, &d];
    let agreed = agree(&all, Duration::from_secs(30));
    for agent in &all {
        let addr = agreed
            .iter()
            .find(|(n, _, _)| *n == agent.name)
            .map(|(_, a, _)| a.clone());
        assert_eq!(addr, Some(agent.gossip.to_string()));
    }
    // Tags travel, and the client filters by status and tag. Checked until it holds (a
    // member can be suspected for a moment on a loaded machine), within a bound.
    let mut seen = (Vec::new(), String::new());
    let filtered = wait_for(Duration::from_secs(30), || {
        let out = a.client(&[
            "members",
            "--format",
            "json",
            "--status",
            "alive",
            "--tag",
            "role=backend",
        ]);
        if !out.status.success() {
            seen.1 = String::from_utf8_lossy(&out.stderr).into_owned();
            return None;
        }
        let mut backends: Vec<String> = common::parse_members(&out.stdout)
            .into_iter()
            .map(|m| m.name)
            .collect();
        backends.sort();
        let table = String::from_utf8(a.client(&["members"]).stdout).unwrap();
        let ok = backends == ["b", "c", "d"]
            && table.lines().any(|l| {
                l.starts_with("b ") && l.contains("alive") && l.contains("port=3000,role=backend")
            });
        seen = (backends, table);
        ok.then_some(())
    });
    assert!(
        filtered.is_some(),
        "alive backends {:?}, table (or error):\n{}",
        seen.0,
        seen.1
    );

    // kill -9: failed everywhere.
    c.kill9();
    expect_status(&[&a, &b, &d], "c", "failed", DETECT);

    // SIGTERM: a graceful leave, exit 0, left (not failed) everywhere.
    b.signal(Signal::TERM);
    let status = b
        .wait_exit(Duration::from_secs(20))
        .expect("b exits after SIGTERM");
    assert!(
        status.success(),
        "b exited with {status}:\n{}",
        b.log_text()
    );
    expect_status(&[&a, &d], "b", "left", Duration::from_secs(30));

    // The snapshot knows a; d leaves, restarts with no --join, and is back.
    let saved = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&snapshot).ok()?;
        text.contains(&a.gossip.to_string()).then_some(text)
    });
    assert!(saved.is_some(), "snapshot never listed a");
    d.signal(Signal::TERM);
    assert!(
        d.wait_exit(Duration::from_secs(20))
            .expect("d exits")
            .success()
    );
    expect_status(&[&a], "d", "left", Duration::from_secs(30));
    d.restart(&args(&["--tag", "role=backend", "--snapshot", &snap_arg]));
    expect_status(&[&a, &d], "d", "alive", Duration::from_secs(30));
    expect_status(&[&d], "a", "alive", Duration::from_secs(30));
    assert!(
        d.log_text().contains("rejoining peers from the snapshot"),
        "{}",
        d.log_text()
    );
    // The restarted d carries its new tags to a; the members that went away while it was
    // down are not resurrected (the core ignores non-alive claims about unknown members).
    let tags = wait_for(Duration::from_secs(30), || {
        let m = a.members()?.into_iter().find(|m| m.name == "d")?;
        (m.tags == vec![("role".to_owned(), "backend".to_owned())]).then_some(())
    });
    assert!(
        tags.is_some(),
        "a never saw d's new tags: {:?}",
        a.members()
    );
    for gone in ["b", "c"] {
        let s = d.status_of(gone);
        assert!(
            s.as_deref() != Some("alive") && s.as_deref() != Some("suspect"),
            "d sees {gone} as {s:?}"
        );
    }
}

#[test]
fn force_leave_marks_a_failed_member_left_everywhere_and_refuses_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    let b = Agent::on_loopback(dir.path(), "b", &join_args(&[&a]));
    let mut c = Agent::on_loopback(dir.path(), "c", &join_args(&[&a]));
    agree(&[&a, &b, &c], Duration::from_secs(30));

    // Refusals: one line, exit 1, and nothing changes.
    let err = one_line_error(&a.client(&["force-leave", "c"]));
    assert_eq!(
        err.trim(),
        "error: cannot force c out: the member is alive or suspect; only a failed one can be forced out"
    );
    let err = one_line_error(&a.client(&["force-leave", "nobody"]));
    assert_eq!(
        err.trim(),
        "error: cannot force nobody out: no member has that name"
    );
    let err = one_line_error(&a.client(&["force-leave", "a"]));
    assert!(err.contains("that is this node"), "{err}");
    assert_eq!(a.status_of("c").as_deref(), Some("alive"));

    // kill -9 of the agent this test started: failed on both survivors.
    c.kill9();
    expect_status(&[&a, &b], "c", "failed", DETECT);

    // Forced out on a: left on a at once, and on b once the news has been gossiped.
    let out = a.client(&["force-leave", "c"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "c is marked left; the cluster is told\n"
    );
    assert_eq!(a.status_of("c").as_deref(), Some("left"));
    expect_status(&[&a, &b], "c", "left", Duration::from_secs(30));
    // Forcing out a member that left already is not an error.
    assert!(a.client(&["force-leave", "c"]).status.success());
    assert!(a.log_text().contains("forcing a failed member out"));
}
