//! Events under pressure: user-event bursts, replays and the de-duplication window; member
//! events when the table is full, mass reaps and forged claims.

use std::vec::Vec;

use super::tests::{addr, alive, frame, node, suspected_then_failed};
use super::*;
use crate::user_event::USER_EVENT_BUFFER;
use crate::wire::{Message, SyncKind, Update};

/// A user event `e` from `b` at `ltime`, its payload the time's bytes, in one gossip frame.
fn user_from_b(ltime: u32) -> Vec<u8> {
    let payload = ltime.to_le_bytes();
    frame(
        Message::Gossip,
        &[Update::User {
            origin: "b",
            ltime,
            name: "e",
            payload: &payload,
        }],
    )
}

/// Every event the node reports now.
fn drain_events<const M: usize, const U: usize>(n: &mut Node<M, U>) -> Vec<Event> {
    core::iter::from_fn(|| n.poll_event()).collect()
}

/// Payloads of the user events among `events`.
fn user_payloads(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::User(u) => Some(u.payload.to_vec()),
            _ => None,
        })
        .collect()
}

/// Payloads of every `User` update in the datagrams the node sends while driven for `d`
/// from `from`, in 100 ms steps.
fn sent_user_payloads<const M: usize, const U: usize>(
    n: &mut Node<M, U>,
    from: Instant,
    d: Duration,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    let mut t = from;
    while t <= from + d {
        n.handle_timeout(t);
        while let Some(tx) = n.poll_transmit(t, &mut buf) {
            let frame = crate::wire::decode(&buf[..tx.len], 0).unwrap();
            for u in frame.updates() {
                if let Update::User { payload, .. } = u {
                    out.push(payload.to_vec());
                }
            }
        }
        t = t + Duration::from_millis(100);
    }
    out
}

#[test]
fn a_second_event_sent_before_the_first_is_gossiped_does_not_cancel_it() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    // A full buffer of events already delivered here.
    for k in 0..8u8 {
        a.send_user_event(now, "old", &[k]).unwrap();
    }
    drain_events(&mut a);
    // The application sends, polls (its own event is delivered at once), sends again.
    a.send_user_event(now, "deploy", b"A").unwrap();
    drain_events(&mut a);
    a.send_user_event(now, "deploy", b"B").unwrap();
    let sent = sent_user_payloads(&mut a, now, Duration::from_secs(5));
    assert!(sent.contains(&b"A".to_vec()), "A never gossiped: {sent:?}");
    assert!(sent.contains(&b"B".to_vec()), "B never gossiped: {sent:?}");
}

#[test]
fn push_pull_replays_the_eight_newest_events_oldest_first() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    for k in 0..20u8 {
        a.send_user_event(now, "e", &[k]).unwrap();
        assert_eq!(user_payloads(&drain_events(&mut a)), [[k]]);
    }
    // Let gossip finish, then ask for a push-pull.
    sent_user_payloads(&mut a, now, Duration::from_secs(30));
    let later = now + Duration::from_secs(31);
    // b (suspected meanwhile, as it never acked) refutes and answers a ping of ours: its
    // address is verified, so its request gets the table.
    a.handle_datagram(later, addr(2), &alive("b", 5, 2))
        .unwrap();
    a.verify(addr(2));
    let request = frame(
        Message::Sync {
            kind: SyncKind::Request {
                first: true,
                join: false,
            },
            ltime: 0,
        },
        &[],
    );
    a.handle_datagram(later, addr(2), &request).unwrap();
    let mut replayed = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(tx) = a.poll_transmit(later, &mut buf) {
        let frame = crate::wire::decode(&buf[..tx.len], 0).unwrap();
        if matches!(frame.message, Message::Sync { .. }) {
            for u in frame.updates() {
                if let Update::User { payload, .. } = u {
                    replayed.push(payload.to_vec());
                }
            }
        }
    }
    let newest: Vec<Vec<u8>> = (12..20u8).map(|k| std::vec![k]).collect();
    assert_eq!(replayed, newest);
}

