//! The LAN9118 as a network device for smoltcp ([`smoltcp::phy::Device`]) and for
//! embassy-net ([`embassy_net_driver::Driver`]): one frame buffer each way, in [`Frames`]
//! that the board keeps in a `static` (the device itself is moved around at start-up, by
//! embassy-net into its runner: small, it costs no stack).

use core::task::Context;

use embassy_sync::waitqueue::AtomicWaker;
use rumor_embedded::smoltcp;
use rumor_embedded::smoltcp::phy::{DeviceCapabilities, Medium};

use crate::lan9118::Lan9118;

/// Largest Ethernet frame without FCS.
pub const MTU: usize = 1514;

/// Woken by the tick: the chip raises no interrupt, so embassy-net is asked to poll again.
pub static WAKER: AtomicWaker = AtomicWaker::new();

/// A receive and a transmit frame buffer. All zeros: in a `static`, they take no flash.
#[derive(Debug)]
pub struct Frames {
    rx: [u8; MTU],
    tx: [u8; MTU],
}

impl Frames {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Frames {
            rx: [0; MTU],
            tx: [0; MTU],
        }
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

/// The controller and its frame buffers.
#[derive(Debug)]
pub struct Nic {
    chip: Lan9118,
    mac: [u8; 6],
    frames: &'static mut Frames,
}

impl Nic {
    /// Wraps an initialised controller whose address is `mac`.
    pub fn new(chip: Lan9118, mac: [u8; 6], frames: &'static mut Frames) -> Self {
        Nic { chip, mac, frames }
    }

    /// The board's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx_tx(&mut self) -> Option<(Rx<'_>, Tx<'_>)> {
        let Frames { rx, tx } = &mut *self.frames;
        let len = self.chip.recv(rx)?;
        Some((
            Rx(&mut rx[..len]),
            Tx {
                chip: &mut self.chip,
                buf: tx,
            },
        ))
    }

    fn tx(&mut self) -> Option<Tx<'_>> {
        self.chip.can_send(MTU).then_some(Tx {
            chip: &mut self.chip,
            buf: &mut self.frames.tx,
        })
    }
}

/// A received frame.
#[derive(Debug)]
pub struct Rx<'a>(&'a mut [u8]);

/// Room for one frame to send.
#[derive(Debug)]
pub struct Tx<'a> {
    chip: &'a mut Lan9118,
    buf: &'a mut [u8; MTU],
}

impl Tx<'_> {
    fn send<R>(self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let frame = &mut self.buf[..len.min(MTU)];
        let r = f(frame);
        self.chip.send(frame);
        r
    }
}

impl smoltcp::phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.send(len, f)
    }
}

impl smoltcp::phy::Device for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        self.rx_tx()
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        self.tx()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

impl embassy_net_driver::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl embassy_net_driver::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.send(len, f)
    }
}

impl embassy_net_driver::Driver for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_>)> {
        WAKER.register(cx.waker());
        self.rx_tx()
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        WAKER.register(cx.waker());
        self.tx()
    }

    fn link_state(&mut self, _: &mut Context<'_>) -> embassy_net_driver::LinkState {
        embassy_net_driver::LinkState::Up
    }

    fn capabilities(&self) -> embassy_net_driver::Capabilities {
        let mut caps = embassy_net_driver::Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> embassy_net_driver::HardwareAddress {
        embassy_net_driver::HardwareAddress::Ethernet(self.mac)
    }
}
