//! The lab's load generator (`examples/haproxy-lab/measure.sh`): sends HTTP/1.0 `GET`s
//! at a steady rate, one new TCP connection per request, each with a deadline, and counts
//! them per phase. Phases come from standard input, one command a line:
//!
//! ```text
//! phase NAME     requests sent from now on count under NAME (until the next phase)
//! end            stop sending (so does the end of input), wait for the requests in
//!                flight, print the table and exit
//! ```
//!
//! Requests sent before the first `phase` line are not counted. A request is `ok` when
//! the answer is `200` and its body names the backend that served it (the lab's web
//! application answers `{"host":"<name>",...}`); anything else, or no full answer within
//! the deadline, is `failed`, with its reason. The table (markdown, on stdout) gives, per
//! phase, the requests sent, ok and failed, the reasons, and each backend that answered
//! with its count and the times of its first and last answer after the phase started.
//!
//! ```text
//! rumor-lab-load [--rate N] [--deadline-ms MS] [--max-secs S] ADDR|http://HOST:PORT/PATH
//! ```
//!
//! Defaults: 200 requests/s, a 1000 ms deadline, and at most 3600 s of sending.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Most bytes of an answer read; the lab's answers are about 150.
const MAX_ANSWER: usize = 64 * 1024;

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Requests started per second.
    rate: u32,
    /// Longest time a request may take, connect to last byte.
    deadline: Duration,
    /// Longest time the generator sends, whatever its input says.
    max_time: Duration,
    /// Where and what to ask.
    target: Target,
}

/// Where requests go and what they ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header.
    host: String,
    /// The request path.
    path: String,
}

/// One line of standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    /// Count what is sent from now on under this name.
    Phase(String),
    /// Stop sending.
    End,
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// `200` from the named backend.
    Ok(String),
    /// Anything else: why.
    Failed(String),
}

/// The counts of one backend in one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backend {
    /// Requests it answered.
    answers: u64,
    /// Its first answer, after the phase started.
    first: Duration,
    /// Its last answer, after the phase started.
    last: Duration,
}

/// The counts of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phase {
    /// Its name, from the `phase` line.
    name: String,
    /// When it started.
    started: Instant,
    /// How long it lasted (set when the next phase starts or sending stops).
    length: Option<Duration>,
    /// Requests sent in it.
    sent: u64,
    /// Requests sent in it that succeeded.
    ok: u64,
    /// Requests sent in it that failed, by reason.
    failed: BTreeMap<String, u64>,
    /// Who answered, by backend name.
    backends: BTreeMap<String, Backend>,
}

/// Every phase's counts; a request counts in the phase it was sent in.
#[derive(Debug, Default)]
struct Tally {
    /// The phases, in order.
    phases: Vec<Phase>,
    /// Every backend that answered so far, in any phase.
    seen: std::collections::BTreeSet<String>,
}

impl Tally {
    /// Starts a phase at `now`: what is sent from now on counts under `name`.
    fn start_phase(&mut self, name: String, now: Instant) {
        self.close(now);
        self.phases.push(Phase {
            name,
            started: now,
            length: None,
            sent: 0,
            ok: 0,
            failed: BTreeMap::new(),
            backends: BTreeMap::new(),
        });
    }

    /// Ends the current phase at `now`.
    fn close(&mut self, now: Instant) {
        if let Some(p) = self.phases.last_mut() {
            p.length
                .get_or_insert(now.saturating_duration_since(p.started));
        }
    }

    /// Counts a request sent now; returns the phase it counts in (none before the first).
    fn sent(&mut self) -> Option<usize> {
        let i = self.phases.len().checked_sub(1)?;
        self.phases[i].sent += 1;
        Some(i)
    }

    /// Counts how a request sent in phase `i` ended, at `at`; returns the backend's name
    /// when this is the first answer from it (in the whole run, phases or not).
    fn record(&mut self, i: usize, outcome: Outcome, at: Instant) -> Option<String> {
        let new = match &outcome {
            Outcome::Ok(host) if !self.seen.contains(host) => {
                self.seen.insert(host.clone());
                Some(host.clone())
            }
            _ => None,
        };
        let Some(p) = self.phases.get_mut(i) else {
            return new;
        };
        match outcome {
            Outcome::Ok(host) => {
                p.ok += 1;
                let since = at.saturating_duration_since(p.started);
                let b = p.backends.entry(host).or_insert(Backend {
                    answers: 0,
                    first: since,
                    last: since,
                });
                b.answers += 1;
                b.first = b.first.min(since);
                b.last = b.last.max(since);
            }
            Outcome::Failed(why) => *p.failed.entry(why).or_insert(0) += 1,
        }
        new
    }

