//! Event handlers with real processes: a handler written in the style of the Docker lab's
//! `member-join.sh`/`member-leave.sh` (reads `SERF_EVENT` and stdin, keeps one file per
//! backend) keeps the right file set through joins, a graceful leave and a crash; a user
//! event reaches its `user:NAME` handler with Serf's variables; with `--parallel-handlers`
//! a hanging handler delays neither gossip nor the other handlers, and is killed after the
//! timeout. Split handlers (the lab's join and leave scripts) see every failure and rejoin
//! of a member; by default handlers never overlap; waiting user events never hold back a
//! member batch, and those pushed out of a full queue are counted at once; handlers and
//! render commands never see the agent's secrets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, args, join_args, wait_for};
use rustix::process::Signal;

const LAB_HANDLER: &str = r#"#!/usr/bin/env bash
# In the style of the AIT lab's handlers: one file per backend in the registry directory.
NODES="$1"
echo "$SERF_EVENT" >> "$NODES/../events.log"
while read -a values; do
  name=${values[0]}
  ip=${values[1]}
  role=${values[2]}
  if [ "$role" == "backend" ]; then
    case "$SERF_EVENT" in
      member-join) echo "$name $ip" > "$NODES/$name" ;;
      member-leave|member-failed) rm -f "$NODES/$name" ;;
    esac
  fi
done
"#;

/// The registry: file name to content.
fn registry(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                text.trim().to_owned(),
            )
        })
        .collect()
}

fn expect_registry(dir: &Path, want: &[&Agent], ha: &Agent, timeout: Duration) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|a| (a.name.clone(), format!("{} {}", a.name, a.gossip.ip())))
        .collect();
    let ok = wait_for(timeout, || (registry(dir) == want).then_some(()));
    assert!(
        ok.is_some(),
        "registry {:?}, wanted {want:?}\n--- ha log:\n{}",
        registry(dir),
        ha.log_text()
    );
}

fn handler_counts(ha: &Agent) -> serde_json::Value {
    ha.info()["handlers"].clone()
}

#[test]
fn lab_style_handler_keeps_one_file_per_backend() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    std::fs::create_dir(&nodes).unwrap();
    let script = dir.path().join("member-handler.sh");
    std::fs::write(&script, LAB_HANDLER).unwrap();
    let deploy_out = dir.path().join("deploy.out");

    let lab = format!(
        "member-join,member-leave,member-failed=bash {} {}",
        script.display(),
        nodes.display()
    );
    let deploy = format!(
        r#"user:deploy=echo "$SERF_USER_EVENT $(cat) $RUMOR_SELF_NAME $SERF_TAG_ROLE $SERF_USER_LTIME" > {}"#,
        deploy_out.display()
    );
    let started = Instant::now();
    let ha = Agent::on_loopback(
        dir.path(),
        "ha",
        &args(&[
            "--tag",
            "role=balancer",
            "--event-handler",
            &lab,
            "--event-handler",
            &deploy,
            // Hangs on every join; killed after the timeout. With one queue (the default)
            // it would hold the others back until then.
            "--event-handler",
            "member-join=sleep 600",
            "--parallel-handlers",
            "--handler-timeout",
            "15s",
            "--coalesce-quiet",
            "200ms",
            "--coalesce-max",
            "1s",
        ]),
    );
    let backend = |name: &str| {
        let mut v = args(&["--tag", "role=backend", "--tag", "port=3000"]);
        v.extend(join_args(&[&ha]));
        Agent::on_loopback(dir.path(), name, &v)
    };
    let mut s1 = backend("s1");
    let mut s2 = backend("s2");
    let s3 = backend("s3");

    // The registry fills while the hanging handler is still running.
    expect_registry(&nodes, &[&s1, &s2, &s3], &ha, Duration::from_secs(30));
    // The hanging handler starts after `started` and is killed 15 s after its start, so a
    // count read (then timed) less than 14 s after `started` must show no timeout yet. On a
    // slow machine the registry can take longer to fill; then the timeout may rightly have
    // fired, and there is nothing to judge.
    let counts = handler_counts(&ha);
    let elapsed = started.elapsed();
    if elapsed < Duration::from_secs(14) {
        assert_eq!(
            counts["timed_out"], 0,
            "the hanging handler was already killed after {elapsed:?}: {counts}"
        );
    } else {
        eprintln!("registry filled after {elapsed:?}: the early-kill check is skipped");
    }

    // A user event from a backend reaches ha's user:deploy handler with Serf's variables.
    let out = s3.client(&["event", "deploy", "v42"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&deploy_out)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    let got = got.unwrap_or_else(|| panic!("deploy handler never ran:\n{}", ha.log_text()));
    let fields: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(fields[..4], ["deploy", "v42", "ha", "balancer"], "{got}");
    assert!(fields[4].parse::<u32>().is_ok(), "{got}");

    // Graceful leave, then a crash: each backend's file goes away.
    s1.signal(Signal::TERM);
    assert!(
        s1.wait_exit(Duration::from_secs(20))
            .expect("s1 exits")
            .success()
    );
    expect_registry(&nodes, &[&s2, &s3], &ha, Duration::from_secs(30));
    s2.kill9();
    expect_registry(&nodes, &[&s3], &ha, Duration::from_secs(60));
    let events = std::fs::read_to_string(dir.path().join("events.log")).unwrap();
    for e in ["member-join", "member-leave", "member-failed"] {
        assert!(events.lines().any(|l| l == e), "no {e} in {events}");
    }

    // The hanging handler was killed after its timeout, and counted.
    let killed = wait_for(Duration::from_secs(40), || {
        (handler_counts(&ha)["timed_out"].as_u64()? >= 1).then_some(())
    });
    assert!(
        killed.is_some(),
        "no handler timed out: {}",
        handler_counts(&ha)
    );
    assert!(ha.log_text().contains("handler timed out and was killed"));
}

