//! A test harness for emulated boards: builds the firmware, runs an Ethernet hub on
//! loopback UDP, boots QEMU machines on it and talks to their consoles.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Which firmware a board runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `smoltcp-node`: `rumor_embedded::smol::Driver` in a bare loop.
    Smoltcp,
    /// `embassy-node`: `rumor_embedded::embassy` on embassy-net.
    Embassy,
}

impl Flavor {
    fn binary(self) -> &'static str {
        match self {
            Flavor::Smoltcp => "smoltcp-node",
            Flavor::Embassy => "embassy-node",
        }
    }
}

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware")
}

/// Builds both firmware binaries once per test process; returns their directory.
fn firmware() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            Command::new("qemu-system-arm").arg("--version").output().is_ok(),
            "qemu-system-arm is missing: install it (scripts/test does: apt-get install qemu-system-arm)"
        );
        let dir = firmware_dir();
        let target = std::env::var_os("RUMOR_FIRMWARE_TARGET_DIR")
            .map_or_else(|| dir.join("target"), PathBuf::from);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--bins", "--target", "thumbv7em-none-eabihf"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo for the firmware");
        assert!(status.success(), "the firmware does not build");
        target.join("thumbv7em-none-eabihf/release")
    })
}

/// One emulated board.
struct Board {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    exit: Option<i32>,
}

/// The segment: a hub forwarding every frame to every other board, and the boards on it.
pub(crate) struct Segment {
    hub_port: u16,
    ports: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
    hub: Option<JoinHandle<()>>,
    boards: Vec<Board>,
}

/// A free loopback UDP port (released for QEMU to take).
fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
    s.local_addr().expect("local addr").port()
}

/// The board's address on the segment: board `i` (1-based) is 10.42.0.(10 + i). These
/// addresses exist only inside the emulated segment.
fn ip(i: usize) -> String {
    format!("10.42.0.{}", 10 + i)
}

impl Segment {
    /// Builds the firmware and starts the hub.
    pub(crate) fn new() -> Segment {
        firmware();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the hub");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("hub timeout");
        let hub_port = socket.local_addr().expect("hub addr").port();
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let hub = {
            let (ports, stop) = (ports.clone(), stop.clone());
            thread::spawn(move || {
                let mut frame = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut frame) else {
                        continue;
                    };
                    for &p in ports.lock().unwrap().iter().filter(|&&p| p != from.port()) {
                        let _ = socket.send_to(&frame[..n], ("127.0.0.1", p));
                    }
                }
            })
        };
        Segment {
            hub_port,
            ports,
            stop,
            hub: Some(hub),
            boards: Vec::new(),
        }
    }

    /// Boots a board called `name`, joining through the boards numbered in `seeds`.
    /// Returns its number (1-based, in boot order).
    pub(crate) fn board(&mut self, name: &str, flavor: Flavor, seeds: &[usize]) -> usize {
        let i = self.boards.len() + 1;
        let port = free_port();
        self.ports.lock().unwrap().push(port);
        let mut semihosting = format!(
            "enable=on,target=native,arg=firmware,arg=name={name},arg=ip={}",
            ip(i)
        );
        for s in seeds {
            semihosting += &format!(",arg=seed={}:7946", ip(*s));
        }
        let nic = format!(
            "socket,model=lan9118,mac=02:00:00:00:00:{i:02x},udp=127.0.0.1:{},localaddr=127.0.0.1:{port}",
            self.hub_port
        );
        let mut child = Command::new("qemu-system-arm")
            .args([
                "-machine",
                "mps2-an386",
                "-display",
                "none",
                "-monitor",
                "none",
            ])
            .args([
                "-serial",
                "stdio",
                "-semihosting-config",
                &semihosting,
                "-nic",
                &nic,
            ])
            .arg("-kernel")
            .arg(firmware().join(flavor.binary()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-arm");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        self.boards.push(Board {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child: Some(child),
            lines,
            reader: Some(reader),
            exit: None,
        });
        i
    }

    fn get(&self, b: usize) -> &Board {
        &self.boards[b - 1]
    }

    /// The board's name.
    pub(crate) fn name(&self, b: usize) -> &str {
        &self.get(b).name
    }

    /// Types `command` on the board's console.
    pub(crate) fn command(&mut self, b: usize, command: &str) {
        let board = &mut self.boards[b - 1];
        if let Some(stdin) = board.stdin.as_mut() {
            let _ = writeln!(stdin, "{command}");
            let _ = stdin.flush();
        }
    }

    /// Sends `command` and waits up to 3 s for the answer line starting with `prefix`.
    fn ask(&mut self, b: usize, command: &str, prefix: &str) -> Option<String> {
        let seen = self.get(b).lines.lock().unwrap().len();
        self.command(b, command);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let lines = self.get(b).lines.lock().unwrap();
            if let Some(l) = lines[seen..].iter().find(|l| l.starts_with(prefix)) {
                return Some(l.clone());
            }
            drop(lines);
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The board's member table, name to status; empty if the board does not answer.
    pub(crate) fn members(&mut self, b: usize) -> HashMap<String, String> {
        let Some(line) = self.ask(b, "members", "members") else {
            return HashMap::new();
        };
        line.split_whitespace()
            .skip(1)
            .filter_map(|w| w.split_once('='))
            .map(|(n, s)| (n.to_owned(), s.to_owned()))
            .collect()
    }

    /// What board `b` believes the status of `name` is.
    pub(crate) fn status(&mut self, b: usize, name: &str) -> Option<String> {
        self.members(b).remove(name)
    }

    /// The board's peak stack use and stack size, in bytes.
    pub(crate) fn stack(&mut self, b: usize) -> (usize, usize) {
        let line = self
            .ask(b, "memory", "memory stack=")
            .expect("memory answer");
        let (peak, size) = line["memory stack=".len()..]
            .split_once('/')
            .expect("PEAK/SIZE");
        (peak.parse().expect("peak"), size.parse().expect("size"))
    }

    /// True when the board printed `line`.
    pub(crate) fn saw_line(&self, b: usize, line: &str) -> bool {
        self.get(b).lines.lock().unwrap().iter().any(|l| l == line)
    }

    /// Polls `done` every 200 ms for at most `limit`; panics with every console on timeout.
    pub(crate) fn wait_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Segment) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return start.elapsed();
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.dump();
        panic!("condition not reached within {limit:?}");
    }

    /// Waits for the board's QEMU to exit; its exit code.
    pub(crate) fn wait_exit(&mut self, b: usize, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        let board = &mut self.boards[b - 1];
        while start.elapsed() < limit {
            if let Some(child) = board.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                board.exit = status.code();
                board.child = None;
                return board.exit;
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the board's QEMU at once, as a crash or power cut would.
    pub(crate) fn stop(&mut self, b: usize) {
        let board = &mut self.boards[b - 1];
        if let Some(mut child) = board.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn dump(&self) {
        for b in &self.boards {
            eprintln!("--- console of {} ---", b.name);
            for l in b.lines.lock().unwrap().iter() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Segment {
    /// Stops every QEMU this segment started and the hub, even when a test fails.
    fn drop(&mut self) {
        for b in 1..=self.boards.len() {
            self.stop(b);
        }
        for board in &mut self.boards {
            board.stdin = None;
            if let Some(r) = board.reader.take() {
                let _ = r.join();
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.hub.take() {
            let _ = h.join();
        }
    }
}
