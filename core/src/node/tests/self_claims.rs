//! A member that claims, itself, to be alive at an incarnation this node holds failed,
//! left or evicted is told so at once, and comes back by refuting: a forged `Left` or an
//! eviction cannot cut a live member off (issue 10).

use super::*;
use crate::wire::decode;

/// `name`'s own push-pull request from `addr(i)`.
fn own_sync_request(name: &str, incarnation: u32, i: u8) -> Vec<u8> {
    super::own_sync_request(name, incarnation, addr(i), false)
}

/// A `Left` about `name`, as gossip.
fn left(name: &str, incarnation: u32) -> Vec<u8> {
    frame(Message::Gossip, &[Update::Left { name, incarnation }])
}

/// Every gossip datagram `a` sends now: (destination, length, its updates' debug form).
fn gossip_sent<const M: usize, const U: usize>(
    a: &mut Node<M, U>,
    now: Instant,
) -> Vec<(SocketAddr, usize, Vec<std::string::String>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        let f = decode(&buf[..t.len], 0).unwrap();
        if f.message == Message::Gossip {
            let updates = f.updates().map(|u| std::format!("{u:?}")).collect();
            out.push((t.to, t.len, updates));
        }
    }
    out
}

/// n1, knowing n2 alive at incarnation 1, then told by a third address that n2 left.
fn n1_holding_n2_left() -> N {
    let mut a = node(1);
    let t = Instant::from_secs(1);
    a.handle_datagram(t, addr(2), &alive("n2", 1, 2)).unwrap();
    a.handle_datagram(t, addr(3), &left("n2", 1)).unwrap();
    assert_eq!(a.member("n2").unwrap().status(), Status::Left);
    let _ = gossip_sent(&mut a, t);
    a
}

#[test]
fn a_member_held_left_is_told_when_it_claims_to_be_alive() {
    let mut a = n1_holding_n2_left();
    let t = Instant::from_secs(2);
    let request = own_sync_request("n2", 1, 2);
    a.handle_datagram(t, addr(2), &request).unwrap();
    let told = gossip_sent(&mut a, t);
    let expected = std::format!(
        "{:?}",
        Update::Left {
            name: "n2",
            incarnation: 1
        }
    );
    assert_eq!(told.len(), 1, "{told:?}");
    let (to, len, updates) = &told[0];
    assert_eq!((*to, updates.as_slice()), (addr(2), &[expected][..]));
    // Smaller than the claim that prompted it: no amplification to a forged source.
    assert!(*len < request.len(), "{len} >= {}", request.len());
    assert_eq!(a.stats().stale_self_claims_answered, 1);
}

#[test]
fn the_told_member_refutes_and_is_alive_again() {
    let mut a = n1_holding_n2_left();
    let mut b = node(2);
    let t = Instant::from_secs(2);
    b.handle_datagram(t, addr(1), &alive("n1", 0, 1)).unwrap();
    let mut buf = [0u8; 1500];
    while b.poll_transmit(t, &mut buf).is_some() {}
    a.handle_datagram(t, addr(2), &own_sync_request("n2", 0, 2))
        .unwrap();
    // Stale by incarnation (0 < 1) but still n2's own word: answered.
    let mut told = Vec::new();
    while let Some(x) = a.poll_transmit(t, &mut buf) {
        if x.to == addr(2) {
            told.push(buf[..x.len].to_vec());
        }
    }
    for d in &told {
        let _ = b.handle_datagram(t, addr(1), d);
    }
    assert!(
        b.local().incarnation() > 1,
        "n2 refuted: {}",
        b.local().incarnation()
    );
    // n2's refutation reaches n1 as gossip piggybacked on whatever n2 sends it.
    let mut refutation = Vec::new();
    b.handle_timeout(t + Duration::from_secs(1));
    while let Some(x) = b.poll_transmit(t + Duration::from_secs(1), &mut buf) {
        if x.to == addr(1) {
            refutation.push(buf[..x.len].to_vec());
        }
    }
    for d in &refutation {
        let _ = a.handle_datagram(t + Duration::from_secs(1), addr(2), d);
    }
    let n2 = a.member("n2").unwrap();
    assert_eq!(n2.status(), Status::Alive);
    assert!(n2.incarnation() > 1);
}

