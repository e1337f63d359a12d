//! The embassy-net driver: [`new`] splits a rumor node into a [`Handle`] for the
//! application and a [`Runner`] to spawn as an embassy task.
//!
//! The application owns the node and lends it to the driver, which configures it in place.
//! Build the node at compile time with [`Node::unconfigured`] in a `static` of its own, and
//! the [`Resources`] (socket buffers) likewise: neither the node (its size is in the memory
//! budget of `docs/ARCHITECTURE.md`) nor the buffers are ever built or moved on the stack.
//!
//! ```ignore
//! static NODE: ConstStaticCell<Node<32, 64>> = ConstStaticCell::new(Node::unconfigured());
//! static RES: ConstStaticCell<Resources<'static, 32, 64>> = ConstStaticCell::new(Resources::new());
//! let config = Config::new(Identity::new("board-1", "10.42.0.11:7946".parse()?)?, rumor_core::Config::lan());
//! let (handle, runner) = rumor_embedded::embassy::new(stack, config, NODE.take(), RES.take(), seed)?;
//! spawner.spawn(rumor_task(runner))?; // #[embassy_executor::task] async fn rumor_task(r: Runner<'static, 32, 64>) -> ! { r.run().await }
//! handle.join("10.42.0.12:7946".parse()?)?;
//! loop {
//!     match handle.next_event().await { /* ... */ }
//! }
//! ```
//!
//! (`StaticCell::init(Resources::new())` or `init(Node::unconfigured())` would build the
//! value on the stack first and copy it: avoid them on a board.)
//!
//! The node sits behind a critical-section mutex, so the handle may live in another task
//! (or another executor) than the runner. Closures given to [`Handle::with_node`] run inside
//! that critical section: keep them short.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;

use embassy_futures::select::select4;
use embassy_net::Stack;
use embassy_net::udp::{PacketMetadata, SendError, UdpSocket};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_sync::waitqueue::AtomicWaker;
use embassy_time::Timer;
use rumor_core::{
    ConfigError, Event, Identity, Instant, JoinError, MAX_DATAGRAM, Node, Tags, UserEventError,
};

use crate::addr::{from_endpoint, to_endpoint};
use crate::unresolved::{InFlight, Unresolved};

/// Datagrams the socket can queue on the way in. On the way out it holds one: the runner
/// sends the next once the stack has sent it (see [`crate::unresolved`]), and a free slot is
/// how it knows.
const QUEUED: usize = 8;

/// What the driver needs to start a node.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name, advertised address and tags. The socket binds to the address's port on every
    /// address of the stack.
    pub identity: Identity,
    /// Protocol timing and sizing.
    pub protocol: rumor_core::Config,
}

impl Config {
    /// A config for `identity` with `protocol` timing.
    pub fn new(identity: Identity, protocol: rumor_core::Config) -> Self {
        Config { identity, protocol }
    }
}

/// Why [`new`] could not start a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The protocol config (or the node's capacity) is invalid.
    Config(ConfigError),
    /// The identity's port is 0.
    PortZero,
    /// `protocol.max_datagram` exceeds the transmit buffer (`TX`).
    TxBufferTooSmall,
}

/// Static memory for one node besides the node itself: the socket's buffers, a datagram of
/// scratch space and what the [`Handle`] and the [`Runner`] share. [`Resources::new`] is a
/// `const fn` and its value is all zeros, so in a `static` (`static_cell::ConstStaticCell`)
/// it takes no flash and is never on the stack. `'n` is how long the node is lent for.
///
/// `RX` and `TX` are the socket's receive and transmit payload buffers in bytes. The
/// defaults hold two and one datagrams of the largest size any peer may send
/// ([`MAX_DATAGRAM`]); with `Config::small_mtu` on every member, 1024 and 512 suffice.
pub struct Resources<
    'n,
    const MEMBERS: usize,
    const UPDATES: usize,
    const RX: usize = { 2 * MAX_DATAGRAM },
    const TX: usize = MAX_DATAGRAM,
> {
    rx: [u8; RX],
    tx: [u8; TX],
    scratch: [u8; MAX_DATAGRAM],
    shared: Option<Shared<'n, MEMBERS, UPDATES>>,
}

impl<const M: usize, const U: usize, const RX: usize, const TX: usize> Resources<'_, M, U, RX, TX> {
    /// Empty resources.
    pub const fn new() -> Self {
        Resources {
            rx: [0; RX],
            tx: [0; TX],
            scratch: [0; MAX_DATAGRAM],
            shared: None,
        }
    }
}

impl<const M: usize, const U: usize, const RX: usize, const TX: usize> Default
    for Resources<'_, M, U, RX, TX>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const M: usize, const U: usize, const RX: usize, const TX: usize> core::fmt::Debug
    for Resources<'_, M, U, RX, TX>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Resources")
            .field("in_use", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// What the handle and the runner share.
struct Shared<'n, const M: usize, const U: usize> {
    node: Mutex<CriticalSectionRawMutex, RefCell<&'n mut Node<M, U>>>,
    /// Woken when the runner has fed the node, so events may be waiting.
    events: AtomicWaker,
    /// Raised by the handle after a command, so the runner sends what it queued.
    kick: Signal<CriticalSectionRawMutex, ()>,
}