#[test]
fn an_event_seen_again_after_many_newer_ones_is_never_delivered_twice() {
    // 63 newer events: still remembered. 64 and more: forgotten, and then too old to judge.
    for newer in [1u32, 63, 64, 65, 300] {
        let mut a = node(1);
        let now = Instant::from_secs(1);
        a.handle_datagram(now, addr(2), &user_from_b(0)).unwrap();
        for k in 1..=newer {
            a.handle_datagram(now, addr(2), &user_from_b(k)).unwrap();
            drain_events(&mut a);
        }
        a.handle_datagram(now, addr(2), &user_from_b(0)).unwrap();
        a.handle_datagram(now, addr(3), &user_from_b(0)).unwrap();
        let again = user_payloads(&drain_events(&mut a));
        assert!(
            !again.contains(&0u32.to_le_bytes().to_vec()),
            "after {newer} newer events, event 0 was delivered again"
        );
    }
}

#[test]
fn every_event_evicted_undelivered_or_ungossiped_is_counted() {
    for burst in [1usize, 8, 9, 100] {
        let mut a = node(1);
        let now = Instant::from_secs(1);
        a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
        for k in 0..burst {
            a.send_user_event(now, "e", &(k as u32).to_le_bytes())
                .unwrap();
        }
        let delivered = user_payloads(&drain_events(&mut a));
        let lost = burst.saturating_sub(USER_EVENT_BUFFER);
        let newest: Vec<Vec<u8>> = (lost..burst)
            .map(|k| (k as u32).to_le_bytes().to_vec())
            .collect();
        assert_eq!(delivered, newest, "burst of {burst}: oldest first");
        let s = a.stats();
        assert_eq!(
            (s.user_events, s.user_events_lost, s.user_events_cut),
            (delivered.len() as u64, lost as u64, lost as u64),
            "burst of {burst}"
        );
    }
}

#[test]
fn an_event_older_than_the_window_is_dropped_and_counted() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    for k in 100..164 {
        a.handle_datagram(now, addr(2), &user_from_b(k)).unwrap();
    }
    // Never seen, but lower than all 64 remembered: accepted, and forgotten at once.
    a.handle_datagram(now, addr(2), &user_from_b(50)).unwrap();
    // Now nothing at or below 50 can be judged.
    a.handle_datagram(now, addr(2), &user_from_b(50)).unwrap();
    a.handle_datagram(now, addr(2), &user_from_b(40)).unwrap();
    let delivered = user_payloads(&drain_events(&mut a));
    assert_eq!(delivered.len(), 8, "the buffer keeps the newest 8");
    assert_eq!(delivered.last(), Some(&50u32.to_le_bytes().to_vec()));
    assert_eq!(a.stats().user_events_stale, 2);
    assert_eq!(a.stats().user_events_lost, 57);
}

/// A node of capacity 4 (itself and 3 members) tracking `b`, `c` and `d`, all alive, with
/// their joins reported.
fn full_table() -> Node<4, 8> {
    let mut a: Node<4, 8> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let now = Instant::from_secs(1);
    for (name, i) in [("b", 2), ("c", 3), ("d", 4)] {
        a.handle_datagram(now, addr(i), &alive(name, 0, i)).unwrap();
    }
    drain_events(&mut a);
    a
}

fn is_failed(e: &Event, who: &str) -> bool {
    matches!(e, Event::MemberFailed { name, .. } if name == who)
}

#[test]
fn a_newcomer_does_not_take_the_slot_of_a_failure_not_yet_reported() {
    let mut a = full_table();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(3), &suspected_then_failed("b", 0))
        .unwrap();
    // Long after the failure, but the application has not polled it yet.
    let later = now + Duration::from_secs(60);
    a.handle_datagram(later, addr(5), &alive("e", 0, 5))
        .unwrap();
    assert!(a.member("e").is_none(), "e took b's slot");
    assert_eq!(a.stats().members_refused, 1);
    let events = drain_events(&mut a);
    assert!(
        events.iter().any(|e| is_failed(e, "b")),
        "b's failure was never reported: {events:?}"
    );
    // Reported, and failed long enough: now b makes room.
    a.handle_datagram(later, addr(5), &alive("e", 1, 5))
        .unwrap();
    assert!(a.member("e").is_some());
    assert!(a.member("b").is_none());
    assert_eq!(a.stats().members_evicted, 1);
}

