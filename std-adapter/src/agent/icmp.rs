//! ICMP evidence of a dead member, read from the UDP socket's error queue (Linux).
//!
//! With `IP_RECVERR` / `IPV6_RECVERR` set, Linux queues the ICMP errors that answer the
//! datagrams the socket sent (port unreachable from a host whose process is gone, host
//! unreachable from a failed address resolution) instead of dropping them; the socket then
//! reports error readiness, and `recvmsg(MSG_ERRQUEUE)` returns each one with the
//! original destination and the original datagram as quoted. The driver hands them to
//! `Node::handle_unreachable`, which acts only on those that quote a ping it has
//! outstanding. Elsewhere the feature is off: no error is queued and [`read`] never finds
//! one.

use std::io;
use std::net::SocketAddr;

use rumor_core::Unreachable;
use tokio::net::UdpSocket;

/// Asks the kernel to queue ICMP errors on `socket`. False where this is not supported
/// (the agent then detects failures by suspicion timeouts only).
pub(crate) fn enable(socket: &UdpSocket) -> bool {
    imp::enable(socket)
}

/// How much of the original datagram is kept: the core recognises a ping by its first
/// 32 bytes.
pub(crate) const QUOTED: usize = 64;

/// One queued error: the original destination, what the network said about it, and the
/// start of the original datagram (`quoted[..len]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueuedError {
    pub(crate) to: SocketAddr,
    pub(crate) kind: Unreachable,
    pub(crate) quoted: [u8; QUOTED],
    pub(crate) len: usize,
}

/// The next queued error, if any, without blocking. Errors that are not about
/// reachability are skipped; so is an error the queue cannot give (it is counted as none,
/// rather than retried for ever).
pub(crate) fn read(socket: &UdpSocket) -> Option<QueuedError> {
    imp::read(socket)
}

/// Whether `e`, returned by a receive, is an error the error queue also holds (and
/// [`read`] returns): the receive reports the latest one once, and it is no receive failure.
pub(crate) fn is_queued_error(e: &io::Error) -> bool {
    e.raw_os_error().and_then(kind).is_some()
}

/// The kind of an error queue entry with `errno`, if it tells of an unreachable
/// destination.
fn kind(errno: i32) -> Option<Unreachable> {
    match io::Error::from_raw_os_error(errno).kind() {
        // ICMP port unreachable (type 3 code 3), ICMPv6 port unreachable (1/4).
        io::ErrorKind::ConnectionRefused => Some(Unreachable::Port),
        // Host or network unreachable, also from the local neighbour resolution.
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Some(Unreachable::Host)
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io::{self, IoSliceMut};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };
    use tokio::net::UdpSocket;

    use super::{QUOTED, QueuedError};

    pub(super) fn enable(socket: &UdpSocket) -> bool {
        match socket.local_addr() {
            Ok(SocketAddr::V4(_)) => setsockopt(socket, sockopt::Ipv4RecvErr, &true).is_ok(),
            Ok(SocketAddr::V6(_)) => {
                // A dual-stack socket's IPv4 errors come through the IPv4 option.
                let v6 = setsockopt(socket, sockopt::Ipv6RecvErr, &true).is_ok();
                let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
                v6
            }
            Err(_) => false,
        }
    }

    pub(super) fn read(socket: &UdpSocket) -> Option<QueuedError> {
        // The original datagram comes back too: its first bytes are enough.
        let mut head = [0u8; QUOTED];
        let mut control = [0u8; 256];
        loop {
            let mut iov = [IoSliceMut::new(&mut head)];
            let msg = match recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EAGAIN) => return None,
                Err(e) => {
                    tracing::debug!(error = %io::Error::from(e), "reading the socket's error queue failed");
                    return None;
                }
            };
            let len = msg.bytes.min(QUOTED);
            let to = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                    })
            });
            let errno = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::Ipv4RecvErr(e, _)
                    | ControlMessageOwned::Ipv6RecvErr(e, _) => Some(e.ee_errno as i32),
                    _ => None,
                })
            });
            if let (Some(to), Some(kind)) = (to, errno.and_then(super::kind)) {
                return Some(QueuedError {
                    to,
                    kind,
                    quoted: head,
                    len,
                });
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use tokio::net::UdpSocket;

    use super::QueuedError;

    pub(super) fn enable(_: &UdpSocket) -> bool {
        false
    }

    pub(super) fn read(_: &UdpSocket) -> Option<QueuedError> {
        None
    }
}