    /// The table: one markdown row per phase.
    fn table(&self) -> String {
        let mut out = String::from(
            "| phase | seconds | sent | ok | failed | failures | backends: answers [first, last answer after the phase started] |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for p in &self.phases {
            let failed: u64 = p.failed.values().sum();
            let reasons = join_or_dash(p.failed.iter().map(|(why, n)| format!("{n} {why}")));
            let backends = join_or_dash(p.backends.iter().map(|(name, b)| {
                format!(
                    "{name} {} [{:.3}, {:.3} s]",
                    b.answers,
                    b.first.as_secs_f64(),
                    b.last.as_secs_f64()
                )
            }));
            let seconds = p.length.map_or(0.0, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "| {} | {seconds:.1} | {} | {} | {failed} | {reasons} | {backends} |",
                p.name, p.sent, p.ok
            );
        }
        out
    }
}

/// The items joined with ", ", or "-" when there are none.
fn join_or_dash(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

/// Parses the arguments after the program name.
fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut rate = 200;
    let mut deadline = Duration::from_millis(1000);
    let mut max_time = Duration::from_secs(3600);
    let mut target = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--rate" => {
                rate = u32::try_from(value("--rate")?)
                    .ok()
                    .filter(|r| (1..=100_000).contains(r))
                    .ok_or("--rate must be 1 to 100000")?;
            }
            "--deadline-ms" => deadline = Duration::from_millis(value("--deadline-ms")?.max(1)),
            "--max-secs" => max_time = Duration::from_secs(value("--max-secs")?),
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a if target.is_none() => target = Some(parse_target(a)?),
            a => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Options {
        rate,
        deadline,
        max_time,
        target: target.ok_or("the target (ADDR or http://HOST:PORT/PATH) is missing")?,
    })
}

/// Parses `host:port`, `http://host[:port][/path]`: where to connect, the `Host` header
/// and the path.
fn parse_target(s: &str) -> Result<Target, String> {
    let rest = s.strip_prefix("http://").unwrap_or(s);
    if rest.contains("://") {
        return Err(format!("{s}: only http:// is supported"));
    }
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() {
        return Err(format!("{s}: no host"));
    }
    // A port is there when the text after the last ':' is a number (and, for IPv6, after
    // the closing bracket).
    let has_port = hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok());
    let addr = if has_port {
        hostport.to_owned()
    } else if s.starts_with("http://") {
        format!("{hostport}:80")
    } else {
        return Err(format!("{s}: no port (ADDR is host:port)"));
    };
    Ok(Target {
        addr,
        host: hostport.to_owned(),
        path: path.to_owned(),
    })
}

/// Parses one input line; `None` for a blank line or a `#` comment.
fn parse_command(line: &str) -> Option<Result<Command, String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    Some(match (word, rest.trim()) {
        ("end", "") => Ok(Command::End),
        ("phase", "") => Err("phase needs a name".to_owned()),
        ("phase", name) => Ok(Command::Phase(name.to_owned())),
        _ => Err(format!("unknown command {line:?} (phase NAME, end)")),
    })
}

/// What an answer says: `Ok(host)` for a `200` whose body names the backend.
fn classify(answer: &[u8]) -> Outcome {
    if answer.is_empty() {
        return Outcome::Failed("empty answer".to_owned());
    }
    let text = String::from_utf8_lossy(answer);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        None => Outcome::Failed("not HTTP".to_owned()),
        Some(200) => match backend_name(&text) {
            Some(host) => Outcome::Ok(host.to_owned()),
            None => Outcome::Failed("200 without host".to_owned()),
        },
        Some(code) => Outcome::Failed(format!("HTTP {code}")),
    }
}

/// The value of the `"host":"..."` field in the answer's body.
fn backend_name(text: &str) -> Option<&str> {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, b)| b);
    let start = body.find("\"host\":\"")? + "\"host\":\"".len();
    let len = body[start..].find('"')?;
    Some(&body[start..start + len]).filter(|h| !h.is_empty())
}

/// A short name for an I/O error, as a failure reason.
fn io_reason(stage: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let what = match e.kind() {
        K::ConnectionRefused => "refused",
        K::ConnectionReset => "reset",
        K::ConnectionAborted => "aborted",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::TimedOut => "timed out",
        K::AddrNotAvailable => "no local address",
        _ => return format!("{stage}: {e}"),
    };
    format!("{stage}: {what}")
}

