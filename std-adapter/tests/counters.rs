//! Counters at the cap on running agents: one crafted plaintext datagram at the largest
//! Lamport time or incarnation the wire accepts must not stop joins nor move a live member.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::craft::{self, CAP};
use common::garbage::counter;
use common::{Agent, agree, join_args, loopback_ip, wait_for};

fn send(to: SocketAddr, datagram: &[u8]) {
    let attacker = UdpSocket::bind((loopback_ip(), 0)).unwrap();
    attacker.send_to(datagram, to).unwrap();
}

fn v4(addr: SocketAddr) -> std::net::SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 only"),
    }
}

#[test]
fn a_user_event_at_the_lamport_cap_does_not_stop_joins() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    let b = Agent::on_loopback(dir.path(), "b", &join_args(&[&a]));
    let c = Agent::on_loopback(dir.path(), "c", &join_args(&[&a]));
    agree(&[&a, &b, &c], Duration::from_secs(30));
    for ltime in [CAP - 1, CAP] {
        send(
            a.gossip,
            &craft::user_event("b", ltime, "deploy", b"poison"),
        );
    }
    // Let push-pull and gossip carry whatever the datagrams did to the others.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let d = Agent::on_loopback(dir.path(), "d", &join_args(&[&a]));
    agree(&[&a, &b, &c, &d], Duration::from_secs(30));
    println!("the fourth agent joined in {:?}", started.elapsed());
    assert_eq!(counter(&a.info(), "ltimes_too_far"), 2);
    // Events still flow, once each, at a valid time.
    let out = d.client(&["event", "deploy", "v2"]);
    assert!(out.status.success(), "{out:?}");
    let delivered = wait_for(Duration::from_secs(15), || {
        [&a, &b, &c]
            .iter()
            .all(|x| x.log_text().contains("user deploy from d"))
            .then_some(())
    });
    assert!(delivered.is_some(), "a's log:\n{}", a.log_text());
}

#[test]
fn a_forged_alive_at_the_incarnation_cap_does_not_redirect_a_live_member() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    let b = Agent::on_loopback(dir.path(), "b", &join_args(&[&a]));
    let c = Agent::on_loopback(dir.path(), "c", &join_args(&[&a]));
    let all = [&a, &b, &c];
    agree(&all, Duration::from_secs(30));
    let forged = v4(SocketAddr::from((loopback_ip(), 9)));
    send(a.gossip, &craft::alive("b", CAP, forged));
    let real = b.gossip.to_string();
    let at_real = || {
        all.iter().all(|x| {
            x.members().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.name == "b" && m.addr == real && m.status == "alive")
            })
        })
    };
    // Back (or still) at its real address everywhere within a bound, and it stays there.
    let back = wait_for(Duration::from_secs(10), || at_real().then_some(()));
    assert!(back.is_some(), "{:?}", common::views(&all));
    std::thread::sleep(Duration::from_secs(5));
    assert!(at_real(), "{:?}", common::views(&all));
    // a saw a conflict and said so once.
    let info = a.info();
    assert_eq!(counter(&info, "name_conflicts"), 1);
    let lines = a
        .log_text()
        .matches("name-conflict b also claimed by")
        .count();
    assert_eq!(lines, 1, "{}", a.log_text());
}
