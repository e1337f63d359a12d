//! Event handlers with real processes: a handler written in the style of the Docker lab's
//! `member-join.sh`/`member-leave.sh` (reads `SERF_EVENT` and stdin, keeps one file per
//! backend) keeps the right file set through joins, a graceful leave and a crash; a user
//! event reaches its `user:NAME` handler with Serf's variables; a hanging handler delays
//! neither gossip nor the other handlers, and is killed after the timeout.

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
            // Hangs on every join; killed after the timeout.
            "--event-handler",
            "member-join=sleep 600",
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
