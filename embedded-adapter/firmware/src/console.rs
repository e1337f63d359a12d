//! The board's console on UART0 (a CMSDK APB UART; QEMU's `-serial stdio`): lines out,
//! commands in.

use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1;
const STATE_RX_FULL: u32 = 2;
const CTRL_TX_RX_EN: u32 = 3;

fn read(offset: usize) -> u32 {
    // SAFETY: UART0's registers on the mps2 boards.
    unsafe { read_volatile((BASE + offset) as *const u32) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile((BASE + offset) as *mut u32, value) }
}

/// UART0. Writes block while the transmitter is full.
#[derive(Clone, Copy, Debug)]
pub struct Uart;

impl Uart {
    /// Enables the transmitter and receiver.
    pub fn init() -> Uart {
        write(BAUDDIV, 16);
        write(CTRL, CTRL_TX_RX_EN);
        Uart
    }

    /// The next received byte, if any.
    pub fn read_byte(self) -> Option<u8> {
        (read(STATE) & STATE_RX_FULL != 0).then(|| read(DATA) as u8)
    }
}

impl Uart {
    /// Writes `s`. The boards print without `core::fmt`, whose padding and integer
    /// formatting cost about 2 KiB of flash.
    pub fn put(self, s: &str) {
        for b in s.bytes() {
            while read(STATE) & STATE_TX_FULL != 0 {}
            write(DATA, u32::from(b));
        }
    }

    /// Writes `n` in decimal.
    pub fn put_u32(self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            while read(STATE) & STATE_TX_FULL != 0 {}
            write(DATA, u32::from(d));
        }
    }

    /// Writes the pieces one after the other, then a newline.
    pub fn line(self, pieces: &[&str]) {
        for p in pieces {
            self.put(p);
        }
        self.put("\n");
    }
}

/// A command typed on the console, one per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `members`: print the member table.
    Members,
    /// `leave`: leave the cluster gracefully, then exit.
    Leave,
    /// `memory`: print the peak stack use.
    Memory,
}

/// Collects console bytes into lines.
#[derive(Debug, Default)]
pub struct Lines {
    line: heapless::Vec<u8, 32>,
}

impl Lines {
    /// The next complete command, if one has been typed. Unknown lines are ignored.
    pub fn poll(&mut self, uart: Uart) -> Option<Command> {
        while let Some(b) = uart.read_byte() {
            if b != b'\n' && b != b'\r' {
                // An overlong line is garbage: it fails to parse when it ends.
                let _ = self.line.push(b);
                continue;
            }
            let command = match self.line.as_slice() {
                b"members" => Some(Command::Members),
                b"leave" => Some(Command::Leave),
                b"memory" => Some(Command::Memory),
                _ => None,
            };
            self.line.clear();
            if command.is_some() {
                return command;
            }
        }
        None
    }
}
