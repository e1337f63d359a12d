//! A 1 ms SysTick that wakes the core from `WFI`: the NIC raises no interrupt, so the
//! firmware sleeps between ticks and polls on each.

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;

/// mps2-an386's CPU clock.
const CPU_HZ: u32 = 25_000_000;

/// Starts the tick.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Work common to every tick; call it from the `SysTick` exception handler.
pub fn on_tick() {
    // Keeps the clock's wrap accounting fresh even when nothing else reads it.
    let _ = crate::clock::micros();
    crate::nic::WAKER.wake();
}

/// Sleeps until the next interrupt unless `ready` says there is work: checked with
/// interrupts masked, so a wake-up between the check and the `WFI` is not lost.
pub fn sleep_unless(ready: impl FnOnce() -> bool) {
    cortex_m::interrupt::free(|_| {
        if !ready() {
            cortex_m::asm::wfi();
        }
    });
}
