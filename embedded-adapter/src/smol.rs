//! The smoltcp driver: one UDP socket, one [`Node`], pumped by [`Driver::poll`].
//!
//! Works with any [`smoltcp::phy::Device`]: the driver only touches its socket in the
//! application's [`SocketSet`]; the application owns the interface and polls it.
//!
//! The driver borrows the node rather than owning it, so the node (its size is in the
//! memory budget of `docs/ARCHITECTURE.md`) can live in a `static` built at compile time with [`Node::unconfigured`] and be
//! [configured](Node::configure) in place: it is never built, moved or copied on the stack.
//!
//! ```no_run
//! use rumor_embedded::rumor_core::{Config, Identity, Node};
//! use rumor_embedded::smol::Driver;
//! use rumor_embedded::smoltcp::{iface::{Interface, SocketSet}, phy::Device, socket::udp, time::Instant};
//! use static_cell::ConstStaticCell;
//!
//! static NODE: ConstStaticCell<Node<32, 64>> = ConstStaticCell::new(Node::unconfigured());
//!
//! fn run(
//!     iface: &mut Interface,
//!     device: &mut impl Device,
//!     socket: udp::Socket<'static>,
//!     sockets: &mut SocketSet<'static>,
//!     clock: impl Fn() -> Instant,
//! ) {
//!     let node = NODE.take();
//!     let me = Identity::new("board-1", "10.42.0.11:7946".parse().unwrap()).unwrap();
//!     node.configure(me, Config::lan(), 0x5eed).unwrap();
//!     let mut driver = Driver::new(node, socket, sockets).unwrap();
//!     loop {
//!         let now = clock();
//!         iface.poll(now, device, sockets);
//!         let _wake = driver.poll(now, sockets);
//!         while let Some(_event) = driver.poll_event() {
//!             // act on joins, failures, user events ...
//!         }
//!         // Sleep until the earliest of `_wake`, `iface.poll_at(now, sockets)` and the
//!         // next received frame.
//!     }
//! }
//! ```

use core::net::SocketAddr;

use rumor_core::{Event, MAX_DATAGRAM, Node};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::Socket;
use smoltcp::socket::udp::{self, BindError};

use crate::addr::{from_endpoint, to_endpoint};
use crate::time::{from_smoltcp, to_smoltcp};
use crate::unresolved::{InFlight, Unresolved};

/// Counters of what the driver could not hand to smoltcp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DriverStats {
    /// Datagrams smoltcp refused to send (unaddressable destination, or larger than the
    /// socket's whole transmit buffer). Dropped; the protocol treats them as lost.
    pub send_errors: u32,
    /// Times the datagram in the socket did not leave within
    /// [`STALL`](crate::unresolved::STALL) (its destination's link-layer address did not
    /// resolve): the driver replaced the socket, dropping that datagram, and skips the
    /// destination for a while (see [`crate::unresolved`]).
    pub stalls: u32,
    /// Datagrams dropped without trying because their destination is being skipped after a
    /// stall.
    pub unresolved: u32,
}

/// A datagram encoded by the node that waits for the socket to be empty.
#[derive(Clone, Copy, Debug)]
struct Pending {
    to: SocketAddr,
    len: usize,
}

/// A rumor node on a smoltcp UDP socket.
///
/// Memory: one datagram of scratch space ([`MAX_DATAGRAM`] bytes) and a few words; the
/// node and the socket's buffers belong to the application, lent for `'n`.
pub struct Driver<'n, const MEMBERS: usize, const UPDATES: usize> {
    node: &'n mut Node<MEMBERS, UPDATES>,
    handle: SocketHandle,
    scratch: [u8; MAX_DATAGRAM],
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
    unresolved: Unresolved,
    stats: DriverStats,
}

