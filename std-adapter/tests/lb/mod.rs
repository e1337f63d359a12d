//! Helpers for the HAProxy tests: a real HAProxy in master-worker mode (its process group
//! killed when dropped), small HTTP backends, and an HTTP client that sends requests
//! through HAProxy all along and counts failures per phase. Loopback only.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rumor_std::render::{Endpoint, RuntimeApi};

/// A loopback address for this test process: 127.<pid>.<n> keeps parallel test binaries
/// apart, and n from 200 up keeps clear of `common::loopback_ip`.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(200);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 255, "too many loopback addresses in one test binary");
    let pid = std::process::id();
    Ipv4Addr::new(127, (pid >> 8) as u8, pid as u8, n)
}

/// A free TCP port on `ip`.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a probe socket")
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    crate::common::wait::poll_until(Duration::from_millis(100), timeout, f)
}

/// Fails the test with a clear message when HAProxy is missing (`scripts/test` installs
/// Debian's package).
pub fn require_haproxy() {
    let ok = Command::new("haproxy")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "haproxy is not installed: run `apt-get install -y haproxy` (scripts/test does)"
    );
}

/// The global, defaults and frontend sections of the test's HAProxy, as in the lab:
/// the stats socket at `sock`, the frontend on `frontend`.
pub fn prelude(sock: &Path, frontend: SocketAddr) -> String {
    format!(
        "global\n    stats socket {} mode 600 level admin\n    stats timeout 30s\n\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend localnodes\n    bind {frontend}\n    default_backend nodes\n\n",
        sock.display()
    )
}

/// Lines of the test's backend section before the servers (the lab's, minus headers).
pub const BACKEND_LINES: [&str; 2] = ["balance roundrobin", "option httpchk HEAD /"];

/// HAProxy in master-worker mode (`-W`), in its own process group, killed with its
/// workers when dropped.
#[derive(Debug)]
pub struct Haproxy {
    child: Option<Child>,
    pub cfg: PathBuf,
    pub pid_file: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
}

impl Haproxy {
    /// Starts `haproxy -W -f cfg -p pid_file` and waits for its stats socket.
    pub fn start(cfg: &Path, pid_file: &Path, sock: &Path) -> Haproxy {
        use std::os::unix::process::CommandExt;
        let log = cfg.with_extension("log");
        let out = std::fs::File::create(&log).expect("create the HAProxy log");
        let child = Command::new("haproxy")
            .arg("-W")
            .arg("-f")
            .arg(cfg)
            .arg("-p")
            .arg(pid_file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start haproxy");
        let h = Haproxy {
            child: Some(child),
            cfg: cfg.to_owned(),
            pid_file: pid_file.to_owned(),
            sock: sock.to_owned(),
            log,
        };
        let up = wait_for(Duration::from_secs(20), || h.api().worker_pid().ok());
        assert!(up.is_some(), "HAProxy did not start:\n{}", h.log_text());
        h
    }

    /// Its runtime API.
    pub fn api(&self) -> RuntimeApi {
        RuntimeApi {
            endpoint: Endpoint::Unix(self.sock.clone()),
            timeout: Duration::from_secs(5),
        }
    }

    /// Servers of `backend` in rotation (not in maintenance or drain), sorted.
    pub fn in_rotation(&self, backend: &str) -> Option<Vec<String>> {
        let mut names: Vec<String> = self
            .api()
            .servers(backend)
            .ok()?
            .into_iter()
            .filter(|s| !s.maint && !s.drain)
            .map(|s| s.name)
            .collect();
        names.sort();
        Some(names)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics if a worker died other than by a reload (e.g. `exited with code 139
    /// (Segmentation fault)`), with the log.
    pub fn assert_no_worker_died(&self) {
        let log = self.log_text();
        let died: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("exited with code") && !l.contains("exited with code 0 "))
            .collect();
        assert!(died.is_empty(), "HAProxy workers died: {died:?}\n{log}");
    }

    /// Waits (at most 5 s) until HAProxy's output mentions `needle`: the master writes its
    /// complaint about a refused file on its own schedule, after the reload was judged.
    pub fn log_mentions(&self, needle: &str) -> bool {
        wait_for(Duration::from_secs(5), || {
            self.log_text().contains(needle).then_some(())
        })
        .is_some()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
            if wait_for(Duration::from_secs(3), || child.try_wait().ok().flatten()).is_none() {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
        }
        let _ = child.wait();
    }
}

/// A tiny HTTP server answering every request with its name (`HEAD` too, for health
/// checks), one thread per connection, `Connection: close`.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts serving on a free port of `ip`.
    pub fn start(name: &str, ip: Ipv4Addr) -> Backend {
        let listener = TcpListener::bind((ip, 0)).expect("bind a backend");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, hits, name) = (stop.clone(), hits.clone(), name.to_owned());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (hits, name) = (hits.clone(), name.clone());
                    thread::spawn(move || serve(conn, &name, &hits));
                }
            })
        };
        Backend {
            name: name.to_owned(),
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting and closes the listening socket: new connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut conn: TcpStream, name: &str, hits: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = buf.starts_with(b"HEAD ");
    if !head {
        hits.fetch_add(1, Ordering::Relaxed);
    }
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        name.len()
    );
    if !head {
        answer.push_str(name);
    }
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}