#[test]
fn claims_relayed_by_others_or_newer_than_the_record_are_not_answered() {
    let mut a = n1_holding_n2_left();
    let t = Instant::from_secs(2);
    // Relayed: another member's push-pull carrying n2's old state.
    a.handle_datagram(t, addr(3), &alive("n2", 1, 2)).unwrap();
    assert!(gossip_sent(&mut a, t).iter().all(|(to, ..)| *to != addr(2)));
    assert_eq!(a.stats().stale_self_claims_answered, 0);
    // Newer than the record: n2 came back; it is taken, nothing to tell.
    a.handle_datagram(t, addr(2), &alive("n2", 2, 2)).unwrap();
    assert_eq!(a.member("n2").unwrap().status(), Status::Alive);
    let told = gossip_sent(&mut a, t);
    assert!(
        told.iter().all(|(to, ..)| *to != addr(2))
            || told.iter().all(|(.., u)| !u[0].contains("Left")),
        "{told:?}"
    );
    assert_eq!(a.stats().stale_self_claims_answered, 0);
    // A live member's own claims are never answered.
    a.handle_datagram(t, addr(2), &alive("n2", 2, 2)).unwrap();
    assert_eq!(a.stats().stale_self_claims_answered, 0);
}

#[test]
fn a_member_evicted_to_make_room_is_told_and_comes_back_by_refuting() {
    let (mut a, later) = crate::node::tests_events::b_evicted_and_c_failed();
    let _ = gossip_sent(&mut a, later);
    // b, alive after all, claims so itself at the incarnation it was evicted at.
    a.handle_datagram(later, addr(2), &own_sync_request("b", 0, 2))
        .unwrap();
    let told = gossip_sent(&mut a, later);
    let expected = std::format!(
        "{:?}",
        Update::Failed {
            name: "b",
            incarnation: 0
        }
    );
    assert!(
        told.iter()
            .any(|(to, _, u)| *to == addr(2) && u.as_slice() == [expected.clone()]),
        "{told:?}"
    );
    assert_eq!(a.stats().evicted_claims_stale, 1);
    // Its refutation is a comeback above the tombstone: it takes c's slot.
    a.handle_datagram(later, addr(2), &alive("b", 1, 2))
        .unwrap();
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    assert!(a.member("c").is_none());
    // Once the tombstone has served, a stale claim is news of nobody: not answered.
    assert_eq!(a.stats().stale_self_claims_answered, 1);
}

#[test]
fn a_datagram_repeating_a_claim_gets_one_answer() {
    let mut a = n1_holding_n2_left();
    let t = Instant::from_secs(2);
    let claim = Update::Alive {
        name: "n2",
        incarnation: 1,
        addr: WireAddr::from(addr(2)),
        tags: &[],
    };
    let repeated = frame(Message::Gossip, &[claim; 16]);
    a.handle_datagram(t, addr(2), &repeated).unwrap();
    let told = gossip_sent(&mut a, t);
    assert_eq!(
        told.iter().filter(|(to, ..)| *to == addr(2)).count(),
        1,
        "{told:?}"
    );
    assert_eq!(a.stats().stale_self_claims_answered, 1);
}

#[test]
fn a_record_at_the_incarnation_cap_is_not_answered() {
    // The member could not refute it: answering would only feed a futile loop.
    let mut a = node(1);
    let t = Instant::from_secs(1);
    let cap = crate::wire::MAX_COUNTER;
    a.handle_datagram(t, addr(2), &alive("n2", cap, 2)).unwrap();
    a.handle_datagram(t, addr(3), &left("n2", cap)).unwrap();
    assert_eq!(a.member("n2").unwrap().status(), Status::Left);
    let _ = gossip_sent(&mut a, t);
    a.handle_datagram(t, addr(2), &own_sync_request("n2", 5, 2))
        .unwrap();
    assert!(gossip_sent(&mut a, t).iter().all(|(to, ..)| *to != addr(2)));
    assert_eq!(a.stats().stale_self_claims_answered, 0);
}