impl<const M: usize, const U: usize> Shared<'_, M, U> {
    fn with<R>(&self, f: impl FnOnce(&mut Node<M, U>) -> R) -> R {
        self.node.lock(|node| f(&mut node.borrow_mut()))
    }
}

/// Starts `node` on `stack`: configures it in place (a fresh start, whatever it held) and
/// keeps it for the [`Handle`] and the [`Runner`], which binds a UDP socket to the
/// identity's port. `node` may be [`Node::unconfigured`]: put it in a `static` of its own
/// (`static_cell::ConstStaticCell`) so that it is never built or moved on the stack.
/// `seed` drives the node's random choices; give each board its own (a hardware RNG, a
/// unique ID). On error neither the node nor the resources change.
pub fn new<'a, const M: usize, const U: usize, const RX: usize, const TX: usize>(
    stack: Stack<'a>,
    config: Config,
    node: &'a mut Node<M, U>,
    resources: &'a mut Resources<'a, M, U, RX, TX>,
    seed: u64,
) -> Result<(Handle<'a, M, U>, Runner<'a, M, U>), Error> {
    if config.protocol.max_datagram > TX {
        return Err(Error::TxBufferTooSmall);
    }
    let port = config.identity.addr().port();
    if port == 0 {
        return Err(Error::PortZero);
    }
    node.configure(config.identity, config.protocol, seed)
        .map_err(Error::Config)?;
    let Resources {
        rx,
        tx,
        scratch,
        shared,
    } = resources;
    let shared: &'a Shared<'a, M, U> = shared.insert(Shared {
        node: Mutex::new(RefCell::new(node)),
        events: AtomicWaker::new(),
        kick: Signal::new(),
    });
    let buffers = Buffers {
        rx_meta: [PacketMetadata::EMPTY; QUEUED],
        tx_meta: [PacketMetadata::EMPTY; 1],
        rx,
        tx,
    };
    Ok((
        Handle { shared },
        Runner {
            pump: Pump {
                shared,
                scratch,
                unresolved: Unresolved::default(),
            },
            stack,
            port,
            buffers,
        },
    ))
}

fn now() -> Instant {
    Instant::from_millis(embassy_time::Instant::now().as_millis())
}

/// The application's side of a node: commands, members, events. Cheap to copy.
pub struct Handle<'a, const M: usize, const U: usize> {
    shared: &'a Shared<'a, M, U>,
}

impl<const M: usize, const U: usize> Clone for Handle<'_, M, U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<const M: usize, const U: usize> Copy for Handle<'_, M, U> {}

impl<const M: usize, const U: usize> core::fmt::Debug for Handle<'_, M, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.shared
            .with(|node| f.debug_tuple("Handle").field(node).finish())
    }
}

impl<const M: usize, const U: usize> Handle<'_, M, U> {
    /// Runs `command` on the node, then wakes the runner to send what it queued.
    fn command<R>(&self, command: impl FnOnce(&mut Node<M, U>, Instant) -> R) -> R {
        let r = self.shared.with(|node| command(node, now()));
        self.shared.kick.signal(());
        r
    }

    /// Joins the cluster through `seed` (see [`Node::join`]).
    pub fn join(&self, seed: core::net::SocketAddr) -> Result<(), JoinError> {
        self.command(|node, now| node.join(now, seed))
    }

    /// Leaves gracefully (see [`Node::leave`]); [`Event::LeaveComplete`] follows.
    pub fn leave(&self) {
        self.command(|node, now| node.leave(now));
    }

    /// Replaces the local tags (see [`Node::set_tags`]).
    pub fn set_tags(&self, tags: Tags) {
        self.command(|node, now| node.set_tags(now, tags));
    }

    /// Sends a user event to every member (see [`Node::send_user_event`]).
    pub fn send_user_event(&self, name: &str, payload: &[u8]) -> Result<(), UserEventError> {
        self.command(|node, now| node.send_user_event(now, name, payload))
    }

    /// Reads the node (members, stats, rendering) inside the critical section.
    pub fn with_node<R>(&self, f: impl FnOnce(&Node<M, U>) -> R) -> R {
        self.shared.with(|node| f(node))
    }

    /// The next event. Meant for one consumer at a time: member transitions wait in the
    /// node until taken, so none is lost however late this is awaited.
    pub async fn next_event(&self) -> Event {
        poll_fn(|cx| {
            self.shared.events.register(cx.waker());
            match self.shared.with(|node| node.poll_event()) {
                Some(event) => Poll::Ready(event),
                None => Poll::Pending,
            }
        })
        .await
    }
}

/// The socket's buffers, lent to a fresh socket each time the runner (re)opens it. The
/// packet metadata (a few words) lives here rather than in [`Resources`]: its empty value is
/// not all zeros, and would move the whole of `Resources` from .bss to .data.
struct Buffers<'a> {
    rx_meta: [PacketMetadata; QUEUED],
    tx_meta: [PacketMetadata; 1],
    rx: &'a mut [u8],
    tx: &'a mut [u8],
}

