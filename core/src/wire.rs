//! The wire format: a fixed frame header, then postcard-encoded messages.
//!
//! ```text
//! +---------+----------+----------------+-----------------------------------------+
//! | version | envelope | cluster id     | body                                    |
//! | 1 byte  | 1 byte   | 4 bytes, BE    | Message, then zero or more Update, each |
//! |  = 1    |  0=plain |                | postcard-encoded, back to back          |
//! |         |  1=XCP   |                |                                         |
//! +---------+----------+----------------+-----------------------------------------+
//! ```
//! Envelope 1 is an XChaCha20-Poly1305 frame, whose body is sealed (see `crypto.rs`);
//! other envelope values are dropped. Decoding is zero-copy (names and payloads borrow from
//! the datagram) and never panics. See `docs/PROTOCOL.md` for every field and limit.
//!
//! **The serde types below are the wire format.** postcard encodes an enum variant as its
//! index and a struct's fields in declaration order, so reordering, inserting or removing a
//! variant of [`Message`], [`Update`], [`SyncKind`], [`WireStatus`] or [`WireAddr`], or a
//! field of one, changes the bytes on the wire. New variants go at the end, and only with a
//! new [`VERSION`]. The golden frames in `wire/golden.rs` fail on any such change.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::name::validate_name;
use crate::tags::Tags;
use crate::user_event::{USER_EVENT_NAME_MAX, USER_PAYLOAD_MAX};

/// Protocol version carried in byte 0 of every datagram.
pub const VERSION: u8 = 1;
/// Envelope byte of an unencrypted frame.
pub const ENVELOPE_PLAIN: u8 = 0;
/// Bytes before the body.
pub const HEADER_LEN: usize = 6;
/// Largest datagram accepted or sent (an Ethernet MTU; `Config::max_datagram` is at most this).
pub const MAX_DATAGRAM: usize = 1500;
/// Smallest allowed `Config::max_datagram`: room for the largest single message.
pub const MIN_DATAGRAM: usize = 256;
/// Largest incarnation or Lamport time accepted from the wire. Honest nodes count up from
/// zero one step at a time and never get near it; a bigger value is absurd and dropped, so a
/// node can always refute with a higher one.
pub const MAX_COUNTER: u32 = (1 << 31) - 1;
/// How far ahead of the local Lamport clock a user event or push-pull clock may be and still
/// be taken in by a running node; further ahead it is ignored (`Stats::ltimes_too_far`).
pub const LTIME_WINDOW: u32 = 1 << 16;
/// How far above the incarnation a node knows for a member a claim about that member may
/// be and still be applied; further above it is ignored (`Stats::incarnations_too_far`).
pub const INCARNATION_WINDOW: u32 = 1 << 16;

/// Why a datagram was dropped. Each reason has its own counter in [`Stats`](crate::Stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than the frame header.
    Truncated,
    /// Longer than [`MAX_DATAGRAM`].
    Oversized,
    /// Unknown protocol version.
    Version,
    /// Envelope this node cannot open (e.g. encrypted while it has no key).
    Envelope,
    /// Cluster id of another cluster.
    Cluster,
    /// The body does not decode, or a field is out of range (bad name, tags, counter,
    /// payload size, trailing bytes).
    Malformed,
    /// A well-formed message this node must ignore: addressed to another name, from the
    /// node itself, or arriving after it left.
    Ignored,
    /// Failed authentication with every installed key.
    Unauthenticated,
    /// Plaintext, while this node has a keyring and refuses plaintext
    /// ([`Plaintext::Refuse`](crate::Plaintext::Refuse)).
    Plaintext,
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DropReason::Truncated => "datagram shorter than a header",
            DropReason::Oversized => return write!(f, "datagram longer than {MAX_DATAGRAM} bytes"),
            DropReason::Version => "unknown protocol version",
            DropReason::Envelope => "envelope this node cannot open",
            DropReason::Cluster => "another cluster's id",
            DropReason::Malformed => "malformed body or field out of range",
            DropReason::Ignored => "not for this node",
            DropReason::Unauthenticated => "failed authentication",
            DropReason::Plaintext => "plaintext while encryption is required",
        })
    }
}

impl core::error::Error for DropReason {}

/// A socket address as sent on the wire (postcard has no native form for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireAddr {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
}

impl From<SocketAddr> for WireAddr {
    fn from(a: SocketAddr) -> Self {
        match a.ip() {
            IpAddr::V4(ip) => WireAddr::V4(ip.octets(), a.port()),
            IpAddr::V6(ip) => WireAddr::V6(ip.octets(), a.port()),
        }
    }
}

impl WireAddr {
    /// The address and port as bytes (IPv4 or IPv6 octets, then the port, big-endian).
    pub(crate) fn bytes(&self) -> heapless::Vec<u8, 18> {
        let (ip, port): (&[u8], u16) = match self {
            WireAddr::V4(ip, port) => (ip, *port),
            WireAddr::V6(ip, port) => (ip, *port),
        };
        let mut v = heapless::Vec::new();
        let _ = v.extend_from_slice(ip);
        let _ = v.extend_from_slice(&port.to_be_bytes());
        v
    }
}