/// A handler that appends `TAG EVENT NAME` to `log` for each member on its stdin, or
/// `TAG user PAYLOAD` for a user event.
fn recorder(filter: &str, tag: &str, log: &Path) -> String {
    format!(
        r#"{filter}=if [ "$SERF_EVENT" = user ]; then echo "{tag} user $(cat)" >> {log}; else while read -r n r; do echo "{tag} $SERF_EVENT $n" >> {log}; done; fi"#,
        log = log.display()
    )
}

/// The lines of `path` (none if it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `line` appears `n` times in `log`; panics with the log and `ha`'s log if
/// it does not within 60 s.
fn expect_count(log: &Path, line: &str, n: usize, ha: &Agent) {
    let ok = wait_for(Duration::from_secs(60), || {
        (lines(log).iter().filter(|l| *l == line).count() >= n).then_some(())
    });
    assert!(
        ok.is_some(),
        "`{line}` not seen {n} times in:\n{}\n--- ha log:\n{}",
        lines(log).join("\n"),
        ha.log_text()
    );
}

/// Fast timing for tests with one observer and few members.
const FAST: [&str; 6] = [
    "--profile",
    "local",
    "--coalesce-quiet",
    "200ms",
    "--coalesce-max",
    "1s",
];

#[test]
fn split_handlers_see_every_failure_and_rejoin_of_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let mut ha_args = args(&FAST);
    for h in [
        recorder("member-join", "join.sh", &log),
        recorder("member-leave,member-failed", "leave.sh", &log),
        recorder("member-update", "update.sh", &log),
    ] {
        ha_args.extend(["--event-handler".to_owned(), h]);
    }
    let ha = Agent::on_loopback(dir.path(), "ha", &ha_args);
    let mut s1_args = args(&["--profile", "local", "--tag", "role=backend"]);
    s1_args.extend(join_args(&[&ha]));
    let mut s1 = Agent::on_loopback(dir.path(), "s1", &s1_args);
    expect_count(&log, "join.sh member-join s1", 1, &ha);

    // Fail, rejoin, fail again, rejoin again: each transition reaches its handler.
    for round in 1..=2 {
        s1.kill9();
        expect_count(&log, "leave.sh member-failed s1", round, &ha);
        s1.restart(&s1_args);
        expect_count(&log, "join.sh member-join s1", round + 1, &ha);
    }
    // An update, then a failure after it.
    let out = s1.client(&["tags", "--set", "v=2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_count(&log, "update.sh member-update s1", 1, &ha);
    s1.kill9();
    expect_count(&log, "leave.sh member-failed s1", 3, &ha);
    // A graceful leave after a rejoin.
    s1.restart(&s1_args);
    expect_count(&log, "join.sh member-join s1", 4, &ha);
    s1.stop_gracefully();
    expect_count(&log, "leave.sh member-leave s1", 1, &ha);
}

/// A handler for member joins and user events that takes `lock` (a directory) for one
/// second and then logs `ok`, or logs `overlap` at once if another handler holds it.
fn locker(lock: &Path, log: &Path) -> String {
    format!(
        "member-join,user=if mkdir {lock} 2>/dev/null; then sleep 1; rmdir {lock}; echo ok >> {log}; \
         else echo overlap >> {log}; fi",
        lock = lock.display(),
        log = log.display()
    )
}

/// Starts `ha` with two [`locker`] handlers (and `extra` flags), sends two user events,
/// and returns the six results once all are logged.
fn two_lockers(extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (lock, log) = (dir.path().join("lock"), dir.path().join("results"));
    let mut v = args(&FAST);
    v.extend(args(extra));
    for _ in 0..2 {
        v.extend(["--event-handler".to_owned(), locker(&lock, &log)]);
    }
    let ha = Agent::on_loopback(dir.path(), "ha", &v);
    for payload in ["1", "2"] {
        let out = ha.client(&["event", "e", payload]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let done = wait_for(Duration::from_secs(60), || {
        let l = lines(&log);
        (l.len() >= 6).then_some(l)
    });
    done.unwrap_or_else(|| panic!("results {:?}\n{}", lines(&log), ha.log_text()))
}

#[test]
fn handlers_run_one_at_a_time_by_default() {
    let results = two_lockers(&[]);
    assert_eq!(results, vec!["ok"; 6]);
}

#[test]
fn parallel_handlers_may_overlap() {
    let results = two_lockers(&["--parallel-handlers"]);
    assert!(results.iter().any(|r| r == "overlap"), "{results:?}");
}

/// A handler for member joins and user events; user events wait (at most 30 s) until
/// `gate` exists. Logs `EVENT NAME` per member and `user PAYLOAD`.
fn gated(gate: &Path, log: &Path, filter: &str) -> String {
    format!(
        r#"{filter}=if [ "$SERF_EVENT" = user ]; then i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo "user $(cat)" >> {log}; else while read -r n r; do echo "$SERF_EVENT $n" >> {log}; done; fi"#,
        gate = gate.display(),
        log = log.display()
    )
}

#[test]
fn queued_user_events_do_not_starve_a_member_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("events"));
    let mut v = args(&FAST);
    v.extend(args(&["--handler-timeout", "60s", "--event-handler"]));
    v.push(gated(&gate, &log, "member-join,user"));
    let ha = Agent::on_loopback(dir.path(), "ha", &v);
    expect_count(&log, "member-join ha", 1, &ha);
    // Five user events: the first one runs (held at the gate), four wait.
    for i in 1..=5 {
        let out = ha.client(&["event", "e", &i.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut s1_args = args(&["--profile", "local"]);
    s1_args.extend(join_args(&[&ha]));
    let _s1 = Agent::on_loopback(dir.path(), "s1", &s1_args);
    let seen = wait_for(Duration::from_secs(30), || {
        (ha.status_of("s1").as_deref() == Some("alive")).then_some(())
    });
    assert!(seen.is_some(), "ha never saw s1:\n{}", ha.log_text());
    // Past --coalesce-max: s1's join is batched and waits behind the running user event.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&gate, b"").unwrap();
    let all = wait_for(Duration::from_secs(60), || {
        let l = lines(&log);
        (l.iter().filter(|x| x.starts_with("user ")).count() == 5
            && l.iter().any(|x| x == "member-join s1"))
        .then_some(l)
    });
    let all = all.unwrap_or_else(|| panic!("{:?}\n{}", lines(&log), ha.log_text()));
    let join = all.iter().position(|x| x == "member-join s1").unwrap();
    let last_user = all.iter().rposition(|x| x.starts_with("user ")).unwrap();
    assert!(
        join < last_user,
        "the member batch ran after every queued user event: {all:?}"
    );
}

#[test]
fn dropped_user_events_show_in_info_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("events"));
    let mut v = args(&FAST);
    v.extend(args(&["--handler-timeout", "60s", "--event-handler"]));
    v.push(gated(&gate, &log, "user"));
    let ha = Agent::on_loopback(dir.path(), "ha", &v);
    // One runs (held at the gate), 256 wait, the rest push the oldest out.
    let sent = 300;
    for i in 0..sent {
        let out = ha.client(&["event", "e", &i.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dropped = wait_for(Duration::from_secs(30), || {
        let d = handler_counts(&ha)["events_dropped"].as_u64()?;
        (d >= 40).then_some(d)
    });
    assert!(dropped.is_some(), "{}", handler_counts(&ha));
    std::fs::write(&gate, b"").unwrap();
    let ran = wait_for(Duration::from_secs(60), || {
        (lines(&log).len() as u64 + dropped? == sent).then_some(())
    });
    assert!(
        ran.is_some(),
        "ran {}, dropped {dropped:?}",
        lines(&log).len()
    );
    // The newest events are kept.
    assert_eq!(lines(&log).last().map(String::as_str), Some("user 299"));
}

#[test]
fn handlers_and_render_commands_do_not_get_the_agent_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let dump = |n: &str| dir.path().join(n);
    let handler = format!("member-join=env > {}", dump("handler.env").display());
    let render = format!(
        r#"{{ renderer = "json", dest = "{}", check = "env > {}", reload_command = "env > {}" }}"#,
        dump("members.json").display(),
        dump("check.env").display(),
        dump("reload.env").display()
    );
    let key = common::keygen();
    let env = [
        ("RUMOR_ENCRYPT", key.as_str()),
        ("RUMOR_RPC_TOKEN", "rpc-secret"),
        ("KEPT_VARIABLE", "kept"),
    ];
    let v = args(&["--event-handler", &handler, "--render", &render]);
    let ha = Agent::on_loopback_with_env(dir.path(), "ha", &v, &env);
    for name in ["handler.env", "check.env", "reload.env"] {
        let text = wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(dump(name))
                .ok()
                .filter(|t| t.contains("KEPT_VARIABLE=kept"))
        });
        let text = text.unwrap_or_else(|| panic!("no {name}:\n{}", ha.log_text()));
        for secret in [
            key.as_str(),
            "rpc-secret",
            "RUMOR_ENCRYPT",
            "RUMOR_RPC_TOKEN",
        ] {
            assert!(!text.contains(secret), "{name} has {secret}:\n{text}");
        }
    }
}