/// Sends one request and reads the answer, within `deadline`.
async fn request(target: &Target, deadline: Duration) -> Outcome {
    let until = Instant::now() + deadline;
    let mut conn = match tokio::time::timeout_at(until, TcpStream::connect(&target.addr)).await {
        Err(_) => return Outcome::Failed("connect: deadline".to_owned()),
        Ok(Err(e)) => return Outcome::Failed(io_reason("connect", &e)),
        Ok(Ok(c)) => c,
    };
    let exchange = async {
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rumor-lab-load\r\n\r\n",
            target.path, target.host
        );
        conn.write_all(req.as_bytes())
            .await
            .map_err(|e| io_reason("send", &e))?;
        let mut answer = Vec::with_capacity(512);
        let mut buf = [0u8; 4096];
        // Until the server closes (HTTP/1.0), at most MAX_ANSWER bytes.
        while answer.len() < MAX_ANSWER {
            match conn.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if answer.is_empty() => return Err(io_reason("answer", &e)),
                Err(_) => break,
            }
        }
        Ok(answer)
    };
    match tokio::time::timeout_at(until, exchange).await {
        Err(_) => Outcome::Failed("answer: deadline".to_owned()),
        Ok(Err(why)) => Outcome::Failed(why),
        Ok(Ok(answer)) => classify(&answer),
    }
}

/// Reads commands from standard input on a thread of its own; `End` at the end of input.
fn read_commands(tx: mpsc::Sender<Command>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let command = match parse_command(&line) {
                None => continue,
                Some(Err(e)) => {
                    eprintln!("rumor-lab-load: {e}");
                    continue;
                }
                Some(Ok(Command::End)) => break,
                Some(Ok(c)) => c,
            };
            // The receiver is gone only once sending stopped.
            if tx.blocking_send(command).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(Command::End);
    });
}

