//! Counter boundaries (incarnations, Lamport times at 0, cap − 1, cap, cap + 1 and far
//! ahead), name conflicts, anonymous suspicions and the node's own updates in a full queue.

use std::vec::Vec;

use super::tests::{
    N, Net, Peer, addr, alive, assert_n3_alive_at_its_new_address, frame, node,
    restart_n3_at_a_new_address,
};
use super::*;
use crate::wire::{
    DropReason, INCARNATION_WINDOW, LTIME_WINDOW, Message, SyncKind, Update, WireAddr, WireStatus,
};

const CAP: u32 = MAX_COUNTER;

/// Every datagram the node has to send now, as `(to, bytes)`.
fn sent<const M: usize, const U: usize>(
    n: &mut Node<M, U>,
    now: Instant,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit(now, &mut buf) {
        out.push((t.to, buf[..t.len].to_vec()));
    }
    out
}

fn user_event(ltime: u32) -> Vec<u8> {
    frame(
        Message::Gossip,
        &[Update::User {
            origin: "b",
            ltime,
            name: "deploy",
            payload: b"v1",
        }],
    )
}

/// A join request from `b` at `addr(2)`, as a newcomer sends it.
fn join_request(ltime: u32) -> Vec<u8> {
    frame(
        Message::Sync {
            kind: SyncKind::Request {
                first: true,
                join: true,
            },
            ltime,
        },
        &[Update::State {
            name: "b",
            incarnation: 0,
            addr: WireAddr::from(addr(2)),
            tags: &[],
            status: WireStatus::Alive,
        }],
    )
}

/// Every frame the node sends decodes (a receiver would not drop it as malformed), and a
/// Sync comes: if the requester's address is not verified yet, the node first challenges it
/// with a ping, which the requester acks.
fn assert_syncs_decode(n: &mut N, now: Instant) {
    for _ in 0..2 {
        let out = sent(n, now);
        let mut challenge = None;
        let mut syncs = 0;
        for (to, d) in &out {
            let f = crate::wire::decode(d, 0);
            assert!(f.is_ok(), "a frame a receiver rejects: {f:?}");
            match f.map(|f| f.message) {
                Ok(Message::Sync { .. }) => syncs += 1,
                Ok(Message::Ping { seq, .. }) => challenge = Some((*to, seq)),
                _ => {}
            }
        }
        if syncs > 0 {
            return;
        }
        let (from, seq) = challenge.unwrap_or_else(|| panic!("no Sync and no challenge: {out:?}"));
        n.handle_datagram(now, from, &frame(Message::Ack { seq }, &[]))
            .unwrap();
    }
    panic!("the node answered no Sync");
}

fn user_events(n: &mut N) -> usize {
    core::iter::from_fn(|| n.poll_event())
        .filter(|e| matches!(e, Event::User(_)))
        .count()
}

#[test]
fn the_decoder_takes_the_cap_and_refuses_one_more() {
    for (value, ok) in [
        (CAP - 1, true),
        (CAP, true),
        (CAP + 1, false),
        (u32::MAX, false),
    ] {
        let datagrams = [
            user_event(value),
            alive("b", value, 2),
            join_request(value),
            frame(
                Message::Ping {
                    seq: 1,
                    target: "n1",
                    suspected: Some(value),
                },
                &[],
            ),
        ];
        for d in datagrams {
            let r = crate::wire::decode(&d, 0).map(|_| ());
            assert_eq!(r.is_ok(), ok, "{value}: {r:?}");
            if !ok {
                assert_eq!(r, Err(DropReason::Malformed));
            }
        }
    }
}

#[test]
fn a_user_event_far_ahead_of_the_clock_is_dropped_and_moves_nothing() {
    for ltime in [LTIME_WINDOW + 1, CAP - 1, CAP] {
        let mut a = node(1);
        let now = Instant::from_secs(1);
        a.handle_datagram(now, addr(2), &user_event(ltime)).unwrap();
        assert_eq!(a.user.clock, 0, "ltime {ltime}");
        assert_eq!(a.stats().ltimes_too_far, 1, "ltime {ltime}");
        assert_eq!(user_events(&mut a), 0, "ltime {ltime}");
        // Joins through this node still work: its Sync carries a valid clock.
        a.handle_datagram(now, addr(2), &join_request(0)).unwrap();
        assert_syncs_decode(&mut a, now);
    }
}

