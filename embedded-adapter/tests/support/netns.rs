//! A network namespace of the test's own, with bridges and tap devices in it, deleted when
//! dropped (even when the test fails). Everything the tests send to their private addresses
//! (10.42.0.0/24) stays inside it: the namespace has no route anywhere else.
//!
//! Needs root and `/dev/net/tun`; [`Netns::create`] says which is missing so that the test
//! can report it and skip. Anything else failing is a test failure.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// A network namespace with its loopback up.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
    /// Tap devices created in it, deleted before the namespace.
    taps: Vec<String>,
}

/// Why this machine cannot build namespaces with tap devices, if it cannot.
pub(crate) fn missing_requirements() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces, tap devices)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("needs /dev/net/tun (tap devices)".into());
    }
    None
}

impl Netns {
    /// Creates the namespace `rumor-emb-<pid>-<tag>`. `Err` (a reason to skip the test) when
    /// this machine lacks root or `/dev/net/tun`.
    pub(crate) fn create(tag: &str) -> Result<Netns, String> {
        if let Some(why) = missing_requirements() {
            return Err(why);
        }
        let name = format!("rumor-emb-{}-{tag}", std::process::id());
        run_ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            taps: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip ARGS` inside the namespace; panics when it fails.
    pub(crate) fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all);
    }

    /// Adds a bridge, up, with the MAC address `mac` and the given IP addresses (CIDR
    /// notation). Without a MAC address of its own, a bridge takes the lowest of its ports'
    /// and changes it as ports come: its neighbours' ARP caches would go stale, and frames to
    /// the bridge's own addresses would be lost until they expire.
    pub(crate) fn add_bridge(&self, bridge: &str, mac: &str, addrs: &[&str]) {
        self.ip(&["link", "add", bridge, "address", mac, "type", "bridge"]);
        for a in addrs {
            self.ip(&["addr", "add", a, "dev", bridge]);
        }
        self.ip(&["link", "set", bridge, "up"]);
    }

    /// Adds a persistent tap device, up, for a program to attach to by name: a port of
    /// `bridge`, or with the given address (CIDR) on the kernel's side.
    pub(crate) fn add_tap(&mut self, tap: &str, bridge: Option<&str>, addr: Option<&str>) {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        self.taps.push(tap.to_owned());
        if let Some(b) = bridge {
            self.ip(&["link", "set", tap, "master", b]);
        }
        if let Some(a) = addr {
            self.ip(&["addr", "add", a, "dev", tap]);
        }
        self.ip(&["link", "set", tap, "up"]);
    }

    /// A command running `program` inside the namespace (`ip netns exec`, which execs it:
    /// the child's PID is the program's).
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

/// Moves the calling thread into the namespace called `name`: the sockets and tap devices it
/// opens from now on are the namespace's. Meant for a thread of its own.
pub(crate) fn enter(name: &str) {
    let file = File::open(Path::new("/run/netns").join(name))
        .unwrap_or_else(|e| panic!("open namespace {name}: {e}"));
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
}

impl Drop for Netns {
    /// Deletes the tap devices, then the namespace (and the bridges in it). Run after the
    /// processes using them have been stopped.
    fn drop(&mut self) {
        for tap in &self.taps {
            let _ = Command::new("ip")
                .args(["-n", &self.name, "link", "del", tap])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `ip ARGS`; panics with its error output when it fails.
fn run_ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip ({e}): install iproute2 (scripts/test does)"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
