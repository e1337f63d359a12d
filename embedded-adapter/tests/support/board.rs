//! Emulated boards: builds the firmware in `firmware/` once, boots QEMU mps2-an386 machines
//! running it and talks to their consoles (`members`, `memory`, `leave`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::Transcript;
use super::netns::Netns;

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

/// Builds both firmware binaries once per test process; returns their directory. The
/// firmware is its own cargo workspace; `$RUMOR_FIRMWARE_TARGET_DIR` overrides its target
/// directory (`firmware/target`).
fn firmware() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            Command::new("qemu-system-arm").arg("--version").output().is_ok(),
            "qemu-system-arm is missing: install it (scripts/test does: apt-get install qemu-system-arm)"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware");
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

/// How a board's LAN9118 reaches the segment.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Link<'a> {
    /// A port of the loopback hub (`-nic socket`): `(hub port, board port)`.
    Hub(u16, u16),
    /// A tap device in a namespace (`-nic tap`); QEMU runs inside the namespace.
    Tap(&'a Netns, &'a str),
}

/// What a board is told on its semihosting command line.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Member name.
    pub(crate) name: String,
    /// IPv4 address (a /24) on the segment.
    pub(crate) ip: Ipv4Addr,
    /// The last byte of its MAC address (02:00:00:00:00:xx).
    pub(crate) mac: u8,
    /// Members to join through, `IP:PORT`.
    pub(crate) seeds: Vec<String>,
}

/// One emulated board, stopped (SIGKILL, by PID) when dropped.
pub(crate) struct Board {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    console: Transcript,
}

impl Board {
    /// Builds the firmware if needed and boots a board.
    pub(crate) fn boot(flavor: Flavor, settings: &Settings, link: Link<'_>) -> Board {
        let kernel = firmware().join(flavor.binary());
        let mut semihosting = format!(
            "enable=on,target=native,arg=firmware,arg=name={},arg=ip={}",
            settings.name, settings.ip
        );
        for s in &settings.seeds {
            semihosting += &format!(",arg=seed={s}");
        }
        let mac = format!("02:00:00:00:00:{:02x}", settings.mac);
        let (mut command, nic) = match link {
            Link::Hub(hub, port) => (
                Command::new("qemu-system-arm"),
                format!(
                    "socket,model=lan9118,mac={mac},udp=127.0.0.1:{hub},localaddr=127.0.0.1:{port}"
                ),
            ),
            Link::Tap(ns, tap) => (
                ns.command("qemu-system-arm"),
                format!("tap,model=lan9118,mac={mac},ifname={tap},script=no,downscript=no"),
            ),
        };
        let mut child = command
            .args(["-machine", "mps2-an386", "-display", "none"])
            .args(["-monitor", "none", "-serial", "stdio"])
            .args(["-semihosting-config", &semihosting, "-nic", &nic])
            .arg("-kernel")
            .arg(kernel)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-arm");
        let console = Transcript::collect(child.stdout.take().expect("piped stdout"));
        Board {
            name: settings.name.clone(),
            stdin: child.stdin.take(),
            child: Some(child),
            console,
        }
    }

    /// The board's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Types `command` on the board's console.
    pub(crate) fn command(&mut self, command: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{command}");
            let _ = stdin.flush();
        }
    }

    /// Sends `command` and waits up to 3 s for the answer line starting with `prefix`.
    fn ask(&mut self, command: &str, prefix: &str) -> Option<String> {
        let seen = self.console.len();
        self.command(command);
        super::poll_until(Duration::from_secs(3), Duration::from_millis(10), || {
            self.console.find(seen, |l| l.starts_with(prefix))
        })
        .map(|(_, line)| line)
    }

    /// The board's member table, name to status; `None` if the board does not answer.
    pub(crate) fn view(&mut self) -> Option<BTreeMap<String, String>> {
        // A stopped board answers nothing; do not wait for it.
        self.child.as_ref()?;
        let line = self.ask("members", "members")?;
        Some(
            line.split_whitespace()
                .skip(1)
                .filter_map(|w| w.split_once('='))
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
                .collect(),
        )
    }

    /// The board's peak stack use and stack size, in bytes.
    pub(crate) fn stack(&mut self) -> (usize, usize) {
        let line = self.ask("memory", "memory stack=").expect("memory answer");
        let (peak, size) = line["memory stack=".len()..]
            .split_once('/')
            .expect("PEAK/SIZE");
        (peak.parse().expect("peak"), size.parse().expect("size"))
    }

    /// When the board printed `line` first.
    pub(crate) fn printed(&self, line: &str) -> Option<Instant> {
        self.console.find(0, |l| l == line).map(|(at, _)| at)
    }

    /// Waits up to `limit` for the board's QEMU to exit; its exit code. Once it has exited,
    /// the console has been read to its end, so everything the board printed is there.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                // QEMU was the console's only writer: the reader reaches the end now.
                self.console.finish();
                return status.code();
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the board's QEMU at once, as a crash or power cut would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the board printed.
    pub(crate) fn console(&self) -> String {
        self.console.text()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.stop();
        self.stdin = None;
        self.console.finish();
    }
}
