//! Watching a cluster's membership while something happens to it.

use std::time::Duration;

use super::Agent;

/// Time between two polls of the observers.
const POLL: Duration = Duration::from_millis(250);
/// Most violations quoted when the watch fails.
const QUOTED: usize = 20;

/// Runs `work` on its own thread while this one polls the observers: each must list every
/// name of `members` as alive, and nobody else but `others`. `tick` runs once before each
/// poll (to send traffic, say). Once `work` has ended, panics if any poll saw otherwise
/// (quoting what it saw); else returns the result of `work`.
pub fn keeps_alive<T: Send>(
    observers: &[&Agent],
    members: &[&str],
    others: &[&str],
    work: impl FnOnce() -> T + Send,
    mut tick: impl FnMut(),
) -> T {
    let mut wrong = Vec::new();
    let mut polls = 0u32;
    let result = std::thread::scope(|s| {
        let worker = s.spawn(work);
        while !worker.is_finished() {
            tick();
            for o in observers {
                wrong.extend(violations(o, members, others));
            }
            polls += 1;
            std::thread::sleep(POLL);
        }
        worker.join()
    });
    let result = result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(
        wrong.is_empty(),
        "{} of {polls} polls saw a member not alive; first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(QUOTED)].join("\n")
    );
    result
}

/// What `observer` lists that breaks the rule, one line each.
fn violations(observer: &Agent, members: &[&str], others: &[&str]) -> Vec<String> {
    let Some(listed) = observer.members() else {
        return vec![format!("{} did not answer `members`", observer.name)];
    };
    let mut out = Vec::new();
    for name in members {
        match listed.iter().find(|m| m.name == *name) {
            Some(m) if m.status == "alive" => {}
            Some(m) => out.push(format!("{} saw {name} {}", observer.name, m.status)),
            None => out.push(format!("{} did not list {name}", observer.name)),
        }
    }
    for m in &listed {
        if !members.contains(&m.name.as_str()) && !others.contains(&m.name.as_str()) {
            out.push(format!(
                "{} listed {} ({})",
                observer.name, m.name, m.status
            ));
        }
    }
    out
}