impl<const M: usize, const U: usize> core::fmt::Debug for Driver<'_, M, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver")
            .field("node", &self.node)
            .field("handle", &self.handle)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'n, const M: usize, const U: usize> Driver<'n, M, U> {
    /// Binds `socket` to the port of the node's own address, adds it to `sockets` and
    /// drives `node` from now on.
    ///
    /// `node` must be configured ([`Node::configure`], or built by [`Node::new`]): an
    /// unconfigured node has port 0, which smoltcp refuses
    /// ([`BindError::Unaddressable`]). The socket's transmit payload buffer should hold at
    /// least one `Config::max_datagram`; its receive buffer a few (datagrams from peers
    /// using larger datagrams than this node are dropped by smoltcp when they do not fit).
    pub fn new<'s>(
        node: &'n mut Node<M, U>,
        mut socket: udp::Socket<'s>,
        sockets: &mut SocketSet<'s>,
    ) -> Result<Self, BindError> {
        socket.bind(node.local().addr().port())?;
        let handle = sockets.add(socket);
        Ok(Driver {
            node,
            handle,
            scratch: [0; MAX_DATAGRAM],
            pending: None,
            in_flight: None,
            unresolved: Unresolved::default(),
            stats: DriverStats::default(),
        })
    }

    /// Moves datagrams between the socket and the node and runs the node's timers.
    ///
    /// Call it after every `Interface::poll` (which fills and drains the socket), then drain
    /// [`Driver::poll_event`]. The driver reads every datagram waiting and keeps one
    /// datagram in the socket at a time (see [`crate::unresolved`]), so a burst of datagrams
    /// leaves over as many `Interface::poll`s (the interface's `poll_at` asks for them at
    /// once). Returns when the driver next needs to run for the node's timers or a datagram
    /// waiting in the socket; `None` once the node has left and the socket is empty. The
    /// application sleeps until the earliest of this, the interface's `poll_at` and the next
    /// received frame.
    pub fn poll(
        &mut self,
        now: smoltcp::time::Instant,
        sockets: &mut SocketSet<'_>,
    ) -> Option<smoltcp::time::Instant> {
        let now_r = from_smoltcp(now);
        self.unstall(now, sockets);
        let socket = sockets.get_mut::<udp::Socket<'_>>(self.handle);
        // All input, even while a datagram waits to leave: the node queues its answers (and
        // drops what does not fit, as lost), but input smoltcp has no room for is lost too.
        while self.receive_one(socket, now_r) {}
        if self.node.poll_timeout().is_some_and(|t| t <= now_r) {
            self.node.handle_timeout(now_r);
        }
        self.flush(socket, now);
        let node_wake = self.node.poll_timeout().map(|t| to_smoltcp(t.max(now_r)));
        let stall_check = self.in_flight.map(|f| to_smoltcp(f.deadline()));
        match (node_wake, stall_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feeds one received datagram to the node; false when there was none.
    fn receive_one(&mut self, socket: &mut udp::Socket<'_>, now: rumor_core::Instant) -> bool {
        let Ok((data, meta)) = socket.recv() else {
            return false;
        };
        let from = from_endpoint(meta.endpoint);
        if let Err(reason) = self.node.handle_datagram(now, from, data) {
            debug!("rumor: dropped a datagram ({})", reason as u8);
        }
        true
    }

    /// Forgets the datagram in flight once the socket is empty; replaces the socket when it
    /// has not left within [`STALL`](crate::unresolved::STALL), and skips its destination
    /// for a while.
    fn unstall(&mut self, now: smoltcp::time::Instant, sockets: &mut SocketSet<'_>) {
        let Some(in_flight) = self.in_flight else {
            return;
        };
        let socket = sockets.get_mut::<udp::Socket<'_>>(self.handle);
        if socket.send_queue() == 0 {
            self.unresolved.resolved(in_flight.to);
            self.in_flight = None;
            return;
        }
        if from_smoltcp(now) < in_flight.deadline() {
            return;
        }
        // Keep what was received; answers wait in the node's outbox.
        while self.receive_one(socket, from_smoltcp(now)) {}
        warning!("rumor: a datagram stalled in the socket, replacing the socket");
        self.stats.stalls += 1;
        self.unresolved.stalled(in_flight.to, from_smoltcp(now));
        self.in_flight = None;
        // A fresh socket also sheds smoltcp's per-socket "neighbour missing" silence.
        // (Irrefutable unless another crate enables more socket kinds in smoltcp.)
        #[allow(irrefutable_let_patterns)]
        let Socket::Udp(mut socket) = sockets.remove(self.handle) else {
            unreachable!("the driver's handle names its UDP socket")
        };
        socket.close();
        let bound = socket.bind(self.node.local().addr().port());
        debug_assert!(bound.is_ok(), "rebinding the port the socket just had");
        self.handle = sockets.add(socket);
    }

    /// Hands the node's next datagram to the socket if the socket is empty, skipping
    /// destinations that stalled it lately; a datagram that must wait is kept as pending.
    fn flush(&mut self, socket: &mut udp::Socket<'_>, now: smoltcp::time::Instant) {
        let now_r = from_smoltcp(now);
        loop {
            let next = match self.pending.take() {
                Some(p) => p,
                None => match self.node.poll_transmit(now_r, &mut self.scratch) {
                    Some(t) => Pending {
                        to: t.to,
                        len: t.len,
                    },
                    None => return,
                },
            };
            if self.unresolved.is_held(next.to.ip(), now_r) {
                self.stats.unresolved += 1;
                continue;
            }
            let Some(endpoint) = to_endpoint(next.to) else {
                self.stats.send_errors += 1;
                warning!("rumor: cannot send to an IPv6 member without the ipv6 feature");
                continue;
            };
            if socket.send_queue() > 0 {
                self.pending = Some(next);
                return;
            }
            match socket.send_slice(&self.scratch[..next.len], endpoint) {
                Ok(()) => {
                    self.in_flight = Some(InFlight {
                        to: next.to.ip(),
                        since: now_r,
                    });
                }
                Err(_) => {
                    self.stats.send_errors += 1;
                    warning!("rumor: smoltcp refused a datagram of {} bytes", next.len);
                }
            }
        }
    }

    /// The next thing the application may want to act on (see [`Node::poll_event`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.node.poll_event()
    }

    /// The node, for its members, stats and rendering.
    pub fn node(&self) -> &Node<M, U> {
        self.node
    }

    /// The node, for commands (`join`, `leave`, `set_tags`, `send_user_event`). Call
    /// [`Driver::poll`] afterwards so that their datagrams go out.
    pub fn node_mut(&mut self) -> &mut Node<M, U> {
        self.node
    }

    /// The handle of the driver's socket in the application's `SocketSet`. It changes when
    /// the driver replaces a stalled socket (see [`crate::unresolved`]).
    pub fn socket_handle(&self) -> SocketHandle {
        self.handle
    }

    /// What could not be handed to smoltcp.
    pub fn stats(&self) -> DriverStats {
        self.stats
    }
}
