//! Time since boot from the LAN9118's free-running 25 MHz counter, widened to 64 bits.
//! The counter wraps every 171 s; the 1 ms tick reads it far more often than that.

use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};

use critical_section::Mutex;

use crate::lan9118::Lan9118;

/// Counter ticks per microsecond.
const TICKS_PER_US: u64 = 25;

static BASE: AtomicUsize = AtomicUsize::new(0);
/// The last raw counter value and the widened count at that moment.
static WIDE: Mutex<Cell<(u32, u64)>> = Mutex::new(Cell::new((0, 0)));

/// Starts the clock on the LAN9118 at `base` (the clock's origin is now).
pub fn start(base: usize) {
    BASE.store(base, Ordering::Relaxed);
    let raw = counter();
    critical_section::with(|cs| WIDE.borrow(cs).set((raw, 0)));
}

fn counter() -> u32 {
    // SAFETY: only the read-only FREE_RUN register is touched through this handle.
    unsafe { Lan9118::new(BASE.load(Ordering::Relaxed)) }.free_run()
}

/// Microseconds since [`start`].
pub fn micros() -> u64 {
    critical_section::with(|cs| {
        let cell = WIDE.borrow(cs);
        let (last, wide) = cell.get();
        let raw = counter();
        let wide = wide + u64::from(raw.wrapping_sub(last));
        cell.set((raw, wide));
        wide / TICKS_PER_US
    })
}

/// Milliseconds since [`start`].
pub fn millis() -> u64 {
    micros() / 1000
}