impl From<WireAddr> for SocketAddr {
    fn from(a: WireAddr) -> Self {
        match a {
            WireAddr::V4(ip, port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
            WireAddr::V6(ip, port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
        }
    }
}

/// Which half of a push-pull exchange a `Sync` datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SyncKind {
    /// The initiator's table; the first chunk asks for the peer's table in return.
    Request { first: bool, join: bool },
    /// The answer to a request.
    Response,
}

/// The primary message of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Message<'a> {
    /// Are you alive? `target` must be the receiver's name. `suspected` carries the
    /// incarnation at which the sender suspects the target (Lifeguard's buddy system).
    Ping {
        seq: u32,
        target: &'a str,
        suspected: Option<u32>,
    },
    /// Answer to a ping with the same `seq`.
    Ack { seq: u32 },
    /// From a helper of an indirect probe: the target did not answer in time.
    Nack { seq: u32 },
    /// Please ping `target` at `addr` and forward its ack (or a nack) to me under `seq`.
    PingReq {
        seq: u32,
        target: &'a str,
        addr: WireAddr,
    },
    /// A chunk of push-pull anti-entropy: the updates that follow are `State` entries.
    Sync { kind: SyncKind, ltime: u32 },
    /// Nothing but piggybacked updates.
    Gossip,
}

/// Member status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireStatus {
    Alive,
    Suspect,
    Failed,
    Left,
}

/// A piggybacked update, or a full member state inside a `Sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Update<'a> {
    Alive {
        name: &'a str,
        incarnation: u32,
        addr: WireAddr,
        tags: &'a [u8],
    },
    Suspect {
        name: &'a str,
        incarnation: u32,
        from: &'a str,
    },
    Failed {
        name: &'a str,
        incarnation: u32,
    },
    Left {
        name: &'a str,
        incarnation: u32,
    },
    User {
        origin: &'a str,
        ltime: u32,
        name: &'a str,
        payload: &'a [u8],
    },
    State {
        name: &'a str,
        incarnation: u32,
        addr: WireAddr,
        tags: &'a [u8],
        status: WireStatus,
    },
}

fn counter_ok(c: u32) -> bool {
    c <= MAX_COUNTER
}

fn name_ok(n: &str) -> bool {
    validate_name(n).is_ok()
}

impl Message<'_> {
    fn is_valid(&self) -> bool {
        match *self {
            Message::Ping {
                target, suspected, ..
            } => name_ok(target) && suspected.is_none_or(counter_ok),
            Message::PingReq { target, .. } => name_ok(target),
            Message::Sync { ltime, .. } => counter_ok(ltime),
            Message::Ack { .. } | Message::Nack { .. } | Message::Gossip => true,
        }
    }
}

impl Update<'_> {
    fn is_valid(&self) -> bool {
        match *self {
            Update::Alive {
                name,
                incarnation,
                tags,
                ..
            }
            | Update::State {
                name,
                incarnation,
                tags,
                ..
            } => name_ok(name) && counter_ok(incarnation) && Tags::from_encoded(tags).is_ok(),
            Update::Suspect {
                name,
                incarnation,
                from,
            } => name_ok(name) && name_ok(from) && counter_ok(incarnation),
            Update::Failed { name, incarnation } | Update::Left { name, incarnation } => {
                name_ok(name) && counter_ok(incarnation)
            }
            Update::User {
                origin,
                ltime,
                name,
                payload,
            } => {
                name_ok(origin)
                    && counter_ok(ltime)
                    && !name.is_empty()
                    && name.len() <= USER_EVENT_NAME_MAX
                    && payload.len() <= USER_PAYLOAD_MAX
            }
        }
    }
}

/// How many [`Update`] kinds this version knows: discriminants `0..KNOWN_UPDATE_KINDS`.
/// A newer version encodes any further kind as its discriminant, a varint length and that
/// many bytes, so that this version can skip it (see `docs/PROTOCOL.md`).
pub(crate) const KNOWN_UPDATE_KINDS: u32 = 6;

/// A LEB128 varint of at most 32 bits (postcard's encoding of `u32` and of enum
/// discriminants), and the bytes after it.
fn take_varint(data: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, &b) in data.iter().enumerate().take(5) {
        let bits = u32::from(b & 0x7f);
        if i == 4 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, data.get(i + 1..)?));
        }
    }
    None
}

/// The next update of `data`, or `None` for a kind this version does not know (skipped
/// whole), and the bytes after it.
fn take_update(data: &[u8]) -> Result<(Option<Update<'_>>, &[u8]), DropReason> {
    let (kind, rest) = take_varint(data).ok_or(DropReason::Malformed)?;
    if kind < KNOWN_UPDATE_KINDS {
        let (u, rest) =
            postcard::take_from_bytes::<Update<'_>>(data).map_err(|_| DropReason::Malformed)?;
        return Ok((Some(u), rest));
    }
    let (len, rest) = take_varint(rest).ok_or(DropReason::Malformed)?;
    let rest = usize::try_from(len)
        .ok()
        .and_then(|len| rest.get(len..))
        .ok_or(DropReason::Malformed)?;
    Ok((None, rest))
}

