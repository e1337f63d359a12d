//! The demo's HTTP client: requests through HAProxy all along, one new TCP connection
//! each, counted per phase (answers per backend, failures and their first reasons).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Pause after each request: with a request's own millisecond or so, about 150 a second.
const GAP: Duration = Duration::from_millis(6);
/// Longest a request may take, connection included, before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(1);
/// Most requests the client sends, and the longest it runs (the demo ends well before).
const MAX_REQUESTS: u32 = 20_000;
/// See [`MAX_REQUESTS`].
const MAX_RUN: Duration = Duration::from_secs(120);
/// Largest answer read.
const MAX_ANSWER: u64 = 4096;
/// Failure reasons kept per phase.
const KEPT_ERRORS: usize = 3;

/// Requests of one phase.
#[derive(Clone, Debug, Default)]
pub(super) struct PhaseCount {
    /// What changed in it.
    pub(super) name: String,
    /// Answers per backend (the body of each 200 answer).
    pub(super) answers: BTreeMap<String, u64>,
    /// Requests that failed.
    pub(super) failed: u64,
    /// The first few failure reasons.
    pub(super) errors: Vec<String>,
    /// When it began.
    began: Option<Instant>,
    /// How long it lasted (set when the next one begins).
    pub(super) lasted: Duration,
}

impl PhaseCount {
    /// Requests answered.
    pub(super) fn answered(&self) -> u64 {
        self.answers.values().sum()
    }
}

/// The client, running until dropped or [`finish`](Self::finish)ed.
#[derive(Debug)]
pub(super) struct Traffic {
    /// Every phase so far, the current one last.
    phases: Arc<Mutex<Vec<PhaseCount>>>,
    /// The request loop.
    task: JoinHandle<()>,
}

impl Traffic {
    /// Starts sending requests to `frontend`, counting them in a first phase `name`.
    pub(super) fn start(frontend: SocketAddr, name: &str) -> Traffic {
        let phases = Arc::new(Mutex::new(Vec::new()));
        let traffic = Traffic {
            phases: phases.clone(),
            task: tokio::spawn(async move {
                let end = Instant::now() + MAX_RUN;
                for _ in 0..MAX_REQUESTS {
                    if Instant::now() >= end {
                        break;
                    }
                    // A request counts in the phase it was sent in.
                    let sent_in = lock(&phases).len().saturating_sub(1);
                    let result = tokio::time::timeout(DEADLINE, get(frontend))
                        .await
                        .unwrap_or_else(|_| Err("no answer within 1 s".to_owned()));
                    if let Some(p) = lock(&phases).get_mut(sent_in) {
                        match result {
                            Ok(backend) => *p.answers.entry(backend).or_default() += 1,
                            Err(e) => {
                                p.failed += 1;
                                if p.errors.len() < KEPT_ERRORS && !p.errors.contains(&e) {
                                    p.errors.push(e);
                                }
                            }
                        }
                    }
                    tokio::time::sleep(GAP).await;
                }
            }),
        };
        traffic.phase(name);
        traffic
    }

    /// Ends the current phase and starts counting `name`.
    pub(super) fn phase(&self, name: &str) {
        let mut phases = lock(&self.phases);
        if let Some(p) = phases.last_mut() {
            p.lasted = p.began.map_or(Duration::ZERO, |b| b.elapsed());
        }
        phases.push(PhaseCount {
            name: name.to_owned(),
            began: Some(Instant::now()),
            ..PhaseCount::default()
        });
    }

    /// The current phase's counts so far.
    pub(super) fn current(&self) -> PhaseCount {
        let mut p = lock(&self.phases).last().cloned().unwrap_or_default();
        p.lasted = p.began.map_or(Duration::ZERO, |b| b.elapsed());
        p
    }

    /// Stops the client and returns every phase.
    pub(super) fn finish(self) -> Vec<PhaseCount> {
        self.phase("");
        self.task.abort();
        let mut phases = std::mem::take(&mut *lock(&self.phases));
        phases.pop();
        phases
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The phases, poisoned or not: a count is still a count.
fn lock(phases: &Mutex<Vec<PhaseCount>>) -> std::sync::MutexGuard<'_, Vec<PhaseCount>> {
    phases.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One `GET /` on a new connection: the answering backend's name, or why it failed.
async fn get(frontend: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect(frontend)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    (&mut s)
        .take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let status = answer.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(if status.is_empty() {
            "empty answer".to_owned()
        } else {
            status.to_owned()
        });
    }
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .ok_or_else(|| "no body".to_owned())
}

/// Prints one phase as a small table: answers per backend, failures, and the connections
/// HAProxy `retried` (on another server) to get them.
pub(super) fn print_phase(p: &PhaseCount, retried: u64) {
    println!(
        "    requests through HAProxy during \"{}\" ({:.1} s):",
        p.name,
        p.lasted.as_secs_f64()
    );
    println!("      {:<10} {:>7}", "backend", "answers");
    for (backend, n) in &p.answers {
        println!("      {backend:<10} {n:>7}");
    }
    println!("      {:<10} {:>7}", "failed", p.failed);
    println!(
        "      {:<10} {:>7}  (by HAProxy, on another server)",
        "retried", retried
    );
    for e in &p.errors {
        println!("        failure: {e}");
    }
}

/// Prints every phase, one row each, with HAProxy's retries and redispatches in it.
pub(super) fn print_phases(phases: &[PhaseCount], retried: &[u64]) {
    println!(
        "  {:<18} {:>8} {:>6} {:>7}  answers per backend",
        "phase", "answered", "failed", "retried"
    );
    for (i, p) in phases.iter().enumerate() {
        let r = retried.get(i).copied().unwrap_or_default();
        let per: Vec<String> = p.answers.iter().map(|(b, n)| format!("{b} {n}")).collect();
        println!(
            "  {:<18} {:>8} {:>6} {:>7}  {}",
            p.name,
            p.answered(),
            p.failed,
            r,
            per.join(", ")
        );
    }
}
