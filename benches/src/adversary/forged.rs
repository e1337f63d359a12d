//! The forged frames the adversary injects: any message and update, encoded through
//! `rumor_core::forge`, so every one is well-formed.

use super::*;

/// A forged message, owning its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgedMessage {
    /// See [`Message::Ping`].
    Ping {
        /// Sequence number.
        seq: u32,
        /// Target name.
        target: String,
        /// Suspected incarnation.
        suspected: Option<u32>,
    },
    /// See [`Message::Ack`].
    Ack {
        /// Sequence number.
        seq: u32,
    },
    /// See [`Message::Nack`].
    Nack {
        /// Sequence number.
        seq: u32,
    },
    /// See [`Message::PingReq`].
    PingReq {
        /// Sequence number.
        seq: u32,
        /// Target name.
        target: String,
        /// Target address.
        addr: SocketAddr,
    },
    /// See [`Message::SyncRequest`].
    SyncRequest {
        /// First chunk.
        first: bool,
        /// Joining.
        join: bool,
        /// Lamport clock.
        ltime: u32,
    },
    /// See [`Message::SyncResponse`].
    SyncResponse {
        /// Lamport clock.
        ltime: u32,
    },
    /// See [`Message::Gossip`].
    Gossip,
}

/// A forged update, owning its names and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgedUpdate {
    /// See [`Update::Alive`].
    Alive {
        /// Member.
        name: String,
        /// Incarnation.
        incarnation: u32,
        /// Address.
        addr: SocketAddr,
        /// Tags.
        tags: Tags,
    },
    /// See [`Update::Suspect`].
    Suspect {
        /// Member.
        name: String,
        /// Incarnation.
        incarnation: u32,
        /// Accuser.
        from: String,
    },
    /// See [`Update::Failed`].
    Failed {
        /// Member.
        name: String,
        /// Incarnation.
        incarnation: u32,
    },
    /// See [`Update::Left`].
    Left {
        /// Member.
        name: String,
        /// Incarnation.
        incarnation: u32,
    },
    /// See [`Update::User`].
    User {
        /// Origin.
        origin: String,
        /// Lamport time.
        ltime: u32,
        /// Event name.
        name: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// See [`Update::State`].
    State {
        /// Member.
        name: String,
        /// Incarnation.
        incarnation: u32,
        /// Address.
        addr: SocketAddr,
        /// Tags.
        tags: Tags,
        /// Status.
        status: Status,
    },
}

/// One forged frame: a message and its updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forged {
    /// The message.
    pub message: ForgedMessage,
    /// The updates, in order.
    pub updates: Vec<ForgedUpdate>,
}

impl Forged {
    /// The frame's bytes for cluster `cluster_id`.
    ///
    /// # Errors
    /// When a node would not accept the frame (see [`forge::encode`]).
    pub fn encode(&self, cluster_id: u32) -> Result<Vec<u8>, forge::ForgeError> {
        let message = match &self.message {
            ForgedMessage::Ping {
                seq,
                target,
                suspected,
            } => Message::Ping {
                seq: *seq,
                target,
                suspected: *suspected,
            },
            ForgedMessage::Ack { seq } => Message::Ack { seq: *seq },
            ForgedMessage::Nack { seq } => Message::Nack { seq: *seq },
            ForgedMessage::PingReq { seq, target, addr } => Message::PingReq {
                seq: *seq,
                target,
                addr: *addr,
            },
            ForgedMessage::SyncRequest { first, join, ltime } => Message::SyncRequest {
                first: *first,
                join: *join,
                ltime: *ltime,
            },
            ForgedMessage::SyncResponse { ltime } => Message::SyncResponse { ltime: *ltime },
            ForgedMessage::Gossip => Message::Gossip,
        };
        let updates: Vec<Update<'_>> = self.updates.iter().map(ForgedUpdate::borrow).collect();
        let mut buf = vec![0u8; rumor_core::MAX_DATAGRAM];
        let len = forge::encode(&mut buf, cluster_id, &message, &updates)?;
        buf.truncate(len);
        Ok(buf)
    }
}

impl ForgedUpdate {
    fn borrow(&self) -> Update<'_> {
        match self {
            ForgedUpdate::Alive {
                name,
                incarnation,
                addr,
                tags,
            } => Update::Alive {
                name,
                incarnation: *incarnation,
                addr: *addr,
                tags,
            },
            ForgedUpdate::Suspect {
                name,
                incarnation,
                from,
            } => Update::Suspect {
                name,
                incarnation: *incarnation,
                from,
            },
            ForgedUpdate::Failed { name, incarnation } => Update::Failed {
                name,
                incarnation: *incarnation,
            },
            ForgedUpdate::Left { name, incarnation } => Update::Left {
                name,
                incarnation: *incarnation,
            },
            ForgedUpdate::User {
                origin,
                ltime,
                name,
                payload,
            } => Update::User {
                origin,
                ltime: *ltime,
                name,
                payload,
            },
            ForgedUpdate::State {
                name,
                incarnation,
                addr,
                tags,
                status,
            } => Update::State {
                name,
                incarnation: *incarnation,
                addr: *addr,
                tags,
                status: *status,
            },
        }
    }
}
