//! `rumor demo`: a small cluster of in-process agents on loopback. It shows the member
//! table converging, crashes one node (its task is dropped, no leave is sent), makes
//! another leave gracefully, and shows when each survivor noticed and how long it took.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rumor_core::{Config, Status, Tags};
use rumor_std::{Agent, AgentConfig, AgentEvent, Handle};
use tokio::sync::mpsc;

use super::output::member_table;
use super::{CliError, DemoArgs, runtime};

/// Longest wait for every agent to see every other one (past the longest first push-pull
/// delay of the local profile, 22.5 s, which catches any join the gossip missed).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(25);
/// Longest wait for every survivor to declare the crashed node failed.
const CRASH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for every survivor to see the graceful leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest time between two progress lines while the cluster converges.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The local profile with a 500 ms probe interval, so that the demo is quick, and the LAN
/// profile's retransmit multiplier: with the local profile's 2, an update is sent only
/// twice per node, so in a five-node cluster a join or a leave often misses a member until
/// the next push-pull (see the rumor-std report on dissemination in small clusters).
fn demo_profile() -> Config {
    let mut config = Config::local();
    config.probe_interval = rumor_core::Duration::from_millis(500);
    config.retransmit_mult = Config::lan().retransmit_mult;
    config
}

pub(crate) fn run(args: DemoArgs) -> Result<(), CliError> {
    let level = rumor_std::logging::parse_level(&args.log_level).map_err(CliError)?;
    if level != tracing_subscriber::filter::LevelFilter::OFF {
        rumor_std::logging::init(level).map_err(CliError)?;
    }
    runtime()?.block_on(demo(usize::from(args.nodes)))
}

/// One event seen by one agent.
struct Seen {
    observer: usize,
    event: AgentEvent,
    at: Instant,
}

/// How the survivors saw one node go.
struct Detection {
    /// Per observer: how long after the cause it saw the expected status.
    times: BTreeMap<usize, Duration>,
    /// Observers that saw another final status instead (e.g. failed instead of left).
    wrong: Vec<(usize, Status)>,
}

impl Detection {
    fn first_last(&self) -> Option<(Duration, Duration)> {
        Some((*self.times.values().min()?, *self.times.values().max()?))
    }
}

struct Cluster {
    names: Vec<String>,
    agents: Vec<Option<Agent>>,
    handles: Vec<Handle>,
    seen: mpsc::UnboundedReceiver<Seen>,
    start: Instant,
}

