//! The demo's agents: started in this process on loopback, joined through node-1, and
//! watched through their event streams (who saw whom join, fail or leave, and when).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rumor_core::{Config, Status, Tags};
use rumor_std::{Agent, AgentConfig, AgentEvent, Handle};
use tokio::sync::mpsc;

use super::super::output::member_table;
use super::CliError;

/// Longest wait for every agent to see every other one (past the longest first push-pull
/// delay of the local profile, 22.5 s, which catches any join the gossip missed).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(25);
/// Shortest time between two progress lines while the cluster converges.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// How long a leaving agent stays once its leave is gossiped, as `rumor agent` does: the
/// balancer takes it out of rotation before its web server stops.
const LEAVE_PROPAGATE_DELAY: Duration = Duration::from_secs(1);

/// The local profile with a 500 ms probe interval, so that the demo is quick, and the LAN
/// profile's retransmit multiplier: with the local profile's 2, an update is sent only
/// twice per node, so in a five-node cluster a join or a leave often misses a member until
/// the next push-pull (see the rumor-std report on dissemination in small clusters).
pub(super) fn demo_profile() -> Config {
    let mut config = Config::local();
    config.probe_interval = rumor_core::Duration::from_millis(500);
    config.retransmit_mult = Config::lan().retransmit_mult;
    config
}

/// One event seen by one agent.
struct Seen {
    /// The agent that saw it.
    observer: usize,
    /// What it saw.
    event: AgentEvent,
    /// When.
    at: Instant,
}

/// How the survivors saw one node go.
pub(super) struct Detection {
    /// Per observer: how long after the cause it saw the expected status.
    pub(super) times: BTreeMap<usize, Duration>,
    /// Observers that saw another final status instead (e.g. failed instead of left).
    pub(super) wrong: Vec<(usize, Status)>,
}

impl Detection {
    /// The first and the last observer's delay, if any saw it.
    pub(super) fn first_last(&self) -> Option<(Duration, Duration)> {
        Some((*self.times.values().min()?, *self.times.values().max()?))
    }
}

/// The running agents, by index (node-1 is index 0).
pub(super) struct Cluster {
    /// Their names.
    pub(super) names: Vec<String>,
    /// The agents still running (`None` once crashed or gone).
    agents: Vec<Option<Agent>>,
    /// Their handles.
    pub(super) handles: Vec<Handle>,
    /// Per agent, the members it has seen alive (itself included).
    views: Vec<BTreeSet<String>>,
    /// Every agent's events.
    seen: mpsc::UnboundedReceiver<Seen>,
    /// The sender every agent's event task clones.
    tx: mpsc::UnboundedSender<Seen>,
    /// The protocol timing of every agent.
    profile: Config,
    /// When the demo started, for the timestamps.
    start: Instant,
}

impl Cluster {
    /// An empty cluster; [`add`](Self::add) starts its agents.
    pub(super) fn new(profile: Config) -> Cluster {
        let (tx, seen) = mpsc::unbounded_channel();
        Cluster {
            names: Vec::new(),
            agents: Vec::new(),
            handles: Vec::new(),
            views: Vec::new(),
            seen,
            tx,
            profile,
            start: Instant::now(),
        }
    }

    /// Starts the next agent, `node-<n>`: the balancer (`role=balancer`) if it is the
    /// first, else a backend tagged with its web server's `port`; it joins through node-1.
    pub(super) async fn add(&mut self, port: Option<u16>) -> Result<usize, CliError> {
        let i = self.names.len();
        let name = format!("node-{}", i + 1);
        let mut config = AgentConfig::new(
            &name,
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        );
        config.protocol = self.profile.clone();
        config.leave_timeout = Duration::from_secs(3);
        config.leave_propagate_delay = LEAVE_PROPAGATE_DELAY;
        let tags = match port {
            None => Tags::new().with("role", "balancer"),
            Some(p) => Tags::new()
                .with("role", "backend")
                .and_then(|t| t.with("port", &p.to_string())),
        };
        config.tags = tags.map_err(|e| CliError(format!("demo tags: {e}")))?;
        let agent = Agent::start(config).await?;
        let handle = agent.handle();
        let mut events = handle.events();
        let tx = self.tx.clone();
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
        let role = if port.is_some() {
            "backend"
        } else {
            "balancer"
        };
        let web = port.map_or(String::new(), |p| format!(", web server on 127.0.0.1:{p}"));
        println!(
            "started {name:<8} role={role:<9} gossip on {}{web}",
            agent.local_addr()
        );
        if let Some(seed) = self.handles.first().map(|h| h.local().addr) {
            handle.join([seed]).await?;
        }
        self.names.push(name.clone());
        self.agents.push(Some(agent));
        self.handles.push(handle);
        self.views.push(BTreeSet::from([name]));
        Ok(i)
    }

    /// Prints `what` with the time since the demo started.
    pub(super) fn say(&self, what: &str) {
        println!("[{:>6.2}s] {what}", self.start.elapsed().as_secs_f64());
    }

    /// Waits until every agent sees every agent alive, printing each agent's view as it
    /// grows.
    pub(super) async fn converge(&mut self) -> Result<Duration, CliError> {
        let n = self.names.len();
        let began = Instant::now();
        let deadline = began + CONVERGE_TIMEOUT;
        let mut last_print = began - PROGRESS_EVERY;
        let mut dirty = true;
        loop {
            let done = self.views.iter().all(|v| v.len() == n);
            if dirty && (done || last_print.elapsed() >= PROGRESS_EVERY) {
                let row: Vec<String> = self
                    .views
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
                dirty |= self.views[s.observer].insert(member.name.clone());
            }
        }
    }

    /// Crashes agent `i`: its task is dropped, no leave is sent.
    pub(super) fn crash(&mut self, i: usize) {
        if let Some(agent) = self.agents[i].take() {
            agent.crash();
        }
    }

    /// Makes agent `i` leave gracefully; returns once its leave is gossiped and its
    /// propagate delay is over, as a service manager would see the agent exit.
    pub(super) fn leave(&mut self, i: usize) -> tokio::task::JoinHandle<()> {
        let agent = self.agents[i].take();
        tokio::spawn(async move {
            if let Some(agent) = agent {
                let _ = agent.shutdown().await;
            }
        })
    }

    /// Waits until every observer reports `subject` with status `want`, printing what
    /// each observer sees of it.
    pub(super) async fn wait_for(
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
            let cause = if want == Status::Failed {
                "crash"
            } else {
                "leave"
            };
            self.say(&format!(
                "{observer} {what} {name}  ({:.2} s after the {cause})",
                after.as_secs_f64()
            ));
            if member.status == want {
                d.times.entry(s.observer).or_insert(after);
            } else if matches!(member.status, Status::Left | Status::Failed) {
                d.wrong.push((s.observer, member.status));
            }
        }
        d
    }

    /// Prints agent `observer`'s member table, indented.
    pub(super) async fn print_table(&self, observer: usize) {
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
    pub(super) async fn stop(&mut self) {
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
