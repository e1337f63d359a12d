//! A minimal polled driver for the SMSC LAN9118 Ethernet controller, as QEMU emulates it:
//! 32-bit registers, data through FIFOs, no DMA, no interrupts, no PHY set-up.

use core::ptr::{read_volatile, write_volatile};

/// Register offsets from the controller's base address.
mod reg {
    pub(crate) const RX_DATA: usize = 0x00;
    pub(crate) const TX_DATA: usize = 0x20;
    pub(crate) const RX_STATUS: usize = 0x40;
    pub(crate) const TX_STATUS: usize = 0x48;
    pub(crate) const BYTE_TEST: usize = 0x64;
    pub(crate) const RX_CFG: usize = 0x6C;
    pub(crate) const TX_CFG: usize = 0x70;
    pub(crate) const HW_CFG: usize = 0x74;
    pub(crate) const RX_FIFO_INF: usize = 0x7C;
    pub(crate) const TX_FIFO_INF: usize = 0x80;
    pub(crate) const FREE_RUN: usize = 0x9C;
    pub(crate) const MAC_CSR_CMD: usize = 0xA4;
    pub(crate) const MAC_CSR_DATA: usize = 0xA8;
}

/// MAC registers, reached through `MAC_CSR_CMD`/`MAC_CSR_DATA`.
mod mac {
    pub(crate) const CR: u32 = 1;
    pub(crate) const ADDRH: u32 = 2;
    pub(crate) const ADDRL: u32 = 3;
    pub(crate) const CR_RXEN: u32 = 1 << 2;
    pub(crate) const CR_TXEN: u32 = 1 << 3;
    pub(crate) const CR_FDPX: u32 = 1 << 20;
}

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const TX_CFG_TX_ON: u32 = 1 << 1;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
/// TX command A: first and last segment of a frame.
const TX_CMD_A_FIRST_LAST: u32 = (1 << 13) | (1 << 12);
/// RX status: error summary.
const RX_STATUS_ERROR: u32 = 1 << 15;
/// Bounds every busy-wait on the chip.
const SPIN: u32 = 100_000;

/// The controller does not answer as a LAN9118 should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `BYTE_TEST` did not read `0x87654321`: no LAN9118 at this address.
    NotFound,
    /// A soft reset or a MAC register access did not complete.
    Timeout,
}

impl Error {
    /// A short reason, for the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Error::NotFound => "not found",
            Error::Timeout => "timed out",
        }
    }
}

/// One LAN9118 at a fixed address.
#[derive(Debug)]
pub struct Lan9118 {
    base: usize,
}

impl Lan9118 {
    /// The controller at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's registers, and no other `Lan9118` may use it.
    pub const unsafe fn new(base: usize) -> Self {
        Lan9118 { base }
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: `base + offset` is one of the chip's registers.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn wait(&self, offset: usize, mask: u32) -> Result<(), Error> {
        (0..SPIN)
            .find(|_| self.read(offset) & mask == 0)
            .map(|_| ())
            .ok_or(Error::Timeout)
    }

    fn mac_read(&mut self, r: u32) -> Result<u32, Error> {
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY)?;
        self.write(reg::MAC_CSR_CMD, CSR_BUSY | CSR_READ | r);
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY)?;
        Ok(self.read(reg::MAC_CSR_DATA))
    }

    fn mac_write(&mut self, r: u32, value: u32) -> Result<(), Error> {
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY)?;
        self.write(reg::MAC_CSR_DATA, value);
        self.write(reg::MAC_CSR_CMD, CSR_BUSY | r);
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY)
    }

    /// Resets the chip and turns the receiver and transmitter on. Returns the MAC address
    /// the board was given (QEMU's `-nic ...,mac=`), which the chip keeps.
    pub fn init(&mut self) -> Result<[u8; 6], Error> {
        if self.read(reg::BYTE_TEST) != BYTE_TEST_VALUE {
            return Err(Error::NotFound);
        }
        let lo = self.mac_read(mac::ADDRL)?.to_le_bytes();
        let hi = self.mac_read(mac::ADDRH)?.to_le_bytes();
        let addr = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];
        self.write(reg::HW_CFG, HW_CFG_SRST);
        self.wait(reg::HW_CFG, HW_CFG_SRST)?;
        self.mac_write(
            mac::ADDRL,
            u32::from_le_bytes([addr[0], addr[1], addr[2], addr[3]]),
        )?;
        self.mac_write(mac::ADDRH, u32::from(addr[4]) | (u32::from(addr[5]) << 8))?;
        self.mac_write(mac::CR, mac::CR_TXEN | mac::CR_RXEN | mac::CR_FDPX)?;
        self.write(reg::TX_CFG, TX_CFG_TX_ON);
        self.write(reg::RX_CFG, 0);
        Ok(addr)
    }

    /// Takes the next good frame (without its FCS) into `buf` and returns its length;
    /// `None` when no frame is waiting. Bad or oversized frames are skipped.
    pub fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        while (self.read(reg::RX_FIFO_INF) >> 16) & 0xFF != 0 {
            let status = self.read(reg::RX_STATUS);
            let len = ((status >> 16) & 0x3FFF) as usize;
            let words = len.div_ceil(4);
            let frame = len.saturating_sub(4);
            if status & RX_STATUS_ERROR != 0 || frame < 14 || frame > buf.len() {
                for _ in 0..words {
                    let _ = self.read(reg::RX_DATA);
                }
                continue;
            }
            for i in 0..words {
                let word = self.read(reg::RX_DATA).to_le_bytes();
                let at = i * 4;
                let n = (frame.saturating_sub(at)).min(4);
                buf[at..at + n].copy_from_slice(&word[..n]);
            }
            return Some(frame);
        }
        None
    }

    /// True when the transmit FIFO has room for a frame of `len` bytes.
    pub fn can_send(&self, len: usize) -> bool {
        (self.read(reg::TX_FIFO_INF) & 0xFFFF) as usize >= len.next_multiple_of(4) + 8
    }

    /// Queues one frame for transmission. Call [`Lan9118::can_send`] first.
    pub fn send(&mut self, frame: &[u8]) {
        let len = frame.len() as u32;
        self.write(reg::TX_DATA, TX_CMD_A_FIRST_LAST | len);
        self.write(reg::TX_DATA, len);
        for chunk in frame.chunks(4) {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write(reg::TX_DATA, u32::from_le_bytes(word));
        }
        // Drain the transmit status FIFO; nobody reads the per-frame results.
        while (self.read(reg::TX_FIFO_INF) >> 16) & 0xFF != 0 {
            let _ = self.read(reg::TX_STATUS);
        }
    }

    /// The chip's free-running 25 MHz counter.
    pub fn free_run(&self) -> u32 {
        self.read(reg::FREE_RUN)
    }
}
