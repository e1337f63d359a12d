//! An embassy-time driver on [`crate::clock`]: 1 MHz ticks, timers expired by the 1 ms tick.

use core::cell::RefCell;
use core::task::Waker;

use critical_section::Mutex;
use embassy_time_queue_utils::Queue;

/// The timer queue behind `embassy_time::Timer`. Register it in the binary with
/// `embassy_time_driver::time_driver_impl!(static DRIVER: TickDriver = TickDriver::new());`.
#[derive(Debug)]
pub struct TickDriver {
    queue: Mutex<RefCell<Queue>>,
}

impl TickDriver {
    /// An empty queue.
    pub const fn new() -> Self {
        TickDriver {
            queue: Mutex::new(RefCell::new(Queue::new())),
        }
    }

    /// Wakes every timer that is due; call it on each tick.
    pub fn on_tick(&self) {
        let now = crate::clock::micros();
        critical_section::with(|cs| {
            let _next = self.queue.borrow_ref_mut(cs).next_expiration(now);
        });
    }
}

impl Default for TickDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl embassy_time_driver::Driver for TickDriver {
    fn now(&self) -> u64 {
        crate::clock::micros()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            queue.schedule_wake(at, waker);
            // Already due: expire it now rather than a tick later.
            let _next = queue.next_expiration(crate::clock::micros());
        });
    }
}
