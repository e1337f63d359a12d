//! Behaviour of one node and of tiny clusters on a perfect in-memory network. Cluster-scale
//! scenarios (loss, partitions, 100 nodes) live in the simulator (`benches/`).

use std::net::SocketAddr;
use std::vec::Vec;

use super::transmit::Outgoing;
use super::*;
use crate::wire::{DropReason, Encoder, Message, Update, WireAddr};

mod net;

pub(super) use self::net::*;

#[test]
fn node_fits_the_memory_budget() {
    // The documented budget (docs/ARCHITECTURE.md): a 32-member node in at most 16 KiB.
    let size = core::mem::size_of::<Node<32, 64>>();
    std::println!("size_of::<Node<32, 64>>() = {size}");
    std::println!(
        "per member slot: {} bytes (+1 occupancy flag)",
        core::mem::size_of::<crate::member::Slot>()
    );
    assert!(size <= 16 * 1024, "Node<32, 64> is {size} bytes");
}

#[test]
fn bad_capacity_is_refused() {
    let id = Identity::new("x", addr(1)).unwrap();
    assert_eq!(
        Node::<1, 4>::new(id.clone(), Config::lan(), 0).err(),
        Some(ConfigError::BadCapacity)
    );
    assert_eq!(
        Node::<4, 0>::new(id, Config::lan(), 0).err(),
        Some(ConfigError::BadCapacity)
    );
}

#[test]
fn three_nodes_join_and_agree() {
    let mut net = Net::new(3);
    net.run_for(Duration::from_secs(5));
    for i in 0..3 {
        assert_eq!(net.nodes[i].node.members().count(), 3);
        assert!(
            net.nodes[i]
                .node
                .members()
                .all(|m| m.status() == Status::Alive)
        );
    }
    let joined = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Joined { .. }))
        .count();
    assert_eq!(joined, 2);
}

#[test]
fn a_crashed_node_is_suspected_then_failed() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    net.nodes[3].up = false;
    net.run_for(Duration::from_secs(60));
    for i in 0..3 {
        assert_eq!(net.status(i, "n4"), Some(Status::Failed), "observer {i}");
    }
    assert!(
        net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::MemberSuspected { name, .. } if name == "n4"))
    );
}

#[test]
fn a_failed_member_forced_out_is_left_everywhere_and_may_come_back() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    let now = net.now;
    let n1 = &mut net.nodes[0].node;
    assert_eq!(n1.force_leave(now, "n2"), Err(ForceLeaveError::Live));
    assert_eq!(n1.force_leave(now, "n1"), Err(ForceLeaveError::Local));
    assert_eq!(
        n1.force_leave(now, "zz"),
        Err(ForceLeaveError::UnknownMember)
    );
    net.nodes[3].up = false;
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.status(1, "n4"), Some(Status::Failed));
    let now = net.now;
    net.nodes[0].node.force_leave(now, "n4").unwrap();
    assert_eq!(net.status(0, "n4"), Some(Status::Left));
    net.drain(0);
    net.run_for(Duration::from_secs(5));
    for i in 0..3 {
        assert_eq!(net.status(i, "n4"), Some(Status::Left), "observer {i}");
        assert!(
            net.events.iter().any(|(a, e)| *a == addr(i as u8 + 1)
                && matches!(e, Event::MemberLeft { name, .. } if name == "n4")),
            "observer {i} reported the leave"
        );
    }
    assert_eq!(net.nodes[0].node.force_leave(net.now, "n4"), Ok(()));
    // n4 wakes up: told it left, it refutes and is alive again everywhere.
    net.nodes[3].up = true;
    net.run_for(Duration::from_secs(30));
    for i in 0..4 {
        assert!(
            net.nodes[i]
                .node
                .members()
                .all(|m| m.status() == Status::Alive),
            "node {i}: {:?}",
            net.nodes[i]
                .node
                .members()
                .map(|m| (m.name().into(), m.status()))
                .collect::<Vec<(std::string::String, Status)>>()
        );
    }
}

