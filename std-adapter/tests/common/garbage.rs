//! Hostile datagrams: deterministic filler bytes, and the counters that datagrams dropped
//! as invalid land in.

use serde_json::Value;

/// Counters of datagrams dropped as invalid (everything but "ignored", which well-formed
/// traffic can also hit).
pub const INVALID: [&str; 7] = [
    "dropped_truncated",
    "dropped_oversized",
    "dropped_version",
    "dropped_envelope",
    "dropped_cluster",
    "dropped_malformed",
    "dropped_unauthenticated",
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
