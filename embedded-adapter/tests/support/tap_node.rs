//! A rumor node on smoltcp on the host: `smol::Driver` on a `TunTapInterface`, the tap device
//! of a test's namespace, run by a thread of its own that moved into that namespace. The
//! test reads its member table and events and tells it to leave; it stops when dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rumor_embedded::rumor_core::{Config, Event, Identity, Node};
use rumor_embedded::smol::{Driver, DriverStats};
use rumor_embedded::smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use rumor_embedded::smoltcp::phy::{self, Medium, TunTapInterface};
use rumor_embedded::smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata};
use rumor_embedded::smoltcp::time::Instant as SmolInstant;
use rumor_embedded::smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};
use rumor_embedded::time::from_smoltcp;

use super::netns::{self, Netns};

/// The node's thread gives up after this long, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(300);

/// What the node's thread publishes for the test.
#[derive(Debug, Default)]
struct State {
    /// Member name to status.
    view: BTreeMap<String, String>,
    /// Events so far, as `joined NAME`, `user NAME`, `leave-complete`, ...
    events: Vec<String>,
    stats: DriverStats,
    /// Why the thread stopped early, if it did.
    error: Option<String>,
}

/// What the test tells the node's thread.
#[derive(Debug)]
enum Command {
    Leave,
    Stop,
}

/// Where the node lives and whom it joins.
#[derive(Clone, Debug)]
pub(crate) struct TapSettings {
    /// The tap device, already created in the namespace.
    pub(crate) tap: String,
    /// Member name.
    pub(crate) name: String,
    /// The node's IPv4 address (a /24) on the tap's segment; it gossips on port 7946.
    pub(crate) ip: Ipv4Addr,
    /// Members to join through.
    pub(crate) seeds: Vec<SocketAddr>,
}

/// A smoltcp rumor node on a tap device, in a thread of its own.
#[derive(Debug)]
pub(crate) struct TapNode {
    state: Arc<Mutex<State>>,
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl TapNode {
    /// Starts the node in `ns` on `settings.tap` (a `Node<32, 64>` on `Config::lan()`).
    pub(crate) fn start(ns: &Netns, settings: TapSettings) -> TapNode {
        let state: Arc<Mutex<State>> = Arc::default();
        let (commands, inbox) = mpsc::channel();
        let thread = {
            let (state, ns) = (state.clone(), ns.name().to_owned());
            thread::spawn(move || {
                netns::enter(&ns);
                if let Err(e) = run(&settings, &state, &inbox) {
                    state.lock().unwrap().error = Some(e);
                }
            })
        };
        TapNode {
            state,
            commands,
            thread: Some(thread),
        }
    }

    /// The node's member table, name to status. Panics if the node's thread failed.
    pub(crate) fn view(&self) -> BTreeMap<String, String> {
        let state = self.state.lock().unwrap();
        if let Some(e) = &state.error {
            panic!("the smoltcp node stopped: {e}");
        }
        state.view.clone()
    }

    /// True when the node reported `event` (`user NAME`, `leave-complete`, ...).
    pub(crate) fn saw(&self, event: &str) -> bool {
        self.state.lock().unwrap().events.iter().any(|e| e == event)
    }

    /// Every event so far.
    pub(crate) fn events(&self) -> Vec<String> {
        self.state.lock().unwrap().events.clone()
    }

    /// What the driver could not hand to smoltcp.
    pub(crate) fn stats(&self) -> DriverStats {
        self.state.lock().unwrap().stats
    }

    /// Leaves the cluster gracefully.
    pub(crate) fn leave(&self) {
        let _ = self.commands.send(Command::Leave);
    }
}

impl Drop for TapNode {
    /// Stops the thread, closing the tap device, before the namespace goes.
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The node's thread: the loop of the `smol` module docs, sleeping on the tap's descriptor.
fn run(
    settings: &TapSettings,
    state: &Mutex<State>,
    inbox: &Receiver<Command>,
) -> Result<(), String> {
    let mut device = TunTapInterface::new(&settings.tap, Medium::Ethernet)
        .map_err(|e| format!("open tap device {}: {e}", settings.tap))?;
    let origin = Instant::now();
    let clock = || SmolInstant::from_micros(origin.elapsed().as_micros() as i64);
    let mac = EthernetAddress([0x02, 0, 0, 0, 0x10, settings.ip.octets()[3]]);
    let mut iface = Interface::new(
        IfaceConfig::new(HardwareAddress::Ethernet(mac)),
        &mut device,
        clock(),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(settings.ip.into(), 24))
            .expect("one address");
    });
    let socket = udp::Socket::new(
        PacketBuffer::new(vec![PacketMetadata::EMPTY; 8], vec![0; 8 * 1500]),
        PacketBuffer::new(vec![PacketMetadata::EMPTY; 8], vec![0; 8 * 1500]),
    );
    let mut sockets = SocketSet::new(Vec::new());
    let mut node: Box<Node<32, 64>> = Box::new(Node::unconfigured());
    let identity = Identity::new(&settings.name, SocketAddr::from((settings.ip, 7946)))
        .map_err(|e| format!("identity: {e:?}"))?;
    node.configure(identity, Config::lan(), u64::from(settings.ip.to_bits()))
        .map_err(|e| format!("configure: {e:?}"))?;
    let mut driver =
        Driver::new(&mut node, socket, &mut sockets).map_err(|e| format!("bind: {e:?}"))?;
    for &seed in &settings.seeds {
        driver
            .node_mut()
            .join(from_smoltcp(clock()), seed)
            .map_err(|e| format!("join: {e:?}"))?;
    }
    while origin.elapsed() < LIFETIME {
        let now = clock();
        iface.poll(now, &mut device, &mut sockets);
        let wake = driver.poll(now, &mut sockets);
        let mut s = state.lock().unwrap();
        while let Some(event) = driver.poll_event() {
            s.events.push(describe(&event));
        }
        s.view = driver
            .node()
            .members()
            .map(|m| (m.name().to_owned(), m.status().to_string()))
            .collect();
        s.stats = driver.stats();
        drop(s);
        match inbox.try_recv() {
            Ok(Command::Leave) => driver.node_mut().leave(from_smoltcp(clock())),
            Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        // Sleep until a frame comes, the node or the interface is due, or 50 ms have
        // passed (to look at the commands).
        let mut delay = rumor_embedded::smoltcp::time::Duration::from_millis(50);
        for due in [wake, iface.poll_at(now, &sockets)].into_iter().flatten() {
            delay = delay.min(if due > now {
                due - now
            } else {
                Default::default()
            });
        }
        phy::wait(device.as_raw_fd(), Some(delay)).map_err(|e| format!("wait: {e}"))?;
    }
    Err("ran for its whole lifetime".into())
}

/// An event in a word or two: `joined NAME`, `failed NAME`, `user NAME`, `leave-complete`.
fn describe(event: &Event) -> String {
    match event {
        Event::MemberJoined { name, .. } => format!("joined {name}"),
        Event::MemberLeft { name, .. } => format!("left {name}"),
        Event::MemberFailed { name, .. } => format!("failed {name}"),
        Event::User(u) => format!("user {}", u.name),
        Event::Joined { .. } => "cluster-joined".into(),
        Event::LeaveComplete => "leave-complete".into(),
        other => format!("{other:?}"),
    }
}