#[test]
fn a_graceful_leave_is_left_not_failed() {
    let mut net = Net::new(4);
    net.run_for(Duration::from_secs(5));
    let now = net.now;
    net.nodes[3].node.leave(now);
    net.drain(3);
    net.run_for(Duration::from_secs(10));
    assert!(
        net.events
            .iter()
            .any(|(a, e)| *a == addr(4) && *e == Event::LeaveComplete)
    );
    for i in 0..3 {
        assert_eq!(net.status(i, "n4"), Some(Status::Left));
    }
    net.nodes[3].up = false;
    net.run_for(Duration::from_secs(60));
    for i in 0..3 {
        assert_eq!(net.status(i, "n4"), Some(Status::Left));
    }
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::MemberFailed { .. }))
    );
}

#[test]
fn tags_changes_reach_everyone_as_updates() {
    let mut net = Net::new(3);
    net.run_for(Duration::from_secs(5));
    let now = net.now;
    let tags = Tags::new().with("role", "backend").unwrap();
    net.nodes[2].node.set_tags(now, tags.clone());
    net.drain(2);
    net.run_for(Duration::from_secs(5));
    for i in 0..2 {
        assert_eq!(net.nodes[i].node.member("n3").unwrap().tags(), &tags);
    }
    assert!(
        net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::MemberUpdated { name, .. } if name == "n3"))
    );
}

#[test]
fn user_events_are_delivered_once_everywhere() {
    let mut net = Net::new(3);
    net.send_deploy();
    for i in 1..=3 {
        assert_eq!(net.deliveries(addr(i)), 1, "n{i}");
    }
    let now = net.now;
    assert_eq!(
        net.nodes[0].node.send_user_event(now, "", b""),
        Err(UserEventError::BadName)
    );
    assert_eq!(
        net.nodes[0].node.send_user_event(now, "x", &[0; 65]),
        Err(UserEventError::PayloadTooLarge)
    );
}

#[test]
fn a_user_event_lost_in_gossip_arrives_by_push_pull_once() {
    let mut net = Net::new(3);
    // Every datagram to n3 that piggybacks a user event is lost; Sync chunks get through.
    net.lose = Some(|to, bytes| {
        to == addr(3)
            && crate::wire::decode(bytes, 0).is_ok_and(|f| {
                !matches!(f.message, Message::Sync { .. })
                    && f.updates().any(|u| matches!(u, Update::User { .. }))
            })
    });
    net.send_deploy();
    // Several push-pull rounds (every 30 s): delivered to n3 once, and nowhere twice.
    net.run_for(Duration::from_secs(180));
    for i in 1..=3 {
        assert_eq!(net.deliveries(addr(i)), 1, "n{i}");
    }
}

#[test]
fn a_node_joining_later_is_not_replayed_the_events_push_pull_carries() {
    let mut net = Net::new(3);
    net.send_deploy();
    net.nodes.push(Peer::up(addr(4), node(4)));
    let now = net.now;
    net.nodes[3].node.join(now, addr(1)).unwrap();
    net.run_for(Duration::from_secs(180));
    assert_eq!(net.nodes[3].node.members().count(), 4);
    assert_eq!(net.deliveries(addr(4)), 0, "history is not replayed");
    for i in 1..=3 {
        assert_eq!(net.deliveries(addr(i)), 1, "n{i}");
    }
}

/// Serf's `-replay`: with `replay_user_events`, the joining node delivers the event its
/// seed's push-pull replays, once, however many push-pulls follow.
#[test]
fn a_node_joining_with_replay_delivers_the_buffered_events_once() {
    let mut net = Net::new(3);
    net.send_deploy();
    let mut config = Config::lan();
    config.replay_user_events = true;
    net.nodes.push(Peer::up(addr(4), node_with(4, config)));
    let now = net.now;
    net.nodes[3].node.join(now, addr(1)).unwrap();
    net.run_for(Duration::from_secs(180));
    assert_eq!(net.nodes[3].node.members().count(), 4);
    assert_eq!(
        net.deliveries(addr(4)),
        1,
        "the buffered event is replayed once"
    );
    for i in 1..=3 {
        assert_eq!(net.deliveries(addr(i)), 1, "n{i}");
    }
}

