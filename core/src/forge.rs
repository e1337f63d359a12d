//! Well-formed frames of every kind, encoded by the node's own encoder: for adversarial
//! tests and fuzzers (the `forge` feature), never needed by an application.
//!
//! An attacker who can send plaintext datagrams can send any frame the decoder accepts:
//! any message, any update, any counter up to [`MAX_COUNTER`](crate::MAX_COUNTER), any
//! name. [`encode`] writes exactly such frames, and only such frames: it runs the node's
//! decoder over what it wrote and refuses anything the decoder would drop, so a test built
//! on it exercises the protocol logic, not the parser.
//!
//! ```
//! use rumor_core::forge::{self, Message, Update};
//!
//! let mut buf = [0u8; 1500];
//! let len = forge::encode(
//!     &mut buf,
//!     0,
//!     &Message::Gossip,
//!     &[Update::Left { name: "node-1", incarnation: 7 }],
//! )
//! .unwrap();
//! assert!(len > rumor_core::HEADER_LEN);
//! ```

use core::net::SocketAddr;

use crate::member::Status;
use crate::tags::Tags;
use crate::wire::{self, Encoder, SyncKind, WireStatus};

/// The primary message of a forged frame (one per datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A probe of `target` (only the node of that name answers), optionally telling it
    /// that the sender suspects it at incarnation `suspected`.
    Ping {
        /// Sequence number the ack must echo.
        seq: u32,
        /// The name of the node probed.
        target: &'a str,
        /// The incarnation at which the sender suspects the target.
        suspected: Option<u32>,
    },
    /// An answer to the ping numbered `seq`.
    Ack {
        /// The ping's sequence number.
        seq: u32,
    },
    /// A helper's word that the target of indirect probe `seq` did not answer.
    Nack {
        /// The indirect probe's sequence number.
        seq: u32,
    },
    /// A request to probe `target` at `addr` on the sender's behalf.
    PingReq {
        /// Sequence number the forwarded ack (or nack) carries.
        seq: u32,
        /// The name of the node to probe.
        target: &'a str,
        /// Where to probe it.
        addr: SocketAddr,
    },
    /// A push-pull request chunk (updates must be [`Update::State`] or [`Update::User`]).
    SyncRequest {
        /// Whether this is the first chunk (which asks for the peer's table back).
        first: bool,
        /// Whether the sender is joining.
        join: bool,
        /// The sender's Lamport clock.
        ltime: u32,
    },
    /// A push-pull response chunk (updates must be [`Update::State`] or [`Update::User`]).
    SyncResponse {
        /// The sender's Lamport clock.
        ltime: u32,
    },
    /// Nothing but piggybacked updates.
    Gossip,
}

/// An update carried after the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update<'a> {
    /// `name` is alive at `addr` with `tags`, at `incarnation`.
    Alive {
        /// The member.
        name: &'a str,
        /// Its incarnation.
        incarnation: u32,
        /// Its address.
        addr: SocketAddr,
        /// Its tags.
        tags: &'a Tags,
    },
    /// `from` suspects `name` at `incarnation`.
    Suspect {
        /// The member suspected.
        name: &'a str,
        /// The incarnation suspected.
        incarnation: u32,
        /// The accuser.
        from: &'a str,
    },
    /// `name` failed at `incarnation`.
    Failed {
        /// The member.
        name: &'a str,
        /// Its incarnation.
        incarnation: u32,
    },
    /// `name` left at `incarnation`.
    Left {
        /// The member.
        name: &'a str,
        /// Its incarnation.
        incarnation: u32,
    },
    /// A user event from `origin` at Lamport time `ltime`.
    User {
        /// The member that sent it.
        origin: &'a str,
        /// Its Lamport time.
        ltime: u32,
        /// Its name (1 to [`USER_EVENT_NAME_MAX`](crate::USER_EVENT_NAME_MAX) bytes).
        name: &'a str,
        /// Its payload (at most [`USER_PAYLOAD_MAX`](crate::USER_PAYLOAD_MAX) bytes).
        payload: &'a [u8],
    },
    /// A full member state, as push-pull sends it (only in sync messages).
    State {
        /// The member.
        name: &'a str,
        /// Its incarnation.
        incarnation: u32,
        /// Its address.
        addr: SocketAddr,
        /// Its tags.
        tags: &'a Tags,
        /// Its status.
        status: Status,
    },
}

impl<'a> Message<'a> {
    fn to_wire(self) -> wire::Message<'a> {
        match self {
            Message::Ping {
                seq,
                target,
                suspected,
            } => wire::Message::Ping {
                seq,
                target,
                suspected,
            },
            Message::Ack { seq } => wire::Message::Ack { seq },
            Message::Nack { seq } => wire::Message::Nack { seq },
            Message::PingReq { seq, target, addr } => wire::Message::PingReq {
                seq,
                target,
                addr: addr.into(),
            },
            Message::SyncRequest { first, join, ltime } => wire::Message::Sync {
                kind: SyncKind::Request { first, join },
                ltime,
            },
            Message::SyncResponse { ltime } => wire::Message::Sync {
                kind: SyncKind::Response,
                ltime,
            },
            Message::Gossip => wire::Message::Gossip,
        }
    }
}