/// Sends at the configured rate until `end`, the end of input or `max_time`, then waits
/// for the requests in flight and returns the counts.
async fn run(opts: Options) -> Tally {
    let (cmd_tx, mut commands) = mpsc::channel(16);
    read_commands(cmd_tx);
    let (done_tx, mut done) = mpsc::unbounded_channel::<(usize, Outcome, Instant)>();
    let target = std::sync::Arc::new(opts.target);
    let mut tally = Tally::default();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / opts.rate);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let stop_at = Instant::now() + opts.max_time;
    // Requests not counted (before the first phase) are sent all the same: the load is on
    // from the start.
    let mut in_flight = 0usize;
    let cap = (opts.rate as usize).saturating_mul(4).max(64);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let phase = tally.sent();
                if in_flight >= cap {
                    // Never expected: each request ends by its deadline.
                    if let Some(i) = phase {
                        let _ = tally.record(i, Outcome::Failed("not sent: too many in flight".to_owned()), Instant::now());
                    }
                    continue;
                }
                in_flight += 1;
                let (target, tx, deadline) = (target.clone(), done_tx.clone(), opts.deadline);
                tokio::spawn(async move {
                    let outcome = request(&target, deadline).await;
                    let _ = tx.send((phase.unwrap_or(usize::MAX), outcome, Instant::now()));
                });
            }
            Some((i, outcome, at)) = done.recv() => {
                in_flight -= 1;
                if let Some(host) = tally.record(i, outcome, at) {
                    // Live, for a script waiting for a new backend (flushed: unbuffered).
                    eprintln!("rumor-lab-load: first answer from {host}");
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Phase(name)) => tally.start_phase(name, Instant::now()),
                Some(Command::End) | None => break,
            },
            _ = tokio::time::sleep_until(stop_at) => {
                eprintln!("rumor-lab-load: --max-secs reached, stopping");
                break;
            }
        }
    }
    tally.close(Instant::now());
    // Every request in flight ends by its deadline.
    let drain_until = Instant::now() + opts.deadline + Duration::from_millis(500);
    while in_flight > 0 {
        match tokio::time::timeout_at(drain_until, done.recv()).await {
            Ok(Some((i, outcome, at))) => {
                in_flight -= 1;
                let _ = tally.record(i, outcome, at);
            }
            _ => break,
        }
    }
    tally
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "rumor-lab-load: {e}\nusage: rumor-lab-load [--rate N] [--deadline-ms MS] [--max-secs S] ADDR|http://HOST:PORT/PATH"
            );
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let tally = rt.block_on(run(opts));
    print!("{}", tally.table());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_have_defaults_and_take_flags() {
        let o = parse_options(&args("192.168.42.42:80")).unwrap();
        assert_eq!(o.rate, 200);
        assert_eq!(o.deadline, Duration::from_secs(1));
        assert_eq!(o.target.addr, "192.168.42.42:80");
        let o = parse_options(&args("--rate 50 --deadline-ms 300 --max-secs 9 h:1")).unwrap();
        assert_eq!(
            (o.rate, o.deadline, o.max_time),
            (50, Duration::from_millis(300), Duration::from_secs(9))
        );
        assert!(parse_options(&args("--rate 0 h:1")).is_err());
        assert!(parse_options(&args("--rate")).is_err());
        assert!(parse_options(&args("--bogus h:1")).is_err());
        assert!(parse_options(&args("h:1 h:2")).is_err());
        assert!(parse_options(&[]).is_err());
    }

    #[test]
    fn targets_are_addresses_or_http_urls() {
        let t = parse_target("http://192.168.42.42/x?y").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.host.as_str(), t.path.as_str()),
            ("192.168.42.42:80", "192.168.42.42", "/x?y")
        );
        let t = parse_target("lab:8080").unwrap();
        assert_eq!((t.addr.as_str(), t.path.as_str()), ("lab:8080", "/"));
        assert_eq!(parse_target("[::1]:80").unwrap().addr, "[::1]:80");
        assert!(parse_target("lab").is_err());
        assert!(parse_target("https://lab/").is_err());
        assert!(parse_target("http:///").is_err());
    }

    #[test]
    fn commands_are_phase_and_end() {
        assert_eq!(
            parse_command("phase join s4\n"),
            Some(Ok(Command::Phase("join s4".to_owned())))
        );
        assert_eq!(parse_command("  end "), Some(Ok(Command::End)));
        assert_eq!(parse_command(""), None);
        assert_eq!(parse_command("# note"), None);
        assert!(matches!(parse_command("phase"), Some(Err(_))));
        assert!(matches!(parse_command("stop"), Some(Err(_))));
    }

    #[test]
    fn answers_are_classified() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"hello\":\"rumor lab\",\"host\":\"s1\",\"ip\":\"x\"}\n";
        assert_eq!(classify(ok), Outcome::Ok("s1".to_owned()));
        let down = b"HTTP/1.1 503 Service Unavailable\r\n\r\n<html>No server</html>";
        assert_eq!(classify(down), Outcome::Failed("HTTP 503".to_owned()));
        assert_eq!(classify(b""), Outcome::Failed("empty answer".to_owned()));
        assert_eq!(classify(b"garbage"), Outcome::Failed("not HTTP".to_owned()));
        let anon = b"HTTP/1.0 200 OK\r\n\r\n{}";
        assert_eq!(
            classify(anon),
            Outcome::Failed("200 without host".to_owned())
        );
        // A header does not name the backend; only the body does.
        let header = b"HTTP/1.0 200 OK\r\nX: \"host\":\"h\"\r\n\r\n{}";
        assert_eq!(
            classify(header),
            Outcome::Failed("200 without host".to_owned())
        );
    }

    #[test]
    fn a_request_counts_in_the_phase_it_was_sent_in() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        assert_eq!(t.sent(), None, "nothing counts before the first phase");
        t.start_phase("steady".to_owned(), t0);
        let a = t.sent().unwrap();
        let b = t.sent().unwrap();
        t.start_phase("join".to_owned(), t0 + Duration::from_secs(10));
        // Answers to steady's requests arrive during join: they still count in steady.
        let first = t.record(
            a,
            Outcome::Ok("s1".to_owned()),
            t0 + Duration::from_millis(10_100),
        );
        assert_eq!(first.as_deref(), Some("s1"), "s1's first answer is news");
        let _ = t.record(
            b,
            Outcome::Failed("HTTP 503".to_owned()),
            t0 + Duration::from_millis(10_200),
        );
        let c = t.sent().unwrap();
        let _ = t.record(
            c,
            Outcome::Ok("s4".to_owned()),
            t0 + Duration::from_millis(11_500),
        );
        t.close(t0 + Duration::from_secs(12));
        let [steady, join] = &t.phases[..] else {
            panic!("two phases")
        };
        assert_eq!(
            (steady.sent, steady.ok, steady.length),
            (2, 1, Some(Duration::from_secs(10)))
        );
        assert_eq!(steady.failed.get("HTTP 503"), Some(&1));
        assert_eq!((join.sent, join.ok), (1, 1));
        let s4 = join.backends["s4"];
        assert_eq!(
            (s4.answers, s4.first, s4.last),
            (1, Duration::from_millis(1500), Duration::from_millis(1500))
        );
        let table = t.table();
        assert!(
            table.contains("| steady | 10.0 | 2 | 1 | 1 | 1 HTTP 503 | s1 1 [10.100, 10.100 s] |"),
            "{table}"
        );
        assert!(
            table.contains("| join | 2.0 | 1 | 1 | 0 | - | s4 1 [1.500, 1.500 s] |"),
            "{table}"
        );
    }

    #[test]
    fn backends_keep_their_first_and_last_answer() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.start_phase("p".to_owned(), t0);
        let mut news = Vec::new();
        for ms in [300, 100, 200] {
            let i = t.sent().unwrap();
            news.extend(t.record(
                i,
                Outcome::Ok("s2".to_owned()),
                t0 + Duration::from_millis(ms),
            ));
        }
        assert_eq!(news, ["s2"], "only the first answer from s2 is news");
        let b = t.phases[0].backends["s2"];
        assert_eq!(
            (b.answers, b.first, b.last),
            (3, Duration::from_millis(100), Duration::from_millis(300))
        );
    }
}
