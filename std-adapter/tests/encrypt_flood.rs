//! Garbage flooded at one agent of an encrypted cluster (real `rumor agent` processes on
//! loopback) for 10 s at a bounded rate: the membership stays intact throughout, every
//! datagram is accounted for (dropped and counted by the agent, or dropped by the kernel
//! before the agent saw it), and the agent's resident memory stays flat.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::garbage::{INVALID, counter, filler, invalid_drops, kernel_drops, xorshift};
use common::watch::keeps_alive;
use common::{Agent, agree, args, join_args, keygen, loopback_ip, wait_for};
use rumor_core::{ENVELOPE_PLAIN, ENVELOPE_XCHACHA20POLY1305, HEADER_LEN, MAX_DATAGRAM, VERSION};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(10);
/// Datagrams sent per tick, one tick every [`TICK`]: 2,000 datagrams a second.
const PER_TICK: usize = 20;
const TICK: Duration = Duration::from_millis(10);
/// Largest growth of the agent's resident memory accepted over the flood. The agent
/// allocates nothing per datagram; this leaves room for the allocator and for the RPC
/// calls of the watch, not for a leak (20,000 datagrams of 750 bytes on average would be
/// 14 MiB).
const RSS_GROWTH_MAX_KIB: u64 = 2 * 1024;

/// One garbage datagram of 0 to [`MAX_DATAGRAM`] bytes. A quarter start with a valid
/// encrypted header (right version, envelope and cluster id: they reach the AEAD check),
/// an eighth with a valid plaintext header; the rest is noise.
fn garbage(seed: &mut u32, i: usize) -> Vec<u8> {
    let len = xorshift(seed) as usize % (MAX_DATAGRAM + 1);
    let mut d = filler(seed, len);
    let header = match i % 8 {
        0 | 1 => Some([VERSION, ENVELOPE_XCHACHA20POLY1305, 0, 0, 0, 0]),
        2 => Some([VERSION, ENVELOPE_PLAIN, 0, 0, 0, 0]),
        _ => None,
    };
    if let Some(h) = header {
        let n = len.min(HEADER_LEN);
        d[..n].copy_from_slice(&h[..n]);
    }
    d
}

/// Sends [`PER_TICK`] datagrams every [`TICK`] for [`FLOOD`]; returns how many were sent.
fn flood(to: SocketAddr) -> u64 {
    let socket = UdpSocket::bind((loopback_ip(), 0)).expect("bind the flooding socket");
    let ticks = (FLOOD.as_millis() / TICK.as_millis()) as u32;
    let start = Instant::now();
    let mut seed = 0x9e37_79b9;
    let mut sent = 0;
    for t in 0..ticks {
        if let Some(wait) = (start + TICK * t).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for i in 0..PER_TICK {
            let n = t as usize * PER_TICK + i;
            if socket.send_to(&garbage(&mut seed, n), to).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// The process's resident memory (`VmRSS` of /proc/PID/status), in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB")
}

#[test]
fn encrypt_garbage_flood_leaves_membership_and_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen();
    let keyed = |name: &str, seeds: &[&Agent]| {
        let mut v = args(&["--encrypt", &key]);
        v.extend(join_args(seeds));
        Agent::on_loopback(dir.path(), name, &v)
    };
    let a = keyed("a", &[]);
    let b = keyed("b", &[&a]);
    let c = keyed("c", &[&a]);
    let all = [&a, &b, &c];
    let agreed = agree(&all, Duration::from_secs(30));
    // Settled: joins done, buffers allocated.
    std::thread::sleep(Duration::from_secs(2));
    let info_before = a.info();
    let (rss_before, kernel_before) = (vm_rss_kib(a.pid()), kernel_drops(a.gossip));

    let sent = keeps_alive(&all, &["a", "b", "c"], &[], || flood(a.gossip), || {});

    let before = invalid_drops(&info_before);
    let accounted = |info: &serde_json::Value| {
        invalid_drops(info) - before + kernel_drops(a.gossip) - kernel_before
    };
    let settled = wait_for(Duration::from_secs(15), || {
        (accounted(&a.info()) >= sent).then_some(())
    });
    let info = a.info();
    let rss_after = vm_rss_kib(a.pid());
    let by_reason: Vec<String> = INVALID
        .iter()
        .map(|k| format!("{k}={}", counter(&info, k) - counter(&info_before, k)))
        .collect();
    let kernel = kernel_drops(a.gossip) - kernel_before;
    eprintln!(
        "flood: {sent} datagrams sent; counted by the agent: {} ({}); dropped by the kernel: \
         {kernel}; VmRSS {rss_before} KiB before, {rss_after} KiB after",
        invalid_drops(&info) - before,
        by_reason.join(", ")
    );
    assert!(settled.is_some(), "not every datagram was accounted for");
    // The kernel's count covers every datagram dropped at the agent's socket, the members'
    // own gossip included, so it may exceed the garbage's share. Every datagram sent must be
    // accounted for, and any excess must be explainable by kernel drops: the agent itself
    // never counts more invalid datagrams than were sent.
    let counted = invalid_drops(&info) - before;
    let got = counted + kernel;
    assert!(
        got >= sent && got - sent <= kernel,
        "{sent} sent, {counted} counted by the agent + {kernel} dropped by the kernel = {got}: \
         {}; {}",
        if got < sent {
            "datagrams unaccounted for"
        } else {
            "the agent counted more invalid datagrams than were sent"
        },
        info["agent"]["protocol"]
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_MAX_KIB,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Membership intact, nobody suspected, and the flooded agent still gossips.
    assert_eq!(agree(&all, Duration::from_secs(5)), agreed);
    for k in ["suspicions", "failures"] {
        assert_eq!(counter(&info, k), counter(&info_before, k), "{k}");
    }
    let out = b.client(&["event", "after-flood", "ok"]);
    assert!(out.status.success());
}
