//! What the simulator needs from a protocol implementation: [`SimMember`], one simulated
//! cluster member driven sans-IO, and its implementation for [`rumor_core::Node`].
//!
//! The simulator speaks rumor's vocabulary ([`Config`], [`Event`], [`Status`],
//! [`DropReason`]); another implementation (see `rumor_bench::peer::foca`) translates to
//! and from it in an adapter, so that both run through the same network model, the same
//! scenarios and the same accounting.

use std::net::SocketAddr;

use rumor_core::{
    Config, DropReason, Event, Identity, Instant, JoinError, Node, Status, Tags, Transmit,
    Unreachable, UserEventError,
};

/// One cluster member the simulator can host, driven by the contract of
/// [`rumor_core`]'s crate docs: after every input, drain [`poll_transmit`] and
/// [`poll_event`], then sleep until [`poll_timeout`].
///
/// [`poll_transmit`]: SimMember::poll_transmit
/// [`poll_event`]: SimMember::poll_event
/// [`poll_timeout`]: SimMember::poll_timeout
pub trait SimMember {
    /// The implementation's own settings, shared by every member of a run.
    type Config: Clone;

    /// Translates rumor's settings into the implementation's closest equivalent for a
    /// cluster of about `cluster_size` members, so that both run under matching settings.
    fn config_from(config: &Config, cluster_size: usize) -> Self::Config;

    /// A fresh member called `name` at `addr`, every random choice drawn from `seed`.
    ///
    /// # Panics
    /// If the implementation rejects the name or the settings.
    fn create(name: &str, addr: SocketAddr, config: &Self::Config, seed: u64) -> Self;

    /// Largest datagram a member with `config` may send.
    fn max_datagram(config: &Self::Config) -> usize;

    /// Most members (itself included) one member may track; `usize::MAX` when unbounded.
    fn capacity() -> usize;

    /// Starts joining the cluster through whichever member owns `seed`.
    fn join(&mut self, now: Instant, seed: SocketAddr) -> Result<(), JoinError>;

    /// Starts leaving gracefully; reports [`Event::LeaveComplete`] once done.
    fn leave(&mut self, now: Instant);

    /// Replaces the member's tags.
    fn set_tags(&mut self, now: Instant, tags: Tags);

    /// Broadcasts a user event (delivered locally too).
    fn send_user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
    ) -> Result<(), UserEventError>;

    /// Handles one datagram from `from`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason>;

    /// Handles the network's report that `datagram`, sent to `to`, could not be delivered
    /// ([`SimConfig::icmp`](super::SimConfig::icmp)). Ignored by default: an
    /// implementation without such an input detects crashes by timeouts only.
    fn handle_unreachable(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: Unreachable,
        datagram: &[u8],
    ) {
        let _ = (now, to, kind, datagram);
    }

    /// Handles whatever is due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next datagram into `buf`, if any.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next event, if any.
    fn poll_event(&mut self) -> Option<Event>;

    /// When [`handle_timeout`](SimMember::handle_timeout) is next due.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Shows every member of the table (itself included) to `f` as
    /// `(name, status, incarnation, address)`. Incarnations must only grow for a name (an
    /// implementation that renews identities folds the renewal into the incarnation).
    fn visit_members(&self, f: &mut dyn FnMut(&str, Status, u32, SocketAddr));
}

impl<const M: usize, const U: usize> SimMember for Node<M, U> {
    type Config = Config;

    fn config_from(config: &Config, _cluster_size: usize) -> Config {
        config.clone()
    }

    fn create(name: &str, addr: SocketAddr, config: &Config, seed: u64) -> Self {
        let identity = Identity::new(name, addr)
            .unwrap_or_else(|e| panic!("invalid identity {name}@{addr}: {e:?}"));
        Node::new(identity, config.clone(), seed)
            .unwrap_or_else(|e| panic!("node {name} rejected its config: {e:?}"))
    }

    fn max_datagram(config: &Config) -> usize {
        config.max_datagram
    }

    fn capacity() -> usize {
        M
    }

    fn join(&mut self, now: Instant, seed: SocketAddr) -> Result<(), JoinError> {
        Node::join(self, now, seed)
    }

    fn leave(&mut self, now: Instant) {
        Node::leave(self, now);
    }

    fn set_tags(&mut self, now: Instant, tags: Tags) {
        Node::set_tags(self, now, tags);
    }

    fn send_user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
    ) -> Result<(), UserEventError> {
        Node::send_user_event(self, now, name, payload)
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        Node::handle_datagram(self, now, from, bytes)
    }

    fn handle_unreachable(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: Unreachable,
        datagram: &[u8],
    ) {
        let _ = Node::handle_unreachable(self, now, to, kind, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Node::poll_transmit(self, now, buf)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Node::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }

    fn visit_members(&self, f: &mut dyn FnMut(&str, Status, u32, SocketAddr)) {
        for m in self.members() {
            f(m.name(), m.status(), m.incarnation(), m.addr());
        }
    }
}
