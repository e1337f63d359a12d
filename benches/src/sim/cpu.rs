//! Thread CPU time spent inside the simulated members, for per-node cost figures.

use std::time::Duration;

use cpu_time::ThreadTime;

/// Adds up the thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) of every call into a member,
/// when enabled; the simulator's own work (queue, network, bookkeeping) is not counted.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    enabled: bool,
    total: Duration,
}

impl CpuMeter {
    pub(crate) fn new(enabled: bool) -> Self {
        CpuMeter {
            enabled,
            total: Duration::ZERO,
        }
    }

    /// Runs `f`, adding its thread CPU time to the total when enabled.
    #[inline]
    pub(crate) fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if !self.enabled {
            return f();
        }
        let start = ThreadTime::now();
        let out = f();
        self.total += start.elapsed();
        out
    }

    /// The total so far (zero when disabled).
    pub(crate) fn total(&self) -> Duration {
        self.total
    }
}