/// Encodes one datagram by hand, as a peer (honest or not) would.
pub(super) fn frame(message: Message<'_>, updates: &[Update<'_>]) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let mut enc = Encoder::new(&mut buf, 0, &message).unwrap();
    for u in updates {
        assert!(enc.push(u));
    }
    let len = enc.len();
    buf[..len].to_vec()
}

#[test]
fn suspicion_of_self_is_refuted_with_a_higher_incarnation() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    let bytes = frame(
        Message::Gossip,
        &[Update::Suspect {
            name: "n1",
            incarnation: 0,
            from: "n2",
        }],
    );
    a.handle_datagram(now, addr(2), &bytes).unwrap();
    assert_eq!(a.local().incarnation(), 1);
    assert_eq!(a.stats().refutations, 1);
    // The buddy system: a ping that says we are suspected is refuted at once too.
    let ping = frame(
        Message::Ping {
            seq: 9,
            target: "n1",
            suspected: Some(1),
        },
        &[],
    );
    a.handle_datagram(now, addr(2), &ping).unwrap();
    assert_eq!(a.local().incarnation(), 2);
    let mut buf = [0u8; 1500];
    let t = a.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(t.to, addr(2));
    let ack = crate::wire::decode(&buf[..t.len], 0).unwrap();
    assert_eq!(ack.message, Message::Ack { seq: 9 });
    assert!(ack.updates().any(|u| matches!(
        u,
        Update::Alive {
            name: "n1",
            incarnation: 2,
            ..
        }
    )));
}

#[test]
fn a_ping_for_another_name_is_ignored() {
    let mut a = node(1);
    let ping = frame(
        Message::Ping {
            seq: 1,
            target: "someone-else",
            suspected: None,
        },
        &[],
    );
    assert_eq!(
        a.handle_datagram(Instant::ZERO, addr(2), &ping),
        Err(DropReason::Ignored)
    );
    let mut buf = [0u8; 1500];
    assert!(a.poll_transmit(Instant::ZERO, &mut buf).is_none());
}

/// `name`'s own first push-pull request, as it sends it: its alive state at `at` only.
pub(super) fn own_sync_request(
    name: &str,
    incarnation: u32,
    at: SocketAddr,
    join: bool,
) -> Vec<u8> {
    frame(
        Message::Sync {
            kind: crate::wire::SyncKind::Request { first: true, join },
            ltime: 0,
        },
        &[Update::State {
            name,
            incarnation,
            addr: WireAddr::from(at),
            tags: &[],
            status: crate::wire::WireStatus::Alive,
        }],
    )
}

pub(super) fn alive(name: &str, incarnation: u32, i: u8) -> Vec<u8> {
    let update = Update::Alive {
        name,
        incarnation,
        addr: WireAddr::from(addr(i)),
        tags: &[],
    };
    frame(Message::Gossip, &[update])
}

/// A suspicion and then the failure of `name`, in one datagram.
pub(super) fn suspected_then_failed(name: &str, incarnation: u32) -> Vec<u8> {
    let suspect = Update::Suspect {
        name,
        incarnation,
        from: "n3",
    };
    let failed = Update::Failed { name, incarnation };
    frame(Message::Gossip, &[suspect, failed])
}

#[test]
fn news_of_an_unsuspected_failure_is_a_short_suspicion_first() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    a.handle_datagram(now, addr(2), &alive("c", 0, 3)).unwrap();
    let failed = |name| {
        frame(
            Message::Gossip,
            &[Update::Failed {
                name,
                incarnation: 0,
            }],
        )
    };
    a.handle_datagram(now, addr(3), &failed("b")).unwrap();
    a.handle_datagram(now, addr(3), &failed("c")).unwrap();
    assert_eq!(a.member("b").unwrap().status(), Status::Suspect);
    // b refutes in time; c does not.
    a.handle_datagram(now, addr(2), &alive("b", 1, 2)).unwrap();
    let shortest = crate::suspicion::min_timeout(4, 3, a.config().probe_interval);
    a.handle_timeout(now + shortest);
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    assert_eq!(a.member("c").unwrap().status(), Status::Failed);
}