impl<'a> Update<'a> {
    fn to_wire(self) -> wire::Update<'a> {
        match self {
            Update::Alive {
                name,
                incarnation,
                addr,
                tags,
            } => wire::Update::Alive {
                name,
                incarnation,
                addr: addr.into(),
                tags: tags.encoded(),
            },
            Update::Suspect {
                name,
                incarnation,
                from,
            } => wire::Update::Suspect {
                name,
                incarnation,
                from,
            },
            Update::Failed { name, incarnation } => wire::Update::Failed { name, incarnation },
            Update::Left { name, incarnation } => wire::Update::Left { name, incarnation },
            Update::User {
                origin,
                ltime,
                name,
                payload,
            } => wire::Update::User {
                origin,
                ltime,
                name,
                payload,
            },
            Update::State {
                name,
                incarnation,
                addr,
                tags,
                status,
            } => wire::Update::State {
                name,
                incarnation,
                addr: addr.into(),
                tags: tags.encoded(),
                status: match status {
                    Status::Alive => WireStatus::Alive,
                    Status::Suspect => WireStatus::Suspect,
                    Status::Failed => WireStatus::Failed,
                    Status::Left => WireStatus::Left,
                },
            },
        }
    }
}

/// Why [`encode`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgeError {
    /// The frame does not fit in `buf` (or in [`MAX_DATAGRAM`](crate::MAX_DATAGRAM)).
    TooLarge,
    /// A node would drop the frame as malformed: a name, counter, event or tag field out
    /// of range, or an update a message of this kind cannot carry.
    Malformed,
}

/// Writes a plaintext frame of cluster `cluster_id` carrying `message` then `updates` into
/// `buf`; returns its length. The frame is exactly what a node's decoder accepts: anything
/// it would drop is refused with [`ForgeError::Malformed`].
pub fn encode(
    buf: &mut [u8],
    cluster_id: u32,
    message: &Message<'_>,
    updates: &[Update<'_>],
) -> Result<usize, ForgeError> {
    let cap = buf.len().min(wire::MAX_DATAGRAM);
    let buf = buf.get_mut(..cap).ok_or(ForgeError::TooLarge)?;
    let mut encoder =
        Encoder::with_gap(buf, cluster_id, 0, &message.to_wire()).ok_or(ForgeError::TooLarge)?;
    for update in updates {
        if !encoder.push(&update.to_wire()) {
            return Err(ForgeError::TooLarge);
        }
    }
    let len = encoder.len();
    let body = buf.get(wire::HEADER_LEN..len).ok_or(ForgeError::TooLarge)?;
    wire::decode_body(body).map_err(|_| ForgeError::Malformed)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_COUNTER;

    fn addr() -> SocketAddr {
        "198.18.0.9:7946".parse().unwrap()
    }

    #[test]
    fn forged_frames_decode_to_what_was_forged() {
        let tags = Tags::new().with("role", "web").unwrap();
        let mut buf = [0u8; 1500];
        let updates = [
            Update::Alive {
                name: "a",
                incarnation: MAX_COUNTER,
                addr: addr(),
                tags: &tags,
            },
            Update::User {
                origin: "b",
                ltime: 0,
                name: "deploy",
                payload: b"v2",
            },
        ];
        let len = encode(&mut buf, 9, &Message::Ack { seq: 3 }, &updates).unwrap();
        let frame = wire::decode(&buf[..len], 9).unwrap();
        assert_eq!(frame.message, wire::Message::Ack { seq: 3 });
        let got: std::vec::Vec<_> = frame.updates().collect();
        assert_eq!(got, [updates[0].to_wire(), updates[1].to_wire()]);
    }

    #[test]
    fn frames_a_node_would_drop_are_refused() {
        let mut buf = [0u8; 1500];
        let over = Update::Left {
            name: "a",
            incarnation: MAX_COUNTER + 1,
        };
        assert_eq!(
            encode(&mut buf, 0, &Message::Gossip, &[over]),
            Err(ForgeError::Malformed)
        );
        let state_in_gossip = Update::State {
            name: "a",
            incarnation: 0,
            addr: addr(),
            tags: &Tags::new(),
            status: Status::Alive,
        };
        assert_eq!(
            encode(&mut buf, 0, &Message::Gossip, &[state_in_gossip]),
            Err(ForgeError::Malformed)
        );
        let sync = Message::SyncResponse { ltime: 0 };
        assert!(encode(&mut buf, 0, &sync, &[state_in_gossip]).is_ok());
        assert_eq!(
            encode(&mut buf[..8], 0, &Message::Gossip, &[over]),
            Err(ForgeError::TooLarge)
        );
    }
}
