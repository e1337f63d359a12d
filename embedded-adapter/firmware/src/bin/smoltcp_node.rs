//! A rumor node on smoltcp, driven by `rumor_embedded::smol::Driver` in a bare loop that
//! sleeps (`WFI`) between 1 ms ticks.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use rumor_embedded::rumor_core::{Config, Identity, Node};
use rumor_embedded::smol::Driver;
use rumor_embedded::smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use rumor_embedded::smoltcp::socket::udp::{PacketBuffer, PacketMetadata, Socket};
use rumor_embedded::smoltcp::time::Instant;
use rumor_embedded::smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};
use rumor_embedded::time::from_smoltcp;
use rumor_firmware::console::{Command, Lines, Uart};
use rumor_firmware::{
    LAN9118_BASE, MEMBERS, UPDATES,
    args::Args,
    clock,
    lan9118::Lan9118,
    nic::{Frames, Nic},
    report, tick,
};
use static_cell::ConstStaticCell;

/// Datagrams the socket queues on the way in, and payload bytes each way (one datagram out).
const QUEUED: usize = 8;
const RX_BYTES: usize = 2 * rumor_embedded::rumor_core::MAX_DATAGRAM;
const TX_BYTES: usize = rumor_embedded::rumor_core::MAX_DATAGRAM;

static FRAMES: ConstStaticCell<Frames> = ConstStaticCell::new(Frames::new());
static RX_META: ConstStaticCell<[PacketMetadata; QUEUED]> =
    ConstStaticCell::new([PacketMetadata::EMPTY; QUEUED]);
/// The driver keeps one datagram in the socket at a time.
static TX_META: ConstStaticCell<[PacketMetadata; 1]> =
    ConstStaticCell::new([PacketMetadata::EMPTY]);
static RX: ConstStaticCell<[u8; RX_BYTES]> = ConstStaticCell::new([0; RX_BYTES]);
static TX: ConstStaticCell<[u8; TX_BYTES]> = ConstStaticCell::new([0; TX_BYTES]);
static SOCKETS: ConstStaticCell<[SocketStorage<'static>; 1]> =
    ConstStaticCell::new([SocketStorage::EMPTY]);
/// The node, built at compile time and configured in place: never on the stack.
static NODE: ConstStaticCell<Node<MEMBERS, UPDATES>> = ConstStaticCell::new(Node::unconfigured());

#[exception]
fn SysTick() {
    tick::on_tick();
}

fn now() -> Instant {
    Instant::from_micros(clock::micros() as i64)
}

#[entry]
fn main() -> ! {
    let out = Uart::init();
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
    let peripherals = cortex_m::Peripherals::take().unwrap_or_else(|| unreachable!());
    tick::start(peripherals.SYST);
    let nic = &mut Nic::new(chip, mac, FRAMES.take());

    let hw = HardwareAddress::Ethernet(EthernetAddress(mac));
    let mut iface = Interface::new(IfaceConfig::new(hw), nic, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(args.ip.into(), 24));
    });
    let socket = Socket::new(
        PacketBuffer::new(&mut RX_META.take()[..], &mut RX.take()[..]),
        PacketBuffer::new(&mut TX_META.take()[..], &mut TX.take()[..]),
    );
    let mut sockets = SocketSet::new(&mut SOCKETS.take()[..]);
    let identity =
        Identity::new(&args.name, args.addr()).unwrap_or_else(|_| rumor_firmware::exit(2));
    let node = NODE.take();
    node.configure(identity, Config::lan(), args.rng_seed(mac))
        .unwrap_or_else(|_| rumor_firmware::exit(2));
    let mut driver =
        Driver::new(node, socket, &mut sockets).unwrap_or_else(|_| rumor_firmware::exit(2));
    let start = from_smoltcp(now());
    for seed in &args.seeds {
        let _ = driver.node_mut().join(start, *seed);
    }
    out.line(&["ready smoltcp ", &args.name]);

    let mut lines = Lines::default();
    loop {
        let t = now();
        iface.poll(t, nic, &mut sockets);
        let wake = driver.poll(t, &mut sockets);
        while let Some(event) = driver.poll_event() {
            if report::event(out, &event) {
                report::memory(out);
                rumor_firmware::exit(0);
            }
        }
        match lines.poll(out) {
            Some(Command::Members) => report::members(out, driver.node()),
            Some(Command::Leave) => driver.node_mut().leave(from_smoltcp(now())),
            Some(Command::Memory) => report::memory(out),
            None => {}
        }
        let due = [wake, iface.poll_at(t, &sockets)]
            .into_iter()
            .flatten()
            .min();
        tick::sleep_unless(|| due.is_some_and(|d| d <= now()));
    }
}