#[test]
fn a_user_event_at_the_edge_of_the_window_is_delivered() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &user_event(LTIME_WINDOW))
        .unwrap();
    assert_eq!(a.user.clock, LTIME_WINDOW + 1);
    assert_eq!(a.stats().ltimes_too_far, 0);
    assert_eq!(user_events(&mut a), 1);
}

#[test]
fn a_sync_far_ahead_does_not_move_a_running_nodes_clock() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &join_request(CAP)).unwrap();
    assert_eq!(a.user.clock, 0);
    assert_eq!(a.stats().ltimes_too_far, 1);
    assert_syncs_decode(&mut a, now);
}

#[test]
fn a_clock_at_the_cap_stays_there_and_its_syncs_still_decode() {
    // A newcomer takes its seed's clock, whatever it is: here the cap.
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.join(now, addr(2)).unwrap();
    let response = frame(
        Message::Sync {
            kind: SyncKind::Response,
            ltime: CAP,
        },
        &[Update::State {
            name: "b",
            incarnation: 0,
            addr: WireAddr::from(addr(2)),
            tags: &[],
            status: WireStatus::Alive,
        }],
    );
    let _ = sent(&mut a, now);
    a.handle_datagram(now, addr(2), &response).unwrap();
    assert_eq!(a.user.clock, CAP);
    a.send_user_event(now, "deploy", b"1").unwrap();
    a.send_user_event(now, "deploy", b"2").unwrap();
    a.handle_datagram(now, addr(2), &user_event(CAP)).unwrap();
    assert_eq!(a.user.clock, CAP);
    assert_eq!(user_events(&mut a), 3);
    let _ = sent(&mut a, now);
    a.handle_datagram(now, addr(3), &join_request(0)).unwrap();
    assert_syncs_decode(&mut a, now);
}

fn suspect(name: &str, incarnation: u32) -> Vec<u8> {
    frame(
        Message::Gossip,
        &[Update::Suspect {
            name,
            incarnation,
            from: "n3",
        }],
    )
}

#[test]
fn a_claim_about_self_far_above_its_incarnation_is_ignored() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    for claim in [
        suspect("n1", INCARNATION_WINDOW + 1),
        suspect("n1", CAP),
        alive("n1", CAP, 9),
        frame(
            Message::Ping {
                seq: 1,
                target: "n1",
                suspected: Some(CAP),
            },
            &[],
        ),
    ] {
        a.handle_datagram(now, addr(2), &claim).unwrap();
    }
    assert_eq!(a.local().incarnation(), 0);
    assert_eq!(a.stats().refutations, 0);
    assert_eq!(a.stats().incarnations_too_far, 4);
    // At the edge of the window the claim is refuted.
    a.handle_datagram(now, addr(2), &suspect("n1", INCARNATION_WINDOW))
        .unwrap();
    assert_eq!(a.local().incarnation(), INCARNATION_WINDOW + 1);
}

#[test]
fn a_node_near_the_cap_refutes_without_passing_it() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.local_mut().incarnation = CAP - 2;
    a.handle_datagram(now, addr(2), &suspect("n1", CAP - 1))
        .unwrap();
    assert_eq!(a.local().incarnation(), CAP);
    a.handle_datagram(now, addr(2), &suspect("n1", CAP))
        .unwrap();
    assert_eq!(a.local().incarnation(), CAP);
    assert_eq!(a.stats().refutations, 2);
    // What it gossips decodes.
    let ping = frame(
        Message::Ping {
            seq: 3,
            target: "n1",
            suspected: None,
        },
        &[],
    );
    a.handle_datagram(now, addr(2), &ping).unwrap();
    for (_, d) in sent(&mut a, now) {
        let f = crate::wire::decode(&d, 0).unwrap();
        assert!(f.updates().any(|u| matches!(
            u,
            Update::Alive {
                name: "n1",
                incarnation: CAP,
                ..
            }
        )));
    }
}