/// A decoded, fully validated datagram: its message, and its updates to iterate again.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) message: Message<'a>,
    updates: &'a [u8],
    /// Updates of kinds this version does not know, skipped.
    pub(crate) unknown: u16,
}

impl<'a> Frame<'a> {
    /// The piggybacked updates (already validated by [`decode`]).
    pub(crate) fn updates(&self) -> Updates<'a> {
        Updates { rest: self.updates }
    }
}

/// Iterator over the updates of a validated frame.
#[derive(Debug)]
pub(crate) struct Updates<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Updates<'a> {
    type Item = Update<'a>;
    fn next(&mut self) -> Option<Update<'a>> {
        while !self.rest.is_empty() {
            match take_update(self.rest) {
                Ok((u, rest)) => {
                    self.rest = rest;
                    if u.is_some() {
                        return u;
                    }
                }
                Err(_) => self.rest = &[],
            }
        }
        None
    }
}

/// Checks size, version and cluster id; returns the envelope byte.
pub(crate) fn check_header(data: &[u8], cluster_id: u32) -> Result<u8, DropReason> {
    if data.len() > MAX_DATAGRAM {
        return Err(DropReason::Oversized);
    }
    if data.len() < HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    if data[0] != VERSION {
        return Err(DropReason::Version);
    }
    let cluster = u32::from_be_bytes([data[2], data[3], data[4], data[5]]);
    if cluster != cluster_id {
        return Err(DropReason::Cluster);
    }
    Ok(data[1])
}

/// Decodes a whole plaintext datagram (header included).
#[cfg(test)]
pub(crate) fn decode(data: &[u8], cluster_id: u32) -> Result<Frame<'_>, DropReason> {
    if check_header(data, cluster_id)? != ENVELOPE_PLAIN {
        return Err(DropReason::Envelope);
    }
    decode_body(&data[HEADER_LEN..])
}

/// Checks every message and update of a body; only a body that is valid from its first
/// byte to its last comes back.
pub(crate) fn decode_body(body: &[u8]) -> Result<Frame<'_>, DropReason> {
    let (message, updates) =
        postcard::take_from_bytes::<Message<'_>>(body).map_err(|_| DropReason::Malformed)?;
    if !message.is_valid() {
        return Err(DropReason::Malformed);
    }
    let mut rest = updates;
    let mut unknown: u16 = 0;
    while !rest.is_empty() {
        let (u, r) = take_update(rest)?;
        rest = r;
        let Some(u) = u else {
            unknown = unknown.saturating_add(1);
            continue;
        };
        if !u.is_valid() {
            return Err(DropReason::Malformed);
        }
        let in_sync = matches!(message, Message::Sync { .. });
        let allowed = match u {
            // Full states only in Sync chunks, which carry nothing else but user events.
            Update::State { .. } => in_sync,
            Update::User { .. } => true,
            _ => !in_sync,
        };
        if !allowed {
            return Err(DropReason::Malformed);
        }
    }
    Ok(Frame {
        message,
        updates,
        unknown,
    })
}

/// Writes frames into a caller buffer: header and message first, then as many updates as fit.
#[derive(Debug)]
pub(crate) struct Encoder<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Encoder<'b> {
    /// Starts a plaintext frame with `message`; `None` when `buf` cannot hold even that.
    #[cfg(test)]
    pub(crate) fn new(buf: &'b mut [u8], cluster_id: u32, message: &Message<'_>) -> Option<Self> {
        Self::with_gap(buf, cluster_id, 0, message)
    }

    /// Starts a frame whose body begins `gap` bytes after the header (room for a nonce).
    pub(crate) fn with_gap(
        buf: &'b mut [u8],
        cluster_id: u32,
        gap: usize,
        message: &Message<'_>,
    ) -> Option<Self> {
        if buf.len() < HEADER_LEN + gap {
            return None;
        }
        buf[0] = VERSION;
        buf[1] = ENVELOPE_PLAIN;
        buf[2..HEADER_LEN].copy_from_slice(&cluster_id.to_be_bytes());
        let mut e = Encoder {
            buf,
            len: HEADER_LEN + gap,
        };
        e.push_value(message).then_some(e)
    }

    fn push_value<T: Serialize>(&mut self, value: &T) -> bool {
        match postcard::to_slice(value, &mut self.buf[self.len..]) {
            Ok(used) => {
                self.len += used.len();
                true
            }
            Err(_) => false,
        }
    }

    /// Appends `update` if it fits; false (and nothing written) otherwise.
    pub(crate) fn push(&mut self, update: &Update<'_>) -> bool {
        self.push_value(update)
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;
