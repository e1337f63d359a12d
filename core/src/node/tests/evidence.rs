//! ICMP evidence (`handle_unreachable`): accepted only for an outstanding ping to that
//! address; port unreachable fails the member, host unreachable ends the probe early;
//! news of a suspicion is checked with one ping of our own (issue 14).

use super::*;
use crate::Unreachable;
use crate::wire::decode;

/// n1 knowing n2 and n3 alive.
fn n1_knowing_two() -> N {
    let mut a = node(1);
    let t = Instant::from_secs(1);
    a.handle_datagram(t, addr(2), &alive("n2", 3, 2)).unwrap();
    a.handle_datagram(t, addr(3), &alive("n3", 0, 3)).unwrap();
    a
}

/// A ping `a` sent: its destination, the suspected incarnation it carries, its bytes.
struct Sent {
    to: SocketAddr,
    suspected: Option<u32>,
    bytes: Vec<u8>,
}

/// Every ping `a` sends now.
fn pings(a: &mut N, now: Instant) -> Vec<Sent> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        if let Message::Ping { suspected, .. } = decode(&buf[..t.len], 0).unwrap().message {
            out.push(Sent {
                to: t.to,
                suspected,
                bytes: buf[..t.len].to_vec(),
            });
        }
    }
    out
}

/// Runs `a`'s timers until it pings `to` as its probe; the instant it did and the ping.
fn until_probe_of(a: &mut N, to: SocketAddr) -> (Instant, Vec<u8>) {
    let mut now = Instant::from_secs(1);
    for _ in 0..100 {
        now = a.poll_timeout().unwrap().max(now);
        a.handle_timeout(now);
        if let Some(p) = pings(a, now).into_iter().find(|p| p.to == to) {
            return (now, p.bytes);
        }
    }
    panic!("no probe of {to}");
}

fn status(a: &N, name: &str) -> Status {
    a.member(name).unwrap().status()
}

#[test]
fn port_unreachable_for_the_probe_declares_the_member_failed() {
    let mut a = n1_knowing_two();
    let (t, ping) = until_probe_of(&mut a, addr(2));
    a.handle_unreachable(t, addr(2), Unreachable::Port, &ping)
        .unwrap();
    assert_eq!(status(&a, "n2"), Status::Failed);
    assert_eq!(a.member("n2").unwrap().incarnation(), 3);
    assert_eq!(a.stats().unreachable_evidence, 1);
    assert!(
        core::iter::from_fn(|| a.poll_event())
            .any(|e| matches!(e, Event::MemberFailed { name, .. } if name == "n2"))
    );
    // Once: the probe is over, so a second report matches nothing.
    assert_eq!(
        a.handle_unreachable(t, addr(2), Unreachable::Port, &ping),
        Err(DropReason::Ignored)
    );
    assert_eq!(a.stats().unreachable_ignored, 1);
}

#[test]
fn evidence_matching_no_outstanding_ping_is_ignored() {
    let mut a = n1_knowing_two();
    let t = Instant::from_secs(1);
    // No probe yet: a forged or stray report accuses nobody.
    let stray = frame(
        Message::Ping {
            seq: 1,
            target: "n2",
            suspected: None,
        },
        &[],
    );
    for kind in [Unreachable::Port, Unreachable::Host] {
        assert_eq!(
            a.handle_unreachable(t, addr(2), kind, &stray),
            Err(DropReason::Ignored)
        );
    }
    // While n2 is probed: a report about another address, even a member's, is ignored;
    // so is one that quotes another datagram, or too little of the ping.
    let (t, ping) = until_probe_of(&mut a, addr(2));
    let before = (status(&a, "n2"), status(&a, "n3"));
    let mut forged = ping.clone();
    forged[ping.len().min(32) - 1] ^= 1;
    for (to, quoted) in [
        (addr(3), &ping[..]),
        (addr(9), &ping[..]),
        (addr(2), &forged[..]),
        (addr(2), &ping[..ping.len().min(32) - 1]),
        (addr(2), &[][..]),
    ] {
        assert_eq!(
            a.handle_unreachable(t, to, Unreachable::Port, quoted),
            Err(DropReason::Ignored)
        );
    }
    assert_eq!(a.stats().unreachable_ignored, 7);
    assert_eq!((status(&a, "n2"), status(&a, "n3")), before);
}