#[test]
fn a_claim_far_above_a_known_member_is_dropped() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    let tagged = |inc: u32| {
        let tags = Tags::new().with("role", "forged").unwrap();
        frame(
            Message::Gossip,
            &[Update::Alive {
                name: "b",
                incarnation: inc,
                addr: WireAddr::from(addr(2)),
                tags: tags.encoded(),
            }],
        )
    };
    for inc in [3 + INCARNATION_WINDOW + 1, CAP - 1, CAP] {
        a.handle_datagram(now, addr(3), &tagged(inc)).unwrap();
        a.handle_datagram(now, addr(3), &suspect("b", inc)).unwrap();
        let b = a.member("b").unwrap();
        assert_eq!((b.incarnation(), b.status()), (3, Status::Alive), "{inc}");
        assert!(b.tags().is_empty());
    }
    assert_eq!(a.stats().incarnations_too_far, 6);
    a.handle_datagram(now, addr(3), &tagged(3 + INCARNATION_WINDOW))
        .unwrap();
    assert_eq!(a.member("b").unwrap().incarnation(), 3 + INCARNATION_WINDOW);
}

#[test]
fn a_member_known_near_the_cap_can_reach_it() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", CAP - 1, 2))
        .unwrap();
    a.handle_datagram(now, addr(3), &suspect("b", CAP)).unwrap();
    let b = a.member("b").unwrap();
    assert_eq!((b.incarnation(), b.status()), (CAP, Status::Suspect));
}

// ---- name conflicts ----

#[test]
fn a_live_members_address_is_not_taken_over_by_another_address() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    let _ = core::iter::from_fn(|| a.poll_event()).count();
    for inc in [4, 5, 3 + INCARNATION_WINDOW, 6] {
        a.handle_datagram(now, addr(9), &alive("b", inc, 9))
            .unwrap();
    }
    let b = a.member("b").unwrap();
    assert_eq!((b.addr(), b.incarnation()), (addr(2), 3));
    let events: Vec<Event> = core::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(
        events,
        [Event::NameConflict {
            name: crate::name("b").unwrap(),
            other: addr(9)
        }]
    );
    assert_eq!(a.stats().name_conflicts, 1);
    // Nothing about the claim was queued for others.
    assert!(!a.queue.contains(Subject::Member(1)) || a.member("b").unwrap().addr() == addr(2));
    // The member itself still moves on at its own address.
    a.handle_datagram(now, addr(2), &alive("b", 7, 2)).unwrap();
    assert_eq!(a.member("b").unwrap().incarnation(), 7);
}

#[test]
fn a_suspect_members_address_is_not_taken_over_either() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    a.handle_datagram(now, addr(3), &suspect("b", 3)).unwrap();
    a.handle_datagram(now, addr(9), &alive("b", 4, 9)).unwrap();
    let b = a.member("b").unwrap();
    assert_eq!((b.addr(), b.status()), (addr(2), Status::Suspect));
}

#[test]
fn our_name_claimed_again_from_elsewhere_is_reported_once_without_a_race() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("n1", 5, 9)).unwrap();
    assert_eq!(a.local().incarnation(), 6);
    for inc in 6..40 {
        a.handle_datagram(now, addr(9), &alive("n1", inc, 9))
            .unwrap();
    }
    assert_eq!(a.local().incarnation(), 6, "no incarnation race");
    let conflicts = core::iter::from_fn(|| a.poll_event())
        .filter(|e| matches!(e, Event::NameConflict { .. }))
        .count();
    assert_eq!(conflicts, 1);
    assert_eq!(a.stats().name_conflicts, 1);
    // A claim that we are gone is still refuted.
    a.handle_datagram(now, addr(2), &suspect("n1", 6)).unwrap();
    assert_eq!(a.local().incarnation(), 7);
}

/// Address changes (`MemberUpdated`) and incarnations of `name` seen over a run.
fn churn(net: &Net, name: &str) -> usize {
    net.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::MemberUpdated { name: n, .. } if n == name))
        .count()
}

