//! The agent: one tokio task that owns a [`Node`] and a UDP socket, and a
//! cloneable [`Handle`] to talk to it.

mod address;
mod clock;
mod command;
mod driver;
mod handle;
mod icmp;
mod keys;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::task::{Supervised, TaskFailed};
use rumor_core::{Config, ConfigError, Identity, Keyring, NameError, Node, Plaintext, Tags};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};

pub use self::address::advertise_address;
pub use self::command::{AgentStats, LeaveOutcome};
pub use self::handle::{EventStream, Handle, HandleError};
pub use self::keys::{KeyChange, KeyringChangeError, KeyringView};

use self::command::DriverCounters;
use self::driver::Driver;
use self::keys::KeyStore;
use crate::keyring::KeyringFile;
use crate::member::MemberInfo;

/// Member table capacity of an agent, itself included: a cluster of up to 512 members.
/// Past that, newcomers are refused (reported as `member-refused`), never live members
/// dropped.
pub const MEMBER_CAPACITY: usize = 512;
/// Dissemination queue capacity: updates waiting to be piggybacked.
pub const UPDATE_CAPACITY: usize = 512;

/// The node an agent drives: about 140 KiB, so it is kept on the heap.
pub type AgentNode = Node<MEMBER_CAPACITY, UPDATE_CAPACITY>;

/// Stack of the short-lived thread that builds the node: `Node::new` returns the node by
/// value, and unoptimised builds copy it more than once on the way into its `Box`.
const NODE_BUILD_STACK: usize = 16 << 20;
/// Events buffered per subscriber before the slowest one starts missing some.
const EVENT_BUFFER: usize = 4096;
/// Commands waiting for the driver.
const COMMAND_BUFFER: usize = 64;

/// Everything needed to start an agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Unique member name (1 to 32 bytes, no whitespace).
    pub name: String,
    /// Address the UDP socket binds to. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// Address announced to peers. `None`: the bound address, or when that is a wildcard
    /// (`0.0.0.0`), the first private IPv4 address of this host's interfaces.
    pub advertise: Option<SocketAddr>,
    /// The agent's own tags.
    pub tags: Tags,
    /// Protocol timing (`Config::lan()`, `wan()`, `local()`).
    pub protocol: Config,
    /// How long a graceful leave may take before the agent stops anyway.
    pub leave_timeout: Duration,
    /// How long the agent stays, silent, once its leave is over (gossiped or timed out),
    /// before [`Handle::leave`] returns and the agent stops: the time the others need to
    /// act on the leave (a balancer's render and reload) before whatever waits for the
    /// agent's exit stops the service it announced. Serf's `LeavePropagateDelay`. Zero by
    /// default here, since a library user knows when its service stops; `rumor agent`
    /// uses 1 s, as Serf does.
    pub leave_propagate_delay: Duration,
    /// Whether ICMP errors (port or host unreachable) answering the agent's datagrams are
    /// read from the socket (Linux: `IP_RECVERR`) and given to the node as evidence of a
    /// dead member (`Node::handle_unreachable`): a crashed process on a live host is
    /// declared failed in about a second instead of a suspicion timeout. On by default;
    /// off where the platform has no error queue. Turn it off behind a firewall that
    /// *rejects* the gossip port with port unreachable.
    pub icmp_evidence: bool,
    /// Seed of the node's random choices; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Authenticated encryption: every datagram is sealed with the keyring's primary key
    /// and only datagrams that open with one of its keys are accepted. `None`: plaintext.
    pub keyring: Option<Keyring>,
    /// With a keyring, what the agent does about plaintext: [`Plaintext::Refuse`] (the
    /// default) seals and accepts encrypted datagrams only; `Send` and `Accept` are the
    /// first two steps of turning encryption on in a running plaintext cluster (see
    /// [`Plaintext`]). Ignored without a keyring. Changed with [`KeyChange::Plaintext`].
    pub plaintext: Plaintext,
    /// Where keyring changes ([`Handle::keyring`]) are saved before they take effect.
    /// `None`: they last until the agent stops.
    pub keyring_file: Option<KeyringFile>,
}

impl AgentConfig {
    /// LAN timing, no tags, a 5 s leave timeout (Serf's broadcast timeout).
    pub fn new(name: impl Into<String>, bind: SocketAddr) -> Self {
        AgentConfig {
            name: name.into(),
            bind,
            advertise: None,
            tags: Tags::new(),
            protocol: Config::lan(),
            leave_timeout: Duration::from_secs(5),
            leave_propagate_delay: Duration::ZERO,
            icmp_evidence: true,
            seed: None,
            keyring: None,
            plaintext: Plaintext::Refuse,
            keyring_file: None,
        }
    }
}

