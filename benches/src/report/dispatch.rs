//! Picks a rumor `Node<M, U>` whose capacity fits `--nodes` from a few monomorphized
//! sizes, and checks the cluster fits in memory before building it.

use super::figures::{Figures, Series};
use super::scenario::{Settings, run};
use crate::peer::foca::FocaMember;

/// Runs `$body` with `$ty` bound to the smallest `Node<C, C>` with `C >= $nodes` among the
/// listed capacities, or yields `None` when none is large enough.
macro_rules! with_capacity {
    ($nodes:expr, $ty:ident => $body:expr, [$($cap:literal),+ $(,)?]) => {{
        let n: usize = $nodes;
        let mut out = None;
        $(
            if out.is_none() && n <= $cap {
                type $ty = rumor_core::Node<$cap, $cap>;
                out = Some($body);
            }
        )+
        out
    }};
}

/// [`with_capacity`] over the capacities `rumor-sim` is compiled for: keep in step with
/// [`CAPACITIES`].
macro_rules! with_rumor_node {
    ($nodes:expr, $ty:ident => $body:expr) => {
        with_capacity!($nodes, $ty => $body, [64, 256, 1024, 4096, 8192, 16384])
    };
}

/// The member-table capacities `rumor-sim` is compiled for (members = updates).
pub const CAPACITIES: [usize; 6] = [64, 256, 1024, 4096, 8192, 16384];

/// Why a run was not attempted.
#[derive(Clone, Debug)]
pub struct Refusal(pub String);

/// Bytes one rumor node of the capacity chosen for `nodes` takes (`size_of`), and that
/// capacity.
pub fn rumor_node_size(nodes: usize) -> Option<(usize, usize)> {
    with_rumor_node!(nodes, N => (std::mem::size_of::<N>(), N::capacity()))
}

/// Runs the scenario on rumor, with the capacity chosen for `settings.nodes`.
pub fn run_rumor(settings: &Settings) -> Result<(Figures, Series), Refusal> {
    let (size, capacity) = rumor_node_size(settings.nodes).ok_or_else(|| {
        Refusal(format!(
            "{} nodes exceed the largest compiled capacity {}",
            settings.nodes,
            CAPACITIES[CAPACITIES.len() - 1]
        ))
    })?;
    let need = size as u128 * settings.nodes as u128;
    if let Some(available) = mem_available() {
        // Leave room for the simulator, the queue and the other implementation.
        if need > available as u128 * 8 / 10 {
            return Err(Refusal(format!(
                "does not fit: {} nodes x {} bytes per Node<{capacity}, {capacity}> = {:.1} GiB, \
                 over 80% of the {:.1} GiB available",
                settings.nodes,
                size,
                need as f64 / GIB,
                available as f64 / GIB
            )));
        }
    }
    with_rumor_node!(settings.nodes, N => run::<N>(settings, "rumor"))
        .ok_or_else(|| Refusal("no capacity".to_owned()))
}

/// Runs the scenario on foca.
pub fn run_foca(settings: &Settings) -> (Figures, Series) {
    run::<FocaMember>(settings, "foca")
}

const GIB: f64 = (1u64 << 30) as f64;

/// `MemAvailable` from `/proc/meminfo`, in bytes (Linux only).
pub fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_fitting_capacity_is_chosen() {
        assert_eq!(rumor_node_size(20).map(|s| s.1), Some(64));
        assert_eq!(rumor_node_size(64).map(|s| s.1), Some(64));
        assert_eq!(rumor_node_size(65).map(|s| s.1), Some(256));
        assert_eq!(rumor_node_size(10_000).map(|s| s.1), Some(16384));
        assert_eq!(rumor_node_size(20_000), None);
        for cap in CAPACITIES {
            assert_eq!(rumor_node_size(cap).map(|s| s.1), Some(cap));
        }
    }
}
