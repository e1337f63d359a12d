//! Hostile datagrams: deterministic filler bytes, the counters that datagrams dropped as
//! invalid land in, and the kernel's count of datagrams dropped before the agent read them.

use std::net::SocketAddr;

use serde_json::Value;

/// Counters of datagrams dropped as invalid (everything but "ignored", which well-formed
/// traffic can also hit).
pub const INVALID: [&str; 8] = [
    "dropped_truncated",
    "dropped_oversized",
    "dropped_version",
    "dropped_envelope",
    "dropped_cluster",
    "dropped_malformed",
    "dropped_unauthenticated",
    "dropped_plaintext",
];

/// One protocol counter of `rumor info --format json`.
pub fn counter(info: &Value, name: &str) -> u64 {
    info["agent"]["protocol"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {}", info["agent"]["protocol"]))
}

/// Datagrams dropped as invalid, whatever the reason.
pub fn invalid_drops(info: &Value) -> u64 {
    INVALID.iter().map(|k| counter(info, k)).sum()
}

/// Datagrams the kernel dropped for the UDP socket bound to `addr` (its receive buffer was
/// full), from the `drops` column of /proc/net/udp.
pub fn kernel_drops(addr: SocketAddr) -> u64 {
    let SocketAddr::V4(addr) = addr else {
        panic!("IPv4 only")
    };
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((ip, port)) = fields.get(1).and_then(|l| l.split_once(':')) else {
            continue;
        };
        let ip = u32::from_str_radix(ip, 16).map(|v| v.to_ne_bytes());
        let port = u16::from_str_radix(port, 16);
        if ip == Ok(addr.ip().octets()) && port == Ok(addr.port()) {
            return fields.last().and_then(|d| d.parse().ok()).expect("drops");
        }
    }
    panic!("no UDP socket bound to {addr} in /proc/net/udp")
}

/// The next number of a xorshift32 sequence: the same garbage on every run.
pub fn xorshift(seed: &mut u32) -> u32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    *seed
}

/// Deterministic filler bytes.
pub fn filler(seed: &mut u32, len: usize) -> Vec<u8> {
    (0..len).map(|_| xorshift(seed) as u8).collect()
}
