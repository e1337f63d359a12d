//! `SIGHUP` with a real agent process: the config file is read again and the log level,
//! tags, event handlers and render targets change while the agent keeps running (Serf
//! reloads the first three on `SIGHUP`); a file that does not parse changes nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Agent, args, wait_for};
use rustix::process::Signal;

/// A config file with a `user:deploy` handler that appends `TAG PAYLOAD` to `out`.
fn config(tag: &str, role: &str, level: &str, out: &Path, render: Option<&Path>) -> String {
    let mut text = format!(
        r#"log_level = "{level}"
event_handlers = ['user:deploy=echo "{tag} $(cat)" >> {out}']

[tags]
role = "{role}"
"#,
        out = out.display()
    );
    if let Some(dest) = render {
        text += &format!(
            "\n[[render]]\nrenderer = \"json\"\ndest = \"{}\"\n",
            dest.display()
        );
    }
    text
}

/// Sends `deploy PAYLOAD` and waits until the handler wrote `line` into `out`.
fn deploy_and_expect(agent: &Agent, payload: &str, out: &Path, line: &str) {
    let sent = agent.client(&["event", "deploy", payload]);
    assert!(sent.status.success(), "{sent:?}");
    let seen = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(out)
            .ok()
            .filter(|t| t.lines().any(|l| l == line))
    });
    assert!(
        seen.is_some(),
        "`{line}` never written; out: {:?}\n--- log:\n{}",
        std::fs::read_to_string(out),
        agent.log_text()
    );
}

/// Sends `SIGHUP` and waits for the agent to log `what`.
fn hangup_and_expect(agent: &mut Agent, what: &str) {
    let before = agent.log_text().matches(what).count();
    agent.signal(Signal::HUP);
    let logged = wait_for(Duration::from_secs(20), || {
        (agent.log_text().matches(what).count() > before).then_some(())
    });
    assert!(logged.is_some(), "no `{what}`:\n{}", agent.log_text());
    assert!(agent.is_running(), "SIGHUP ended the agent");
}

#[test]
fn sighup_reloads_log_level_tags_handlers_and_render_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, out) = (dir.path().join("rumor.toml"), dir.path().join("out"));
    let members_json = dir.path().join("members.json");
    std::fs::write(&cfg, config("one", "web", "info", &out, None)).unwrap();
    let cfg_arg = cfg.display().to_string();
    let mut a = Agent::on_loopback(dir.path(), "a1", &args(&["--config", &cfg_arg]));
    assert!(wait_for(Duration::from_secs(20), || a.members()).is_some());
    deploy_and_expect(&a, "x1", &out, "one x1");
    assert!(!a.log_text().contains("running handler"), "debug already");

    std::fs::write(
        &cfg,
        config("two", "api", "debug", &out, Some(&members_json)),
    )
    .unwrap();
    hangup_and_expect(&mut a, "configuration reloaded");
    deploy_and_expect(&a, "x2", &out, "two x2");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("one x2"), "the old handler ran: {text}");
    assert!(
        a.log_text().contains("running handler"),
        "still not at debug"
    );
    let tags = wait_for(Duration::from_secs(20), || {
        a.members()?
            .into_iter()
            .find(|m| m.name == "a1" && m.tags.contains(&("role".into(), "api".into())))
    });
    assert!(tags.is_some(), "tags not changed: {:?}", a.members());
    let rendered = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&members_json)
            .ok()
            .filter(|t| t.contains("\"a1\""))
    });
    assert!(rendered.is_some(), "the new render target did not render");

    // A file that does not parse: nothing changes, the agent says so and runs on.
    std::fs::write(&cfg, "log_level = [").unwrap();
    hangup_and_expect(&mut a, "configuration not reloaded");
    deploy_and_expect(&a, "x3", &out, "two x3");
    a.stop_gracefully();
}
