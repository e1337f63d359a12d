//! Pings from strangers: an address that pings this node by name but is no live member of
//! its table is a member whose announcement this node missed. The node pulls a known
//! member's table at once (rate-limited) rather than waiting up to 1.5 push-pull intervals.

use super::*;
use crate::wire::{SyncKind, decode};

/// A ping naming n1, as any member probing it sends it.
fn ping_to_n1() -> Vec<u8> {
    frame(
        Message::Ping {
            seq: 9,
            target: "n1",
            suspected: None,
        },
        &[],
    )
}

/// n1, running, with n2 as its only other member.
fn n1_knowing_n2() -> N {
    let mut a = node(1);
    a.handle_datagram(Instant::from_secs(1), addr(2), &alive("n2", 1, 2))
        .unwrap();
    a
}

/// The push-pull requests `a` sends now: (destination, names of the states carried).
fn requests(a: &mut N, now: Instant) -> Vec<(SocketAddr, Vec<std::string::String>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        let f = decode(&buf[..t.len], 0).unwrap();
        if let Message::Sync {
            kind: SyncKind::Request { .. },
            ..
        } = f.message
        {
            let names = f
                .updates()
                .filter_map(|u| match u {
                    Update::State { name, .. } => Some(name.into()),
                    _ => None,
                })
                .collect();
            out.push((t.to, names));
        }
    }
    out
}

#[test]
fn a_ping_from_a_stranger_starts_a_push_pull_with_a_member() {
    let mut a = n1_knowing_n2();
    let t = Instant::from_secs(2);
    let _ = requests(&mut a, t);
    a.handle_datagram(t, addr(5), &ping_to_n1()).unwrap();
    // The stranger gets only its ack: the table goes to a member.
    assert_eq!(
        requests(&mut a, t),
        [(addr(2), std::vec!["n1".into(), "n2".into()])]
    );
    assert_eq!(a.stats().strangers_pulled, 1);
}

#[test]
fn strangers_pull_at_most_once_a_quarter_push_pull_interval() {
    let mut a = n1_knowing_n2();
    let t = Instant::from_secs(2);
    let quiet = Config::lan().push_pull_interval.div(4);
    a.handle_datagram(t, addr(5), &ping_to_n1()).unwrap();
    let _ = requests(&mut a, t);
    // Another stranger, just before the quiet time ends, then just at its end.
    let before = Instant::from_millis((t + quiet).as_millis() - 1);
    a.handle_datagram(before, addr(6), &ping_to_n1()).unwrap();
    assert_eq!(requests(&mut a, before), []);
    a.handle_datagram(t + quiet, addr(6), &ping_to_n1())
        .unwrap();
    assert_eq!(requests(&mut a, t + quiet).len(), 1);
    assert_eq!(a.stats().strangers_pulled, 2);
}

#[test]
fn a_ping_from_a_member_while_joining_or_alone_pulls_nothing() {
    let mut a = n1_knowing_n2();
    let t = Instant::from_secs(2);
    let _ = requests(&mut a, t);
    a.handle_datagram(t, addr(2), &ping_to_n1()).unwrap();
    assert_eq!(requests(&mut a, t), []);
    // A joining node is pinged by its seeds' challenges: its join asks them already.
    let mut b = node(1);
    b.join(t, addr(2)).unwrap();
    let _ = requests(&mut b, t);
    b.handle_datagram(t, addr(2), &ping_to_n1()).unwrap();
    assert_eq!(requests(&mut b, t), []);
    // A node with no live member has nobody to ask.
    let mut c = node(1);
    c.handle_datagram(t, addr(5), &ping_to_n1()).unwrap();
    assert_eq!(requests(&mut c, t), []);
    let pulled = |n: &N| n.stats().strangers_pulled;
    assert_eq!(pulled(&a) + pulled(&b) + pulled(&c), 0);
}