async fn demo(n: usize) -> Result<(), CliError> {
    let profile = demo_profile();
    println!(
        "rumor demo: {n} agents on 127.0.0.1, local profile with {} ms probes, {} ms probe timeout\n",
        profile.probe_interval.as_millis(),
        profile.probe_timeout.as_millis()
    );
    let mut c = Cluster::start(n, profile).await?;

    let converged = c.converge().await?;
    println!(
        "\nconverged in {:.2} s; node-1's member table:\n",
        converged.as_secs_f64()
    );
    c.print_table(0).await;

    let crashed = n - 1;
    println!();
    c.say(&format!(
        "crashing {}: its task is dropped, no leave is sent",
        c.names[crashed]
    ));
    let crash_at = Instant::now();
    if let Some(agent) = c.agents[crashed].take() {
        agent.crash();
    }
    let survivors: Vec<usize> = (0..n).filter(|i| *i != crashed).collect();
    let crash = c
        .wait_for(crashed, Status::Failed, &survivors, crash_at, CRASH_TIMEOUT)
        .await;

    let leaver = n - 2;
    println!();
    c.say(&format!("{} leaves gracefully", c.names[leaver]));
    let leave_at = Instant::now();
    let leaving = c.handles[leaver].clone();
    let leave_task = tokio::spawn(async move { leaving.leave().await });
    let rest: Vec<usize> = survivors.iter().copied().filter(|i| *i != leaver).collect();
    let leave = c
        .wait_for(leaver, Status::Left, &rest, leave_at, LEAVE_TIMEOUT)
        .await;
    let _ = leave_task.await;
    c.agents[leaver] = None;

    println!("\nnode-1's member table at the end:\n");
    c.print_table(0).await;
    let ok = summary(
        &c,
        converged,
        crashed,
        &crash,
        rest.len() + 1,
        leaver,
        &leave,
        rest.len(),
    );
    c.stop().await;
    if ok {
        Ok(())
    } else {
        Err(CliError(
            "the demo did not see every detection it expected (see above)".into(),
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    c: &Cluster,
    converged: Duration,
    crashed: usize,
    crash: &Detection,
    crash_observers: usize,
    leaver: usize,
    leave: &Detection,
    leave_observers: usize,
) -> bool {
    println!("\nsummary");
    println!(
        "  convergence      every agent saw all {} members alive after {:.2} s",
        c.names.len(),
        converged.as_secs_f64()
    );
    let line = |what: &str, d: &Detection, observers: usize, status: Status| {
        let range = d
            .first_last()
            .map(|(f, l)| {
                format!(
                    ": first after {:.2} s, last after {:.2} s",
                    f.as_secs_f64(),
                    l.as_secs_f64()
                )
            })
            .unwrap_or_default();
        println!(
            "  {what:<16} marked {status} by {}/{observers} survivors{range}",
            d.times.len()
        );
        for (o, s) in &d.wrong {
            println!("  {:<16} {} saw it {s} instead", "", c.names[*o]);
        }
        d.times.len() == observers && d.wrong.is_empty()
    };
    let crash_ok = line(
        &format!("crash of {}", c.names[crashed]),
        crash,
        crash_observers,
        Status::Failed,
    );
    let leave_ok = line(
        &format!("leave of {}", c.names[leaver]),
        leave,
        leave_observers,
        Status::Left,
    );
    crash_ok && leave_ok
}

impl Cluster {
    async fn start(n: usize, profile: Config) -> Result<Cluster, CliError> {
        let start = Instant::now();
        let (tx, seen) = mpsc::unbounded_channel();
        let (mut names, mut agents, mut handles) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let name = format!("node-{}", i + 1);
            let role = if i == 0 { "balancer" } else { "backend" };
            let mut config = AgentConfig::new(
                &name,
                "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            );
            config.protocol = profile.clone();
            config.leave_timeout = Duration::from_secs(3);
            config.tags = Tags::new()
                .with("role", role)
                .and_then(|t| {
                    if i == 0 {
                        Ok(t)
                    } else {
                        t.with("port", "3000")
                    }
                })
                .map_err(|e| CliError(format!("demo tags: {e}")))?;
            let agent = Agent::start(config).await?;
            let handle = agent.handle();
            let mut events = handle.events();
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    let seen = Seen {
                        observer: i,
                        event,
                        at: Instant::now(),
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            });
            println!("started {name:<8} role={role:<9} at {}", agent.local_addr());
            names.push(name);
            agents.push(Some(agent));
            handles.push(handle);
        }
        let seed = handles[0].local().addr;
        for h in &handles[1..] {
            h.join([seed]).await?;
        }
        println!("{} agents join through node-1 ({seed})\n", n - 1);
        Ok(Cluster {
            names,
            agents,
            handles,
            seen,
            start,
        })
    }

    fn say(&self, what: &str) {
        println!("[{:>6.2}s] {what}", self.start.elapsed().as_secs_f64());
    }

    /// Waits until every agent sees every agent alive, printing each agent's view as it
    /// grows.
    async fn converge(&mut self) -> Result<Duration, CliError> {
        let n = self.names.len();
        let began = Instant::now();
        let deadline = began + CONVERGE_TIMEOUT;
        let mut views: Vec<BTreeSet<String>> = self
            .names
            .iter()
            .map(|me| BTreeSet::from([me.clone()]))
            .collect();
        let mut last_print = began - PROGRESS_EVERY;
        let mut dirty = true;
        loop {
            let done = views.iter().all(|v| v.len() == n);
            if dirty && (done || last_print.elapsed() >= PROGRESS_EVERY) {
                let row: Vec<String> = views
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{} {}/{n}", self.names[i], v.len()))
                    .collect();
                self.say(&format!("members seen:  {}", row.join("   ")));
                last_print = Instant::now();
                dirty = false;
            }
            if done {
                return Ok(began.elapsed());
            }
            // While a change waits to be printed, wake up in time to print it.
            let wake = if dirty {
                deadline.min(last_print + PROGRESS_EVERY)
            } else {
                deadline
            };
            let next = tokio::time::timeout_at(wake.into(), self.seen.recv()).await;
            if next.is_err() && Instant::now() < deadline {
                continue;
            }
            let Ok(Some(s)) = next else {
                return Err(CliError(format!(
                    "the cluster did not converge within {} s",
                    CONVERGE_TIMEOUT.as_secs()
                )));
            };
            if let AgentEvent::MemberJoin { member } = &s.event {
                dirty |= views[s.observer].insert(member.name.clone());
            }
        }
    }

    /// Waits until every observer reports `subject` with status `want`, printing what
    /// each observer sees of it.
    async fn wait_for(
        &mut self,
        subject: usize,
        want: Status,
        observers: &[usize],
        since: Instant,
        timeout: Duration,
    ) -> Detection {
        let name = self.names[subject].clone();
        let mut d = Detection {
            times: BTreeMap::new(),
            wrong: Vec::new(),
        };
        let deadline = since + timeout;
        while d.times.len() + d.wrong.len() < observers.len() {
            let Ok(Some(s)) = tokio::time::timeout_at(deadline.into(), self.seen.recv()).await
            else {
                let missing: Vec<&str> = observers
                    .iter()
                    .filter(|o| !d.times.contains_key(o) && !d.wrong.iter().any(|(w, _)| w == *o))
                    .map(|o| self.names[*o].as_str())
                    .collect();
                self.say(&format!(
                    "gave up after {} s: {} never saw {name} {want}",
                    timeout.as_secs(),
                    missing.join(", ")
                ));
                return d;
            };
            let Some(member) = s.event.member().filter(|m| m.name == name) else {
                continue;
            };
            if !observers.contains(&s.observer) {
                continue;
            }
            let after = s.at.duration_since(since);
            let observer = &self.names[s.observer];
            let what = match &s.event {
                AgentEvent::MemberSuspect { .. } => "suspects",
                AgentEvent::MemberFailed { .. } => "declares failed",
                AgentEvent::MemberLeave { .. } => "sees the leave of",
                AgentEvent::MemberJoin { .. } => "sees alive again",
                _ => continue,
            };
            println!(
                "[{:>6.2}s] {observer} {what} {name}  ({:.2} s after the {})",
                self.start.elapsed().as_secs_f64(),
                after.as_secs_f64(),
                if want == Status::Failed {
                    "crash"
                } else {
                    "leave"
                }
            );
            if member.status == want {
                d.times.entry(s.observer).or_insert(after);
            } else if matches!(member.status, Status::Left | Status::Failed) {
                d.wrong.push((s.observer, member.status));
            }
        }
        d
    }

    async fn print_table(&self, observer: usize) {
        match self.handles[observer].members().await {
            Ok(members) => {
                for line in member_table(&members).lines() {
                    println!("    {line}");
                }
            }
            Err(e) => println!("    ({e})"),
        }
    }

    /// Stops the agents still running, gracefully.
    async fn stop(&mut self) {
        let tasks: Vec<_> = self
            .agents
            .iter_mut()
            .filter_map(Option::take)
            .map(|a| tokio::spawn(a.shutdown()))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}
