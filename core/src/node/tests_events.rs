//! Events under pressure: user-event bursts, replays and the de-duplication window; member
//! events when the table is full, mass reaps and forged claims.

use std::vec::Vec;

use super::tests::{addr, alive, frame, node};
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
