//! Board support for running rumor on QEMU's mps2-an386 (Cortex-M4F) and its LAN9118
//! Ethernet controller: the NIC driver, a clock, a 1 ms wake-up tick, the UART console, the
//! semihosting command line and the stack meter. The two firmware binaries share it:
//! `smoltcp-node` (smoltcp directly) and `embassy-node` (embassy-net).
#![no_std]

pub mod args;
pub mod clock;
pub mod console;
pub mod lan9118;
pub mod nic;
pub mod report;
pub mod stack;
pub mod tick;
pub mod time_driver;

/// Base address of the LAN9118 on mps2-an385, an386 and an511 (an500 has it at
/// `0xA000_0000`).
pub const LAN9118_BASE: usize = 0x4020_0000;

/// Capacity of the member table of the example node (the local node included).
pub const MEMBERS: usize = 32;
/// Capacity of its dissemination queue.
pub const UPDATES: usize = 64;

/// Ends the emulation with `code` as QEMU's exit status (semihosting).
pub fn exit(code: i32) -> ! {
    let status = if code == 0 {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    };
    cortex_m_semihosting::debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Reports a panic on the console and exits with failure, so a test sees it. Without its
/// location: printing one keeps the file name and line of every panic site in flash (about
/// 7 KiB of .rodata, which the 64 KiB goal cannot afford). The core is the same on the
/// host, where the cluster tests give a location.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    console::Uart.put("panic\n");
    exit(1)
}