/// The task that moves datagrams between the socket and the node and runs its timers.
pub struct Runner<'a, const M: usize, const U: usize> {
    pump: Pump<'a, M, U>,
    stack: Stack<'a>,
    port: u16,
    buffers: Buffers<'a>,
}

impl<const M: usize, const U: usize> core::fmt::Debug for Runner<'_, M, U> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runner")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl<const M: usize, const U: usize> Runner<'_, M, U> {
    /// Runs the node forever. Spawn it in its own embassy task; the network stack's own
    /// runner must run too.
    pub async fn run(mut self) -> ! {
        loop {
            let b = &mut self.buffers;
            let mut socket = UdpSocket::new(self.stack, &mut b.rx_meta, b.rx, &mut b.tx_meta, b.tx);
            let bound = socket.bind(self.port);
            debug_assert!(bound.is_ok(), "new() checked the port");
            self.pump.serve(&mut socket).await;
            // Dropping the socket removes it from the stack, with the datagram it held.
            warning!("rumor: a datagram stalled in the socket, replacing the socket");
        }
    }
}

/// The node's side of the runner: everything but the socket.
struct Pump<'a, const M: usize, const U: usize> {
    shared: &'a Shared<'a, M, U>,
    scratch: &'a mut [u8; MAX_DATAGRAM],
    /// Destinations that stalled the socket lately, skipped for a while.
    unresolved: Unresolved,
}

impl<const M: usize, const U: usize> Pump<'_, M, U> {
    /// Serves the node on `socket` until a datagram stalls in it (see
    /// [`crate::unresolved`]): reads all input as it comes, hands the node's datagrams to the
    /// socket one at a time, runs the node's timers.
    async fn serve(&mut self, socket: &mut UdpSocket<'_>) {
        let mut in_flight: Option<InFlight> = None;
        loop {
            let now = now();
            self.shared.with(|node| {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            });
            while is_ready(|cx| socket.poll_recv_ready(cx)).await {
                self.receive(socket).await;
            }
            if let Some(f) = in_flight {
                // The socket's one transmit slot is free again: the datagram left.
                if is_ready(|cx| socket.poll_send_ready(cx)).await {
                    self.unresolved.resolved(f.to);
                    in_flight = None;
                } else if now >= f.deadline() {
                    self.unresolved.stalled(f.to, now);
                    return;
                }
            }
            if in_flight.is_none() {
                in_flight = self.send_next(socket, now).await;
            }
            self.shared.events.wake();
            let node_wake = self.shared.with(|node| node.poll_timeout());
            let wake = [node_wake, in_flight.map(|f| f.deadline())]
                .into_iter()
                .flatten()
                .min()
                .map_or(embassy_time::Instant::MAX, |t| {
                    embassy_time::Instant::from_millis(t.as_millis())
                });
            let sent = async {
                match in_flight {
                    Some(_) => socket.wait_send_ready().await,
                    None => core::future::pending().await,
                }
            };
            select4(
                socket.wait_recv_ready(),
                sent,
                Timer::at(wake),
                self.shared.kick.wait(),
            )
            .await;
        }
    }

    /// Feeds one received datagram to the node.
    async fn receive(&mut self, socket: &mut UdpSocket<'_>) {
        let shared = self.shared;
        socket
            .recv_from_with(|data, meta| {
                let from = from_endpoint(meta.endpoint);
                let result = shared.with(|node| node.handle_datagram(now(), from, data));
                if let Err(reason) = result {
                    debug!("rumor: dropped a datagram ({})", reason as u8);
                }
            })
            .await;
    }

    /// Hands the node's next datagram to the (empty) socket, skipping destinations that
    /// stalled it lately; returns it, or `None` when the node has nothing to send.
    async fn send_next(&mut self, socket: &mut UdpSocket<'_>, now: Instant) -> Option<InFlight> {
        loop {
            let scratch = &mut *self.scratch;
            let t = self.shared.with(|node| node.poll_transmit(now, scratch))?;
            if self.unresolved.is_held(t.to.ip(), now) {
                continue;
            }
            let Some(endpoint) = to_endpoint(t.to) else {
                warning!("rumor: cannot send to an IPv6 member without the ipv6 feature");
                continue;
            };
            match socket.send_to(&self.scratch[..t.len], endpoint).await {
                Ok(()) => {
                    return Some(InFlight {
                        to: t.to.ip(),
                        since: now,
                    });
                }
                Err(SendError::NoRoute | SendError::SocketNotBound | SendError::PacketTooLarge) => {
                    warning!("rumor: embassy-net refused a datagram of {} bytes", t.len);
                }
            }
        }
    }
}

/// Whether `poll` is ready now, without waiting (it registers the task's waker as a poll
/// does).
async fn is_ready(mut poll: impl FnMut(&mut core::task::Context<'_>) -> Poll<()>) -> bool {
    poll_fn(|cx| Poll::Ready(poll(cx).is_ready())).await
}
