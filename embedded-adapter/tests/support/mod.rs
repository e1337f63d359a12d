//! Support for the tests on emulated boards and real network stacks: the firmware build and
//! QEMU boards with their consoles ([`board`]), the loopback Ethernet hub ([`hub`]), network
//! namespaces with bridges and tap devices ([`netns`]), `rumor agent` processes ([`agent`]),
//! a segment putting boards and agents together ([`segment`]) and a smoltcp node on a tap
//! device of the host ([`tap_node`]).
//!
//! Each test binary uses a part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub(crate) mod agent;
pub(crate) mod board;
pub(crate) mod hub;
pub(crate) mod netns;
pub(crate) mod segment;
pub(crate) mod tap_node;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The lines a child process prints, each with the instant the test read it, collected by
/// a thread of their own until the stream ends.
#[derive(Debug)]
pub(crate) struct Transcript {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Transcript {
    /// Starts collecting `stream`.
    pub(crate) fn collect(stream: impl Read + Send + 'static) -> Transcript {
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push((Instant::now(), line));
                }
            })
        };
        Transcript {
            lines,
            reader: Some(reader),
        }
    }

    /// How many lines so far.
    pub(crate) fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The first line from number `from` on that satisfies `f`.
    pub(crate) fn find(&self, from: usize, f: impl Fn(&str) -> bool) -> Option<(Instant, String)> {
        let lines = self.lines.lock().unwrap();
        lines.get(from..)?.iter().find(|(_, l)| f(l)).cloned()
    }

    /// Every line so far.
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the stream to end (its writer must be gone).
    pub(crate) fn finish(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Calls `f` every `every` until it returns `Some`, for at most `limit`.
pub(crate) fn poll_until<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(every);
    }
}

/// Runs `command` to completion, killing it (by PID) when it takes longer than `limit`.
/// `None` when it could not start or was killed.
pub(crate) fn run_bounded(mut command: Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Drain both pipes while waiting, so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take()?;
    let mut stderr = child.stderr.take()?;
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = poll_until(limit, Duration::from_millis(10), || {
        child.try_wait().ok().flatten()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    Some(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