#[test]
fn a_full_table_refuses_newcomers_but_keeps_live_members() {
    let mut a: Node<3, 4> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    a.handle_datagram(now, addr(3), &alive("c", 0, 3)).unwrap();
    a.handle_datagram(now, addr(4), &alive("d", 0, 4)).unwrap();
    a.handle_datagram(now, addr(4), &alive("d", 1, 4)).unwrap();
    assert_eq!(a.members().count(), 3);
    assert!(a.member("d").is_none());
    assert_eq!(a.stats().members_refused, 2);
    let events: Vec<Event> = core::iter::from_fn(|| a.poll_event()).collect();
    let refusals = events
        .iter()
        .filter(|e| matches!(e, Event::MemberRefused { name, .. } if name == "d"))
        .count();
    assert_eq!(refusals, 1, "reported once: {events:?}");
    // A failed member makes room, once reported and past the time it had to refute.
    let failed = suspected_then_failed("b", 0);
    a.handle_datagram(now, addr(3), &failed).unwrap();
    let _ = core::iter::from_fn(|| a.poll_event()).count();
    let later = now + crate::suspicion::min_timeout(4, 3, a.config().probe_interval);
    a.handle_datagram(later, addr(4), &alive("d", 2, 4))
        .unwrap();
    assert!(a.member("d").is_some());
    assert!(a.member("b").is_none());
    assert_eq!(a.stats().members_evicted, 1);
}

#[test]
fn failed_members_come_back_only_with_a_higher_incarnation_and_are_reaped() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    let failed = suspected_then_failed("b", 3);
    a.handle_datagram(now, addr(3), &failed).unwrap();
    a.handle_datagram(now, addr(2), &alive("b", 3, 2)).unwrap();
    assert_eq!(a.member("b").unwrap().status(), Status::Failed);
    a.handle_datagram(now, addr(2), &alive("b", 4, 5)).unwrap();
    let b = a.member("b").unwrap();
    assert_eq!((b.status(), b.addr()), (Status::Alive, addr(5)));
    a.handle_datagram(
        now,
        addr(3),
        &frame(
            Message::Gossip,
            &[Update::Left {
                name: "b",
                incarnation: 4,
            }],
        ),
    )
    .unwrap();
    let later = now + a.config().reap_timeout;
    a.handle_timeout(later);
    let events: Vec<Event> = core::iter::from_fn(|| a.poll_event()).collect();
    assert!(events.contains(&Event::MemberReaped {
        name: crate::name("b").unwrap()
    }));
    assert!(a.member("b").is_none());
}

#[test]
fn a_second_claim_of_our_name_from_elsewhere_is_a_conflict() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    // Our previous life's record: refuted quietly.
    a.handle_datagram(now, addr(2), &alive("n1", 5, 9)).unwrap();
    assert_eq!(a.local().incarnation(), 6);
    assert!(a.poll_event().is_none());
    // Another live node keeps using our name.
    a.handle_datagram(now, addr(9), &alive("n1", 7, 9)).unwrap();
    assert_eq!(
        a.poll_event(),
        Some(Event::NameConflict {
            name: crate::name("n1").unwrap(),
            other: addr(9)
        })
    );
}

/// Starts a new process named `n3` at `addr(7)` that joins through `addr(1)`.
pub(super) fn restart_n3_at_a_new_address(net: &mut Net) {
    let mut reborn: N =
        Node::new(Identity::new("n3", addr(7)).unwrap(), Config::lan(), 77).unwrap();
    reborn.join(net.now, addr(1)).unwrap();
    net.nodes.push(Peer::up(addr(7), reborn));
}