#[test]
fn a_mass_reap_reports_every_member() {
    let mut a: Node<128, 16> =
        Node::new(Identity::new("a", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let now = Instant::from_secs(1);
    let names: Vec<std::string::String> = (0..100).map(|k| std::format!("m{k}")).collect();
    for name in &names {
        a.handle_datagram(now, addr(2), &alive(name, 0, 2)).unwrap();
        a.handle_datagram(now, addr(3), &suspected_then_failed(name, 0))
            .unwrap();
    }
    let failed = drain_events(&mut a)
        .iter()
        .filter(|e| matches!(e, Event::MemberFailed { .. }))
        .count();
    assert_eq!(failed, 100);
    a.handle_timeout(now + a.config().reap_timeout);
    // Not reported yet: still listed.
    assert_eq!(a.members().count(), 101);
    let events = drain_events(&mut a);
    let reaped: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::MemberReaped { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reaped.len(), 100, "{events:?}");
    assert_eq!((a.stats().members_reaped, a.stats().events_lost), (100, 0));
    assert_eq!(a.members().count(), 1);
    // Nothing left to do: the reaped slots set no deadline.
    assert!(a.poll_timeout().is_some_and(|t| t > now));
}

#[test]
fn a_forged_left_and_alive_pair_cannot_evict_a_live_member() {
    let mut a = full_table();
    let now = Instant::from_secs(2);
    let forged = |newcomer: &'static str| {
        frame(
            Message::Gossip,
            &[
                Update::Left {
                    name: "b",
                    incarnation: 0,
                },
                Update::Alive {
                    name: newcomer,
                    incarnation: 0,
                    addr: addr(9).into(),
                    tags: &[],
                },
            ],
        )
    };
    a.handle_datagram(now, addr(9), &forged("x")).unwrap();
    assert!(a.member("b").is_some(), "one datagram evicted b");
    assert!(a.member("x").is_none());
    // Even once the application heard that b left, b has time to refute.
    drain_events(&mut a);
    a.handle_datagram(now, addr(9), &forged("y")).unwrap();
    assert!(a.member("b").is_some(), "b evicted before it could refute");
    assert!(a.member("y").is_none());
    a.handle_datagram(now, addr(2), &alive("b", 1, 2)).unwrap();
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    assert_eq!(a.stats().members_evicted, 0);
}

#[test]
fn a_reported_failure_makes_room_only_after_the_time_to_refute() {
    let mut a = full_table();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(3), &suspected_then_failed("b", 0))
        .unwrap();
    assert!(drain_events(&mut a).iter().any(|e| is_failed(e, "b")));
    let cfg = a.config();
    let grace = crate::suspicion::min_timeout(cfg.suspicion_mult, 3, cfg.probe_interval);
    let just_before = Instant::from_millis((now + grace).as_millis() - 1);
    a.handle_datagram(just_before, addr(5), &alive("e", 0, 5))
        .unwrap();
    assert!(a.member("e").is_none() && a.member("b").is_some());
    a.handle_datagram(now + grace, addr(5), &alive("e", 1, 5))
        .unwrap();
    assert!(a.member("e").is_some() && a.member("b").is_none());
    assert_eq!(
        (a.stats().members_refused, a.stats().members_evicted),
        (1, 1)
    );
}

/// [`full_table`] after b failed (at 1 s), c failed (at 2 s) and a newcomer, e, took b's
/// slot (at 61 s, returned): b is evicted (its tombstone at incarnation 0), and c's slot
/// may make room.
pub(in crate::node) fn b_evicted_and_c_failed() -> (Node<4, 8>, Instant) {
    let mut a = full_table();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(3), &suspected_then_failed("b", 0))
        .unwrap();
    let then = now + Duration::from_secs(1);
    a.handle_datagram(then, addr(4), &suspected_then_failed("c", 0))
        .unwrap();
    drain_events(&mut a);
    let later = now + Duration::from_secs(60);
    a.handle_datagram(later, addr(5), &alive("e", 0, 5))
        .unwrap();
    assert!(a.member("e").is_some() && a.member("b").is_none());
    (a, later)
}

