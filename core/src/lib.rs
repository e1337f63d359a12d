//! # rumor-core
//!
//! A SWIM + Lifeguard gossip membership protocol as a sans-IO state machine: `#![no_std]`,
//! no allocator, no `unsafe`, memory fixed at compile time by two const generics.
//!
//! The caller owns the socket, the clock and the randomness; the [`Node`] owns the protocol.
//! It never blocks, never reads a clock and never allocates, so the same code runs in a
//! tokio agent, a deterministic simulator and a Cortex-M board.
//!
//! ## Driving contract
//!
//! After **any** input (a datagram, a timeout, a command), drain [`Node::poll_transmit`] and
//! [`Node::poll_event`], then sleep until [`Node::poll_timeout`] or the next datagram,
//! whichever comes first. Calling [`Node::handle_timeout`] early or twice is harmless.
//!
//! ```
//! use rumor_core::{Config, Event, Identity, Instant, Node};
//! use std::collections::VecDeque;
//!
//! // Two nodes on a perfect in-memory network, driven by hand with virtual time.
//! let a_addr = "10.0.0.1:7946".parse().unwrap();
//! let b_addr = "10.0.0.2:7946".parse().unwrap();
//! let mut a: Node<8, 16> = Node::new(Identity::new("a", a_addr).unwrap(), Config::lan(), 1).unwrap();
//! let mut b: Node<8, 16> = Node::new(Identity::new("b", b_addr).unwrap(), Config::lan(), 2).unwrap();
//!
//! let mut now = Instant::ZERO;
//! b.join(now, a_addr).unwrap();
//! let mut wire: VecDeque<(std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)> = VecDeque::new();
//! let mut buf = [0u8; 1500];
//! for _ in 0..200 {
//!     for (node, addr) in [(&mut a, a_addr), (&mut b, b_addr)] {
//!         node.handle_timeout(now);
//!         while let Some(t) = node.poll_transmit(now, &mut buf) {
//!             wire.push_back((addr, t.to, buf[..t.len].to_vec()));
//!         }
//!         while let Some(event) = node.poll_event() {
//!             if let Event::MemberJoined { name, .. } = event {
//!                 println!("{addr} sees {name} join");
//!             }
//!         }
//!     }
//!     while let Some((from, to, bytes)) = wire.pop_front() {
//!         let node = if to == a_addr { &mut a } else { &mut b };
//!         node.handle_datagram(now, from, &bytes).unwrap();
//!         while let Some(t) = node.poll_transmit(now, &mut buf) {
//!             wire.push_back((to, t.to, buf[..t.len].to_vec()));
//!         }
//!     }
//!     // Sleep until the earliest deadline of either node.
//!     now = a.poll_timeout().min(b.poll_timeout()).unwrap().max(now);
//! }
//! assert_eq!(a.members().count(), 2);
//! assert_eq!(b.member("a").unwrap().status(), rumor_core::Status::Alive);
//! ```
//!
//! ## Memory
//!
//! `Node<MEMBERS, UPDATES>` holds everything inline: `MEMBERS` member slots (the local node
//! included) and an `UPDATES`-entry dissemination queue, plus small fixed buffers whose sizes
//! are documented in `docs/PROTOCOL.md`. When the table is full, a failed or left member
//! makes room once its transition has been reported and it had time to refute; otherwise
//! the newcomer is refused and reported with [`Event::MemberRefused`]. A live member already
//! tracked is never dropped, and no member event is lost.
//!
//! ## Features
//!
//! - `defmt`: log through `defmt`.
//! - `log`: log through the `log` facade (exclusive with `defmt`).
//! - `forge`: the `forge` module, which encodes any well-formed frame (for adversarial
//!   tests and fuzzers; an application never needs it).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;

mod broadcast;
mod config;
mod crypto;
mod event;
#[cfg(any(test, feature = "forge"))]
pub mod forge;
mod member;
mod name;
mod node;
mod rand;
mod render;
mod stats;
mod suspicion;
mod table;
mod tags;
mod time;
mod user_event;
mod wire;

pub use config::{Config, ConfigError, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
pub use crypto::{
    ENCRYPTION_OVERHEAD, ENVELOPE_XCHACHA20POLY1305, KEY_LEN, Key, Keyring, KeyringError, MAX_KEYS,
    NONCE_LEN, Plaintext, TAG_LEN, UnknownPlaintext,
};
pub use event::Event;
pub use member::{Member, Status};
pub use name::{Identity, NAME_MAX, Name, NameError, name, validate_name};
pub use node::{ForceLeaveError, JoinError, MAX_SEEDS, Node, Transmit, Unreachable};
pub use render::{Members, NameAddrLines, Render};
pub use stats::Stats;
pub use tags::{TAG_KEY_MAX, TAGS_MAX, TagError, Tags};
pub use time::{Duration, Instant};
pub use user_event::{USER_EVENT_NAME_MAX, USER_PAYLOAD_MAX, UserEvent, UserEventError};
pub use wire::{
    DropReason, ENVELOPE_PLAIN, HEADER_LEN, INCARNATION_WINDOW, LTIME_WINDOW, MAX_COUNTER,
    MAX_DATAGRAM, MIN_DATAGRAM, VERSION,
};