/// Every other node holds `n3` alive at `addr(7)`.
pub(super) fn assert_n3_alive_at_its_new_address(net: &Net) {
    for i in [0, 1, 3] {
        let m = net.nodes[i].node.member("n3").unwrap();
        assert_eq!(
            (m.status(), m.addr()),
            (Status::Alive, addr(7)),
            "observer {i}"
        );
    }
}

#[test]
fn a_restarted_node_takes_over_its_name_with_a_new_address() {
    let mut net = Net::new(3);
    net.run_for(Duration::from_secs(5));
    net.nodes[2].up = false;
    // The same name comes back on a new address and joins again.
    restart_n3_at_a_new_address(&mut net);
    // Its old record keeps its address until it fails (about 10 s); the new one is taken
    // over at the next exchange after that (push-pull, every 30 s).
    net.run_for(Duration::from_secs(60));
    assert_n3_alive_at_its_new_address(&net);
}

#[test]
fn garbage_changes_nothing_and_is_counted() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    let before: Vec<(std::string::String, u32, Status)> = a
        .members()
        .map(|m| (m.name().into(), m.incarnation(), m.status()))
        .collect();
    let good = alive("c", 0, 3);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((Vec::new(), DropReason::Truncated));
    cases.push((std::vec![0u8; 1501], DropReason::Oversized));
    let mut v = good.clone();
    v[0] = 9;
    cases.push((v, DropReason::Version));
    let mut v = good.clone();
    v[1] = 1;
    cases.push((v, DropReason::Envelope));
    let mut v = good.clone();
    v[5] = 1;
    cases.push((v, DropReason::Cluster));
    cases.push((good[..good.len() - 1].to_vec(), DropReason::Malformed));
    let mut v = good.clone();
    v.push(0xff);
    cases.push((v, DropReason::Malformed));
    // A valid update followed by an absurd one: the whole datagram goes.
    cases.push((
        frame(
            Message::Gossip,
            &[
                Update::Alive {
                    name: "c",
                    incarnation: 0,
                    addr: WireAddr::from(addr(3)),
                    tags: &[],
                },
                Update::Failed {
                    name: "b",
                    incarnation: u32::MAX,
                },
            ],
        ),
        DropReason::Malformed,
    ));
    for (bytes, reason) in &cases {
        assert_eq!(a.handle_datagram(now, addr(3), bytes), Err(*reason));
    }
    let after: Vec<(std::string::String, u32, Status)> = a
        .members()
        .map(|m| (m.name().into(), m.incarnation(), m.status()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(a.stats().dropped(), cases.len() as u64);
    assert_eq!(a.stats().dropped_malformed, 3);
}

#[test]
fn a_stale_accusation_of_a_departed_member_is_corrected() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    let left = frame(
        Message::Gossip,
        &[Update::Left {
            name: "b",
            incarnation: 1,
        }],
    );
    a.handle_datagram(now, addr(3), &left).unwrap();
    // Let the Left news retire from the queue.
    let mut buf = [0u8; 1500];
    for _ in 0..64 {
        a.enqueue(Outgoing::Gossip { to: addr(3) });
        while a.poll_transmit(now, &mut buf).is_some() {}
    }
    assert!(
        !a.queue
            .contains(Subject::Member(a.find("b").unwrap() as u16))
    );
    // Node 3 missed it and suspects b: the answer carries the Left again.
    let stale = frame(
        Message::Ping {
            seq: 5,
            target: "n1",
            suspected: None,
        },
        &[Update::Suspect {
            name: "b",
            incarnation: 0,
            from: "n3",
        }],
    );
    a.handle_datagram(now, addr(3), &stale).unwrap();
    let t = a.poll_transmit(now, &mut buf).unwrap();
    let reply = crate::wire::decode(&buf[..t.len], 0).unwrap();
    assert!(reply.updates().any(|u| matches!(
        u,
        Update::Left {
            name: "b",
            incarnation: 1
        }
    )));
    assert_eq!(a.member("b").unwrap().status(), Status::Left);
}

mod evidence;
mod probe;
mod self_claims;
mod strangers;