#[test]
fn a_member_evicted_to_make_room_is_not_brought_back_by_a_stale_claim() {
    let (mut a, later) = b_evicted_and_c_failed();
    // b's old news, still on its way around the cluster: ignored and counted, although
    // c's slot could make room.
    a.handle_datagram(later, addr(2), &alive("b", 0, 2))
        .unwrap();
    assert!(a.member("b").is_none() && a.member("c").is_some());
    assert_eq!(a.stats().evicted_claims_stale, 1);
    // A real comeback carries a higher incarnation: it takes c's slot.
    a.handle_datagram(later, addr(2), &alive("b", 1, 2))
        .unwrap();
    assert!(a.member("b").is_some() && a.member("c").is_none());
    assert_eq!(a.stats().evicted_claims_stale, 1);
}

#[test]
fn a_comeback_after_an_eviction_moves_the_incarnation_at_most_the_window() {
    // Found by the adversary fuzz target: b, evicted at incarnation 0, was squatted by a
    // forged claim near the cap that b itself could never out-bid.
    let (mut a, later) = b_evicted_and_c_failed();
    let window = crate::wire::INCARNATION_WINDOW;
    for far in [
        window + 1,
        crate::wire::MAX_COUNTER - 1,
        crate::wire::MAX_COUNTER,
    ] {
        a.handle_datagram(later, addr(6), &alive("b", far, 6))
            .unwrap();
        assert!(a.member("b").is_none(), "{far}");
    }
    assert_eq!(a.stats().incarnations_too_far, 3);
    // At the edge of the window, a comeback is taken.
    a.handle_datagram(later, addr(2), &alive("b", window, 2))
        .unwrap();
    assert_eq!(a.member("b").unwrap().incarnation(), window);
    assert_eq!(a.member("b").unwrap().addr(), addr(2));
}

#[test]
fn a_comeback_refused_by_a_full_table_keeps_the_tombstone() {
    // Found by the adversary fuzz target: the refused comeback used to spend the tombstone,
    // so b's stale news was later taken at incarnation 0, below the 5 it was evicted at.
    let mut a = full_table();
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 5, 2)).unwrap();
    a.handle_datagram(now, addr(3), &suspected_then_failed("b", 5))
        .unwrap();
    drain_events(&mut a);
    let later = now + Duration::from_secs(60);
    a.handle_datagram(later, addr(5), &alive("e", 0, 5))
        .unwrap();
    assert!(a.member("b").is_none());
    // b comes back, but every slot is live: refused.
    a.handle_datagram(later, addr(2), &alive("b", 6, 2))
        .unwrap();
    assert!(a.member("b").is_none());
    assert_eq!(a.stats().members_refused, 1);
    // c fails and may make room once it has had its time to refute.
    a.handle_datagram(later, addr(4), &suspected_then_failed("c", 0))
        .unwrap();
    drain_events(&mut a);
    let much_later = later + Duration::from_secs(60);
    a.handle_datagram(much_later, addr(4), &alive("b", 0, 4))
        .unwrap();
    assert!(a.member("b").is_none() && a.member("c").is_some());
    assert_eq!(a.stats().evicted_claims_stale, 1);
    // The real comeback still takes the room.
    a.handle_datagram(much_later, addr(2), &alive("b", 6, 2))
        .unwrap();
    assert_eq!(a.member("b").unwrap().incarnation(), 6);
}

#[test]
fn a_member_back_before_its_reap_is_reported_is_reported_joined() {
    let mut a = node(1);
    let now = Instant::from_secs(1);
    a.handle_datagram(now, addr(2), &alive("b", 0, 2)).unwrap();
    a.handle_datagram(now, addr(3), &suspected_then_failed("b", 0))
        .unwrap();
    drain_events(&mut a);
    let later = now + a.config().reap_timeout;
    a.handle_timeout(later);
    a.handle_datagram(later, addr(2), &alive("b", 1, 2))
        .unwrap();
    let events = drain_events(&mut a);
    assert!(
        matches!(&events[..], [Event::MemberJoined { name, .. }] if name == "b"),
        "{events:?}"
    );
    assert_eq!(a.member("b").unwrap().status(), Status::Alive);
    // And it is not reaped later either.
    a.handle_timeout(later + a.config().reap_timeout);
    assert!(drain_events(&mut a).is_empty());
    assert!(a.member("b").is_some());
}
