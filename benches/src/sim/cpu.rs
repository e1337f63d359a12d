//! Time spent inside the simulated members, for per-node cost figures.
//!
//! A thread CPU clock (`CLOCK_THREAD_CPUTIME_ID`) is a system call here (about 0.5 us a
//! reading, as long as a whole protocol step), so calls are timed with the monotonic clock
//! instead (about 25 ns a reading, through the vDSO): the simulator is single-threaded, so
//! the wall time inside a call is its CPU time, plus any preemption of the thread. The
//! clock's own cost, calibrated once, is subtracted per call.

use std::time::{Duration, Instant};

/// Adds up the time of every call into a member, when enabled; the simulator's own work
/// (queue, network, bookkeeping) is not counted.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    enabled: bool,
    total: Duration,
    calls: u64,
    overhead: Duration,
}

impl CpuMeter {
    pub(crate) fn new(enabled: bool) -> Self {
        CpuMeter {
            enabled,
            total: Duration::ZERO,
            calls: 0,
            overhead: if enabled { calibrate() } else { Duration::ZERO },
        }
    }

    /// Runs `f`, adding its duration to the total when enabled.
    #[inline]
    pub(crate) fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if !self.enabled {
            return f();
        }
        let start = Instant::now();
        let out = f();
        self.total += start.elapsed();
        self.calls += 1;
        out
    }

    /// The total so far, the clock's overhead subtracted (zero when disabled).
    pub(crate) fn total(&self) -> Duration {
        let overhead = self
            .overhead
            .saturating_mul(u32::try_from(self.calls).unwrap_or(u32::MAX));
        self.total.saturating_sub(overhead)
    }
}

/// The smallest average cost of timing an empty call, over a few batches.
fn calibrate() -> Duration {
    const BATCH: u32 = 10_000;
    (0..5)
        .map(|_| {
            let mut sum = Duration::ZERO;
            for _ in 0..BATCH {
                let start = Instant::now();
                sum += std::hint::black_box(start).elapsed();
            }
            sum / BATCH
        })
        .min()
        .unwrap_or_default()
}
