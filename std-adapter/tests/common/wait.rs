//! Bounded polling, for `common`'s and `lb`'s `wait_for` (each with its own interval).

use std::time::{Duration, Instant};

/// Calls `f` every `every` until it returns `Some`, for at most `timeout`.
pub fn poll_until<T>(
    every: Duration,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
