//! Well-formed plaintext datagrams crafted by hand, as a hostile peer on the network would
//! send them (cluster id 0, postcard encoding as `docs/PROTOCOL.md` describes).

use std::net::SocketAddrV4;

/// Largest incarnation or Lamport time the wire accepts (`rumor_core::MAX_COUNTER`).
pub const CAP: u32 = rumor_core::MAX_COUNTER;

/// Postcard's unsigned varint.
fn varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// A plaintext header and a `Gossip` message (variant 5): the updates follow.
fn gossip() -> Vec<u8> {
    vec![1, 0, 0, 0, 0, 0, 5]
}

/// A `Gossip` datagram carrying one `User` update (variant 4).
pub fn user_event(origin: &str, ltime: u32, name: &str, payload: &[u8]) -> Vec<u8> {
    let mut d = gossip();
    varint(&mut d, 4);
    bytes(&mut d, origin.as_bytes());
    varint(&mut d, ltime);
    bytes(&mut d, name.as_bytes());
    bytes(&mut d, payload);
    d
}

/// A `Gossip` datagram carrying one `Alive` update (variant 0) with no tags.
pub fn alive(name: &str, incarnation: u32, addr: SocketAddrV4) -> Vec<u8> {
    let mut d = gossip();
    varint(&mut d, 0);
    bytes(&mut d, name.as_bytes());
    varint(&mut d, incarnation);
    // WireAddr::V4: variant 0, four octets, the port.
    varint(&mut d, 0);
    d.extend_from_slice(&addr.ip().octets());
    varint(&mut d, u32::from(addr.port()));
    bytes(&mut d, &[]);
    d
}
