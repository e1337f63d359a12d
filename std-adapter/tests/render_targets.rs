//! Render targets in a running agent (in process, on 127.0.0.1): the first render at
//! start, a refused check retried with backoff until it passes with no membership change,
//! a join rendered after the coalescing window, a leave rendered at once, and a reload
//! command that leaves a background child running (the lab's `haproxy ... &`).

use std::time::Duration;

use rumor_core::{Config, Tags};
use rumor_std::render::{JsonRenderer, Reload, RenderTargets, Renderer, Selection, Target};
use rumor_std::{Agent, AgentConfig};

async fn start(name: &str, tags: Tags) -> Agent {
    let mut c = AgentConfig::new(name, "127.0.0.1:0".parse().unwrap());
    c.protocol = Config::local();
    c.tags = tags;
    Agent::start(c).await.unwrap()
}

/// A JSON target of the backends at `dest`, coalescing over 100 ms (at most 500 ms).
fn json_target(dest: &std::path::Path) -> Target {
    Target {
        coalesce_quiet: Duration::from_millis(100),
        coalesce_max: Duration::from_millis(500),
        ..Target::new(
            Renderer::Json(JsonRenderer {
                selection: Selection::backends(),
            }),
            dest,
        )
    }
}

/// A backend `name` (port 3000) that joins `lb`.
async fn join_backend(name: &str, lb: &Agent) -> Agent {
    let tags = Tags::new()
        .with("role", "backend")
        .unwrap()
        .with("port", "3000")
        .unwrap();
    let web = start(name, tags).await;
    web.handle().join([lb.local_addr()]).await.unwrap();
    web
}

/// Polls `f` every 50 ms for at most 20 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 20 s: {what}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_render_is_retried_and_joins_are_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("members.json");
    let allow = dir.path().join("allow");
    let lb = start("lb", Tags::new().with("role", "balancer").unwrap()).await;
    let target = Target {
        check: Some(format!("test -e {}", allow.display())),
        ..json_target(&dest)
    };
    let targets = RenderTargets::start(&lb.handle(), vec![target], None);
    let stats = targets.stats()[0].1.clone();

    // The check refuses the first render: nothing is written, the failure is counted.
    eventually("a check failure", || stats.counts().check_failures >= 1).await;
    assert!(!dest.exists());
    assert!(stats.counts().last_error.unwrap().contains("check failed"));

    // Once the check passes, a retry installs the file with no membership change.
    std::fs::write(&allow, "").unwrap();
    // The file appears (rename) just before the pipeline records the success: wait for
    // the count, which comes last.
    eventually("the retried render", || stats.counts().applied >= 1).await;
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "[]\n",
        "no backend yet"
    );
    let counts = stats.counts();
    assert_eq!((counts.applied, counts.last_error), (1, None));

    // A backend joins: rendered after the quiet period.
    let web = join_backend("web-1", &lb).await;
    eventually("a second apply", || stats.counts().applied >= 2).await;
    assert!(
        std::fs::read_to_string(&dest)
            .unwrap()
            .contains("\"web-1\"")
    );
    assert_eq!(stats.counts().applied, 2);

    web.shutdown().await;
    lb.shutdown().await;
    targets.join().await.expect("no render target failed");
}

/// A member that leaves must stop getting traffic now: its removal is applied at once, not
/// after a quiet period meant for bursts of joins (issue 14: the lab's graceful leave
/// failed requests while the balancer waited out its 1 s coalescing).
#[tokio::test(flavor = "current_thread")]
async fn a_leave_is_applied_at_once_not_after_the_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("members.json");
    let lb = start("lb", Tags::new().with("role", "balancer").unwrap()).await;
    let web = join_backend("web-1", &lb).await;
    let handle = lb.handle();
    for _ in 0..400 {
        let members = handle.members().await.unwrap();
        if members.iter().any(|m| m.name == "web-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Joins (and the start) wait a quiet minute: nothing is rendered until the leave.
    let target = Target {
        coalesce_quiet: Duration::from_secs(60),
        coalesce_max: Duration::from_secs(120),
        ..json_target(&dest)
    };
    let targets = RenderTargets::start(&lb.handle(), vec![target], None);
    let stats = targets.stats()[0].1.clone();
    web.shutdown().await;
    eventually("the leave applied", || stats.counts().applied >= 1).await;
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "[]\n");

    lb.shutdown().await;
    targets.join().await.expect("no render target failed");
}

/// The lab reloads HAProxy with `haproxy -f cfg -sf $(cat pid) &`: the shell exits at once,
/// and the new HAProxy keeps the command's output pipes open for its whole life. The
/// target must go on applying changes (it used to wait for the pipes to close: forever,
/// with nothing logged).
#[tokio::test(flavor = "current_thread")]
async fn a_reload_that_leaves_a_background_child_does_not_stall_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("members.json");
    let pids = dir.path().join("pids");
    let lb = start("lb", Tags::new().with("role", "balancer").unwrap()).await;
    let target = Target {
        reload: Reload::Command(format!("sleep 60 & echo $! >> {}", pids.display())),
        ..json_target(&dest)
    };
    let targets = RenderTargets::start(&lb.handle(), vec![target], None);
    let stats = targets.stats()[0].1.clone();
    eventually("the first apply", || stats.counts().applied >= 1).await;

    let web = join_backend("web-1", &lb).await;
    eventually("the join applied", || stats.counts().applied >= 2).await;
    assert_eq!(stats.counts().last_error, None);

    web.shutdown().await;
    lb.shutdown().await;
    targets.join().await.expect("no render target failed");
    // The background children are ours: end them.
    for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
        let _ = std::process::Command::new("kill").arg(pid).status();
    }
}