#[test]
fn evidence_after_the_ack_is_ignored() {
    let mut a = n1_knowing_two();
    let (t, ping) = until_probe_of(&mut a, addr(2));
    let seq = a.probe.unwrap().seq;
    a.handle_datagram(t, addr(2), &frame(Message::Ack { seq }, &[]))
        .unwrap();
    assert_eq!(
        a.handle_unreachable(t, addr(2), Unreachable::Port, &ping),
        Err(DropReason::Ignored)
    );
    assert_eq!(status(&a, "n2"), Status::Alive);
}

#[test]
fn host_unreachable_ends_the_probe_with_a_suspicion_not_a_failure() {
    let mut a = n1_knowing_two();
    let (t, ping) = until_probe_of(&mut a, addr(2));
    a.handle_unreachable(t, addr(2), Unreachable::Host, &ping)
        .unwrap();
    assert_eq!(status(&a, "n2"), Status::Suspect);
    assert!(a.probe.is_none(), "no indirect probes to wait for");
    // Our own suspicion: no verification ping (the probe was the ping).
    assert_eq!(a.stats().suspicions_verified, 0);
}

/// Gossip from n3 to `a` that `accuser` suspects n2 at incarnation 3.
fn n2_suspected_by(a: &mut N, t: Instant, accuser: &str) {
    let suspect = Update::Suspect {
        name: "n2",
        incarnation: 3,
        from: accuser,
    };
    a.handle_datagram(t, addr(3), &frame(Message::Gossip, &[suspect]))
        .unwrap();
}

#[test]
fn news_of_a_suspicion_is_checked_with_one_ping_of_our_own() {
    let mut a = n1_knowing_two();
    let t = Instant::from_secs(2);
    let _ = pings(&mut a, t);
    n2_suspected_by(&mut a, t, "n3");
    assert_eq!(status(&a, "n2"), Status::Suspect);
    // One ping to n2, telling it it is suspected (a live n2 refutes at once), carrying
    // nothing else.
    let sent = pings(&mut a, t);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].to, sent[0].suspected), (addr(2), Some(3)));
    assert_eq!(decode(&sent[0].bytes, 0).unwrap().updates().count(), 0);
    let ping = sent[0].bytes.clone();
    // A confirmation from another member sends no second ping.
    n2_suspected_by(&mut a, t, "n4");
    assert!(pings(&mut a, t).is_empty());
    assert_eq!(a.stats().suspicions_verified, 1);
    // Host unreachable for that ping proves nothing (our route may be at fault) ...
    assert_eq!(
        a.handle_unreachable(t, addr(2), Unreachable::Host, &ping),
        Err(DropReason::Ignored)
    );
    assert_eq!(status(&a, "n2"), Status::Suspect);
    // ... port unreachable does: n2's process is gone.
    a.handle_unreachable(t, addr(2), Unreachable::Port, &ping)
        .unwrap();
    assert_eq!(status(&a, "n2"), Status::Failed);
}

#[test]
fn an_ack_to_the_verification_ping_ends_it() {
    let mut a = n1_knowing_two();
    let t = Instant::from_secs(2);
    let _ = pings(&mut a, t);
    n2_suspected_by(&mut a, t, "n3");
    let ping = pings(&mut a, t).remove(0).bytes;
    let Message::Ping { .. } = decode(&ping, 0).unwrap().message else {
        panic!("a ping");
    };
    let seq = a.verifications.iter().map(|v| v.seq).max().unwrap();
    a.handle_datagram(t, addr(2), &frame(Message::Ack { seq }, &[]))
        .unwrap();
    // n2 answered: a later error about that ping proves nothing.
    assert_eq!(
        a.handle_unreachable(t, addr(2), Unreachable::Port, &ping),
        Err(DropReason::Ignored)
    );
    assert_eq!(status(&a, "n2"), Status::Suspect);
}