/// One `GET /` through `frontend`: the answering backend's name, or why it failed.
pub fn get(frontend: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&frontend, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let status = answer.lines().next().unwrap_or("").to_owned();
    if !status.contains(" 200 ") {
        return Err(if status.is_empty() {
            "empty answer".into()
        } else {
            status
        });
    }
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| lab_host(body).unwrap_or(body).to_owned())
        .ok_or_else(|| "no body".into())
}

/// The `host` of the lab web application's JSON answer (`{"hello":...,"host":"web-1",...}`).
fn lab_host(body: &str) -> Option<&str> {
    let (_, rest) = body.split_once("\"host\":\"")?;
    rest.split_once('"').map(|(host, _)| host)
}

/// Requests and failures of one phase.
#[derive(Clone, Debug, Default)]
pub struct PhaseCount {
    pub name: String,
    pub ok: u64,
    pub failed: u64,
    /// Answers per backend.
    pub by_backend: BTreeMap<String, u64>,
    /// The first few failure reasons.
    pub errors: Vec<String>,
    /// When the last failure was seen.
    pub last_failure: Option<Instant>,
}

/// An HTTP client sending one request every `gap` through HAProxy, from start to
/// [`Traffic::finish`] (or at most `limit`), counting each in the phase it was sent in.
#[derive(Debug)]
pub struct Traffic {
    phases: Arc<Mutex<Vec<PhaseCount>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    pub fn start(frontend: SocketAddr, gap: Duration, limit: Duration) -> Traffic {
        let phases = Arc::new(Mutex::new(vec![PhaseCount {
            name: "start".into(),
            ..PhaseCount::default()
        }]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (phases, stop) = (phases.clone(), stop.clone());
            thread::spawn(move || {
                let end = Instant::now() + limit;
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    // A request counts in the phase it was sent in: one that HAProxy
                    // retries for seconds must not land in the next phase.
                    let sent_in = phases.lock().unwrap().len() - 1;
                    let result = get(frontend);
                    let mut phases = phases.lock().unwrap();
                    let p = &mut phases[sent_in];
                    match result {
                        Ok(backend) => {
                            p.ok += 1;
                            *p.by_backend.entry(backend).or_default() += 1;
                        }
                        Err(e) => {
                            p.failed += 1;
                            p.last_failure = Some(Instant::now());
                            if p.errors.len() < 5 {
                                p.errors.push(e);
                            }
                        }
                    }
                    drop(phases);
                    thread::sleep(gap);
                }
            })
        };
        Traffic {
            phases,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts counting a new phase.
    pub fn phase(&self, name: &str) {
        self.phases.lock().unwrap().push(PhaseCount {
            name: name.into(),
            ..PhaseCount::default()
        });
    }

    /// The counts of the current phase so far.
    pub fn current(&self) -> PhaseCount {
        self.phases
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Stops the client and returns every phase.
    pub fn finish(mut self) -> Vec<PhaseCount> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.phases.lock().unwrap().clone()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fails the test if any request failed in a phase, except the phases `expected_failures`
/// says may lose requests.
pub fn assert_no_failed_requests(phases: &[PhaseCount], expected_failures: impl Fn(&str) -> bool) {
    for p in phases.iter().filter(|p| !expected_failures(&p.name)) {
        assert_eq!(
            p.failed, 0,
            "requests failed in phase {:?}: {:?}",
            p.name, p.errors
        );
    }
}

/// Prints the phases as a table.
pub fn print_phases(phases: &[PhaseCount]) {
    println!(
        "{:<34} {:>6} {:>7}  answers per backend",
        "phase", "ok", "failed"
    );
    for p in phases {
        println!(
            "{:<34} {:>6} {:>7}  {:?}",
            p.name, p.ok, p.failed, p.by_backend
        );
        for e in &p.errors {
            println!("{:<34}   failure: {e}", "");
        }
    }
}