#[test]
fn two_live_nodes_sharing_a_name_do_not_fight() {
    let mut net = Net::new(3);
    net.run_for(Duration::from_secs(5));
    // A second process called n3, at another address.
    let mut twin: N = Node::new(Identity::new("n3", addr(7)).unwrap(), Config::lan(), 77).unwrap();
    twin.join(net.now, addr(1)).unwrap();
    net.nodes.push(Peer::up(addr(7), twin));
    net.run_for(Duration::from_secs(300));
    let updates = churn(&net, "n3");
    let conflicts = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::NameConflict { .. }))
        .count();
    let incarnations: Vec<u32> = [2, 3]
        .iter()
        .map(|&i| net.nodes[i].node.local().incarnation())
        .collect();
    // Each node reports the incident once; nobody flips or races.
    assert!(updates <= 4, "{updates} address flips of n3");
    assert!((1..=4).contains(&conflicts), "{conflicts} conflicts");
    assert!(incarnations.iter().all(|&i| i <= 2), "{incarnations:?}");
    for i in 0..2 {
        let m = net.nodes[i].node.member("n3").unwrap();
        assert_eq!(
            (m.status(), m.addr()),
            (Status::Alive, addr(3)),
            "observer {i}"
        );
    }
}

#[test]
fn a_node_restarted_at_a_new_address_takes_its_name_back_once_the_old_one_failed() {
    let mut net = Net::new(3);
    net.run_for(Duration::from_secs(5));
    net.nodes[2].up = false;
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.status(0, "n3"), Some(Status::Failed));
    restart_n3_at_a_new_address(&mut net);
    net.run_for(Duration::from_secs(10));
    assert_n3_alive_at_its_new_address(&net);
}

// ---- anonymous suspicions and the node's own updates ----

#[test]
fn an_anonymous_suspicion_is_not_regossiped_as_our_own_accusation() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    // A push-pull state says b is suspect: nobody in particular accuses it.
    let state = frame(
        Message::Sync {
            kind: SyncKind::Request {
                first: false,
                join: false,
            },
            ltime: 0,
        },
        &[Update::State {
            name: "b",
            incarnation: 3,
            addr: WireAddr::from(addr(2)),
            tags: &[],
            status: WireStatus::Suspect,
        }],
    );
    a.handle_datagram(now, addr(3), &state).unwrap();
    assert_eq!(a.member("b").unwrap().status(), Status::Suspect);
    let ping = frame(
        Message::Ping {
            seq: 3,
            target: "n1",
            suspected: None,
        },
        &[],
    );
    a.handle_datagram(now, addr(3), &ping).unwrap();
    let mut accusers = Vec::new();
    for (_, d) in sent(&mut a, now) {
        for u in crate::wire::decode(&d, 0).unwrap().updates() {
            if let Update::Suspect {
                name: "b", from, ..
            } = u
            {
                accusers.push(std::string::String::from(from));
            }
        }
    }
    assert!(!accusers.is_empty());
    assert!(accusers.iter().all(|f| f != "n1"), "{accusers:?}");
}

#[test]
fn a_suspicion_naming_the_suspect_as_accuser_confirms_nothing() {
    let mut net = Net::new(6);
    net.run_for(Duration::from_secs(5));
    let now = net.now;
    let a = &mut net.nodes[0].node;
    a.handle_datagram(now, addr(2), &suspect("n5", 0)).unwrap();
    let before = a
        .table
        .get(a.find("n5").unwrap())
        .unwrap()
        .suspicion
        .clone();
    let anonymous = frame(
        Message::Gossip,
        &[Update::Suspect {
            name: "n5",
            incarnation: 0,
            from: "n5",
        }],
    );
    a.handle_datagram(now, addr(4), &anonymous).unwrap();
    let after = a
        .table
        .get(a.find("n5").unwrap())
        .unwrap()
        .suspicion
        .clone();
    assert!(before.is_some());
    assert_eq!(before.map(|s| s.deadline()), after.map(|s| s.deadline()));
}

#[test]
fn a_full_queue_never_evicts_the_nodes_own_leave() {
    let mut a: Node<16, 2> =
        Node::new(Identity::new("n1", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    a.leave(now);
    // The Left rides on an ack once, so it is the most-sent entry.
    let ping = frame(
        Message::Ping {
            seq: 3,
            target: "n1",
            suspected: None,
        },
        &[],
    );
    a.handle_datagram(now, addr(2), &ping).unwrap();
    let _ = sent(&mut a, now);
    for i in 3..12 {
        let name = std::format!("m{i}");
        a.handle_datagram(now, addr(i), &alive(&name, 0, i))
            .unwrap();
        assert!(a.queue.contains(Subject::Member(0)), "after {name}");
    }
    assert!(a.stats().updates_evicted > 0);
}