/// Runs `net` until every up node holds `name` failed; the virtual time that took, or
/// `None` within `limit`.
fn failed_everywhere_within(net: &mut Net, name: &str, limit: Duration) -> Option<Duration> {
    let start = net.now;
    while net.now < start + limit {
        net.run_for(Duration::from_millis(100));
        let up: Vec<usize> = (0..net.nodes.len()).filter(|&i| net.nodes[i].up).collect();
        if up
            .iter()
            .all(|&i| net.status(i, name) == Some(Status::Failed))
        {
            return Some(net.now - start);
        }
    }
    None
}

#[test]
fn a_crashed_process_on_a_live_host_is_failed_everywhere_before_any_suspicion_times_out() {
    let mut net = Net::new(5);
    net.run_for(Duration::from_secs(10));
    net.refuse_when_down = true;
    net.nodes[4].up = false;
    let cfg = net.nodes[0].node.config().clone();
    let shortest = crate::suspicion::min_timeout(cfg.suspicion_mult, 5, cfg.probe_interval);
    let took = failed_everywhere_within(&mut net, "n5", shortest)
        .expect("failed everywhere before the shortest suspicion timeout");
    let evidence: u64 = net.nodes[..4]
        .iter()
        .map(|p| p.node.stats().unreachable_evidence)
        .sum();
    assert!(evidence >= 1);
    std::println!(
        "crash on a live host: failed everywhere after {} ms",
        took.as_millis()
    );
}

#[test]
fn a_silent_member_is_still_judged_by_suspicion_timeouts_only() {
    // A paused process (or a host gone without any ICMP): no evidence, no early failure.
    let mut net = Net::new(5);
    net.run_for(Duration::from_secs(10));
    net.nodes[4].up = false;
    let cfg = net.nodes[0].node.config().clone();
    let shortest = crate::suspicion::min_timeout(cfg.suspicion_mult, 5, cfg.probe_interval);
    assert_eq!(failed_everywhere_within(&mut net, "n5", shortest), None);
    assert!(
        net.nodes[..4]
            .iter()
            .all(|p| p.node.stats().unreachable_evidence == 0)
    );
    // It is failed in the end, as before.
    assert!(failed_everywhere_within(&mut net, "n5", Duration::from_secs(60)).is_some());
}

/// n1 knowing n2 to n20 alive.
fn n1_in_twenty() -> N20 {
    let mut a = Node::new(Identity::new("n1", addr(1)).unwrap(), Config::lan(), 1).unwrap();
    let t = Instant::from_secs(1);
    for i in 2..=20u8 {
        a.handle_datagram(t, addr(i), &alive(&std::format!("n{i}"), 0, i))
            .unwrap();
    }
    a
}

type N20 = Node<32, 64>;

fn verification_pings(a: &mut N20, now: Instant) -> usize {
    let mut buf = [0u8; 1500];
    let mut n = 0;
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        if matches!(
            decode(&buf[..t.len], 0).unwrap().message,
            Message::Ping { .. }
        ) {
            n += 1;
        }
    }
    n
}

#[test]
fn a_few_members_check_a_suspicion_but_every_one_checks_a_failure() {
    let mut a = n1_in_twenty();
    let t = Instant::from_secs(2);
    let _ = verification_pings(&mut a, t);
    // Suspicions of 19 members: about indirect_checks / n of them are checked.
    for i in 2..=20u8 {
        let name = std::format!("n{i}");
        let suspect = Update::Suspect {
            name: &name,
            incarnation: 0,
            from: "n99",
        };
        a.handle_datagram(t, addr(3), &frame(Message::Gossip, &[suspect]))
            .unwrap();
    }
    let checked = verification_pings(&mut a, t);
    assert!(
        (1..10).contains(&checked),
        "{checked} of 19 suspicions checked"
    );
    // News that a member failed is always checked: the crash's fast path.
    let mut b = n1_in_twenty();
    let _ = verification_pings(&mut b, t);
    for i in 2..=6u8 {
        let name = std::format!("n{i}");
        let failed = Update::Failed {
            name: &name,
            incarnation: 0,
        };
        b.handle_datagram(t, addr(9), &frame(Message::Gossip, &[failed]))
            .unwrap();
    }
    assert_eq!(verification_pings(&mut b, t), 5);
}
