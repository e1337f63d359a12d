//! A rumor node on embassy-net: `rumor_embedded::embassy` runs the node in its own task;
//! the main task prints events and obeys console commands. The executor sleeps (`WFI`)
//! between 1 ms ticks.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{entry, exception};
use embassy_executor::{Spawner, raw::Executor};
use embassy_futures::select::{Either, select};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_time::Timer;
use rumor_embedded::embassy::{self as rumor, Handle, Resources, Runner};
use rumor_embedded::embassy_net;
use rumor_embedded::rumor_core::{Config, Identity, Node};
use rumor_firmware::console::{Command, Lines, Uart};
use rumor_firmware::time_driver::TickDriver;
use rumor_firmware::{
    LAN9118_BASE, MEMBERS, UPDATES,
    args::Args,
    clock,
    lan9118::Lan9118,
    nic::{Frames, Nic},
    report, tick,
};
use static_cell::{ConstStaticCell, StaticCell};

embassy_time_driver::time_driver_impl!(static TIME: TickDriver = TickDriver::new());

static PENDED: AtomicBool = AtomicBool::new(false);
static EXECUTOR: StaticCell<Executor> = StaticCell::new();
static NET: StaticCell<StackResources<1>> = StaticCell::new();
static FRAMES: ConstStaticCell<Frames> = ConstStaticCell::new(Frames::new());
/// The node, built at compile time; `rumor::new` configures it in place, so it is never on
/// the stack.
static NODE: ConstStaticCell<Node<MEMBERS, UPDATES>> = ConstStaticCell::new(Node::unconfigured());
/// Its socket buffers (all zeros: .bss).
static RUMOR: ConstStaticCell<Resources<'static, MEMBERS, UPDATES>> =
    ConstStaticCell::new(Resources::new());

/// The executor's wake-up call: the main loop polls again instead of sleeping.
#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    PENDED.store(true, Ordering::Release);
}

#[exception]
fn SysTick() {
    tick::on_tick();
    TIME.on_tick();
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Nic>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn rumor_task(runner: Runner<'static, MEMBERS, UPDATES>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn app(handle: Handle<'static, MEMBERS, UPDATES>) -> ! {
    let out = Uart::init();
    let mut lines = Lines::default();
    loop {
        match select(handle.next_event(), Timer::after_millis(5)).await {
            Either::First(event) => {
                if report::event(out, &event) {
                    report::memory(out);
                    rumor_firmware::exit(0);
                }
            }
            Either::Second(()) => match lines.poll(out) {
                Some(Command::Members) => handle.with_node(|n| report::members(out, n)),
                Some(Command::Leave) => handle.leave(),
                Some(Command::Memory) => report::memory(out),
                None => {}
            },
        }
    }
}

/// Sets the board up and spawns the tasks. Not inlined: its frame (the command line, the
/// network stack's start-up) is gone before the executor runs on top of `main`'s.
#[inline(never)]
fn start(spawner: Spawner, out: Uart) {
    let args = Args::from_host().unwrap_or_else(|e| {
        out.line(&["bad command line: ", e.as_str()]);
        rumor_firmware::exit(2)
    });
    // SAFETY: the board's only LAN9118, used through this handle alone (the clock reads
    // only its free-running counter).
    let mut chip = unsafe { Lan9118::new(LAN9118_BASE) };
    let mac = chip.init().unwrap_or_else(|e| {
        out.line(&["lan9118: ", e.as_str()]);
        rumor_firmware::exit(2)
    });
    clock::start(LAN9118_BASE);
    let seed = args.rng_seed(mac);
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(args.ip, 24),
        gateway: None,
        dns_servers: heapless::Vec::new(),
    });
    let (stack, net_runner) = embassy_net::new(
        Nic::new(chip, mac, FRAMES.take()),
        net_config,
        NET.init(StackResources::new()),
        seed,
    );
    let identity =
        Identity::new(&args.name, args.addr()).unwrap_or_else(|_| rumor_firmware::exit(2));
    let config = rumor::Config::new(identity, Config::lan());
    let (handle, runner) = rumor::new(stack, config, NODE.take(), RUMOR.take(), seed)
        .unwrap_or_else(|_| rumor_firmware::exit(2));
    for seed in &args.seeds {
        let _ = handle.join(*seed);
    }
    spawner.spawn(net_task(net_runner).unwrap_or_else(|_| rumor_firmware::exit(2)));
    spawner.spawn(rumor_task(runner).unwrap_or_else(|_| rumor_firmware::exit(2)));
    spawner.spawn(app(handle).unwrap_or_else(|_| rumor_firmware::exit(2)));
    out.line(&["ready embassy ", &args.name]);
}

#[entry]
fn main() -> ! {
    let out = Uart::init();
    let peripherals = cortex_m::Peripherals::take().unwrap_or_else(|| unreachable!());
    let executor: &'static Executor = EXECUTOR.init(Executor::new(core::ptr::null_mut()));
    start(executor.spawner(), out);
    tick::start(peripherals.SYST);
    loop {
        // SAFETY: polled from this one thread only, never re-entered.
        unsafe { executor.poll() };
        tick::sleep_unless(|| PENDED.swap(false, Ordering::AcqRel));
    }
}