/// Why an agent could not start.
#[derive(Debug)]
pub enum AgentError {
    /// The UDP socket could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The name is not a valid member name.
    Name(NameError),
    /// The protocol config is invalid.
    Config(ConfigError),
    /// No address to advertise could be found.
    NoAdvertiseAddress(String),
    /// Another I/O failure while starting.
    Io(std::io::Error),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Bind { addr, source } => write!(f, "cannot bind UDP {addr}: {source}"),
            AgentError::Name(e) => write!(f, "invalid node name: {e}"),
            AgentError::Config(e) => write!(f, "invalid protocol config: {e}"),
            AgentError::NoAdvertiseAddress(why) => {
                write!(f, "no address to advertise ({why}); pass --advertise")
            }
            AgentError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// A running agent. Dropping it does not stop it while a [`Handle`] is alive; use
/// [`Agent::shutdown`] (graceful) or [`Agent::crash`].
#[derive(Debug)]
pub struct Agent {
    handle: Handle,
    task: Supervised,
    bound: SocketAddr,
}

impl Agent {
    /// Binds the socket, builds the node and starts driving it on the current tokio
    /// runtime. The agent reports its own `member-join` first, as Serf does. With a
    /// keyring, the node gets fresh entropy from the OS for its nonces at every start, and
    /// the plaintext policy of the config.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|source| AgentError::Bind {
                addr: config.bind,
                source,
            })?;
        let bound = socket.local_addr().map_err(AgentError::Io)?;
        let icmp = config.icmp_evidence && icmp::enable(&socket);
        let advertise = advertise_address(config.advertise, bound)?;
        let identity = Identity::new(&config.name, advertise)
            .map_err(AgentError::Name)?
            .with_tags(config.tags.clone());
        let seed = config.seed.unwrap_or_else(random_seed);
        let mut node = build_node(identity, config.protocol.clone(), seed)?;
        let encrypted = config.keyring.is_some();
        if let Some(keyring) = config.keyring.clone() {
            let entropy = crate::keyring::entropy().map_err(AgentError::Io)?;
            node.set_keyring(keyring, entropy);
        }
        node.set_plaintext(config.plaintext);
        let plaintext_accepted = encrypted && config.plaintext != Plaintext::Refuse;

        let local = MemberInfo::from_member(&node.local());
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
        let (events_tx, _) = broadcast::channel(EVENT_BUFFER);
        let (local_tx, local_rx) = watch::channel(local.clone());
        let counters = Arc::new(DriverCounters::default());
        let handle = Handle::new(
            commands_tx,
            events_tx.downgrade(),
            local_rx,
            counters.clone(),
        );
        let driver = Driver::new(
            node,
            socket,
            commands_rx,
            events_tx,
            local_tx,
            counters,
            config.leave_timeout,
        )
        .with_leave_propagate_delay(config.leave_propagate_delay)
        .with_icmp(icmp)
        .with_key_store(KeyStore::new(config.keyring_file.clone()));
        let span = tracing::info_span!("agent", name = %config.name);
        span.in_scope(|| {
            tracing::info!(bind = %bound, advertise = %advertise, encrypted, icmp, "agent started");
            if plaintext_accepted {
                tracing::warn!(
                    plaintext = %config.plaintext,
                    "plaintext is still accepted: the cluster is not protected until every \
                     agent refuses it (`rumor keys --plaintext refuse`)"
                );
            }
            tracing::debug!(protocol = ?config.protocol, capacity = MEMBER_CAPACITY, "protocol settings");
        });
        let task = Supervised::spawn("agent", tracing::Instrument::instrument(driver.run(), span));
        Ok(Agent {
            handle,
            task,
            bound,
        })
    }

    /// A handle to the agent (cheap to clone).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The address the UDP socket is bound to (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    /// Leaves gracefully (bounded by the leave timeout), then waits for the agent to stop.
    pub async fn shutdown(self) -> LeaveOutcome {
        let outcome = self
            .handle
            .leave()
            .await
            .unwrap_or(LeaveOutcome::AlreadyStopped);
        if let Err(e) = self.task.join().await {
            tracing::error!(error = %e, "the agent stopped abnormally");
        }
        outcome
    }

    /// Waits until the agent stops by itself (after a leave requested through a handle);
    /// an error if its task panicked.
    pub async fn wait(self) -> Result<(), TaskFailed> {
        self.task.join().await
    }

    /// Stops at once without leaving, as a crashed process would: the task is dropped and
    /// its socket closed; peers will detect a failure.
    pub fn crash(self) {
        self.task.abort();
    }
}

/// Builds the node on a thread with a large stack, straight into its box.
fn build_node(identity: Identity, config: Config, seed: u64) -> Result<Box<AgentNode>, AgentError> {
    let builder = std::thread::Builder::new()
        .name("rumor-node-build".into())
        .stack_size(NODE_BUILD_STACK);
    let thread = builder
        .spawn(move || AgentNode::new(identity, config, seed).map(Box::new))
        .map_err(AgentError::Io)?;
    match thread.join() {
        Ok(node) => node.map_err(AgentError::Config),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A seed from the OS's per-process hash keys, mixed with the time and the process id.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_fits_its_documented_budget() {
        let size = std::mem::size_of::<AgentNode>();
        println!("size_of::<AgentNode>() = {size}");
        assert!(size < 256 << 10, "AgentNode is {size} bytes");
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
