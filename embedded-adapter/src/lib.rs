//! # rumor-embedded
//!
//! [rumor](rumor_core) gossip membership on bare metal: `#![no_std]`, no allocator. Two
//! drivers put a [`rumor_core::Node`] on a network stack:
//!
//! - [`smol::Driver`]: owns one smoltcp UDP socket handle and a node; the application calls
//!   [`smol::Driver::poll`] after each `Interface::poll` and sleeps until the instant it
//!   returns. Works with any `smoltcp::phy::Device`.
//! - [`embassy`] (feature `embassy`, on by default): [`embassy::new`] gives a
//!   [`embassy::Handle`] for the application and an [`embassy::Runner`] to spawn as a task.
//!
//! Both are built on smoltcp 0.13, the version embassy-net 0.9 uses, re-exported as
//! [`smoltcp`] so that an application's types meet the driver's.
//!
//! ## Features
//!
//! - `embassy` (default): the embassy-net driver.
//! - `ipv6`: IPv6 sockets and members.
//! - `defmt` / `log` (mutually exclusive, neither by default): log through `defmt` or the
//!   `log` facade; forwarded to rumor-core, smoltcp and embassy-net.
//!
//! The crate README has the memory budget of a 32-member node on a Cortex-M4F and the
//! QEMU firmware that proves it.
#![no_std]
#![deny(missing_docs)]

#[macro_use]
mod fmt;

pub mod addr;
#[cfg(feature = "embassy")]
pub mod embassy;
pub mod smol;
pub mod time;
pub mod unresolved;

#[cfg(feature = "embassy")]
pub use embassy_net;
pub use rumor_core;
pub use smoltcp;
