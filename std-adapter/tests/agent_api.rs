//! The library API in process: agents on 127.0.0.1 join, see each other's tags and user
//! events, leave gracefully or crash, and every handle call behaves.

use std::time::Duration;

use rumor_core::{Config, Status, Tags};
use rumor_std::{Agent, AgentConfig, AgentEvent, EventStream, HandleError, LeaveOutcome};

/// The local profile at half the probe interval, LAN retransmissions (as `rumor demo`).
fn fast() -> Config {
    let mut config = Config::local();
    config.probe_interval = rumor_core::Duration::from_millis(500);
    config.retransmit_mult = 4;
    config
}

async fn start(name: &str, role: &str) -> Agent {
    let mut c = AgentConfig::new(name, "127.0.0.1:0".parse().unwrap());
    c.protocol = fast();
    c.tags = Tags::new().with("role", role).unwrap();
    Agent::start(c).await.unwrap()
}

/// The first event `pick` accepts, within 30 s.
async fn next_matching<T>(
    events: &mut EventStream,
    mut pick: impl FnMut(&AgentEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.next().await.expect("the agent is running");
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    })
    .await
    .expect("event within 30 s")
}

#[tokio::test(flavor = "current_thread")]
async fn agents_join_share_tags_and_events_then_leave_and_crash() {
    let a = start("a", "balancer").await;
    let b = start("b", "backend").await;
    let c = start("c", "backend").await;
    let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
    let mut ev_a = ha.events();
    let mut ev_c = hc.events();
    assert_eq!(ha.local().name, "a");
    assert_eq!(ha.local().addr, a.local_addr());

    let mut joined = hb.events();
    hb.join([a.local_addr()]).await.unwrap();
    hc.join([a.local_addr()]).await.unwrap();
    let via = next_matching(&mut joined, |e| match e {
        AgentEvent::Joined { via } => Some(*via),
        _ => None,
    })
    .await;
    assert_eq!(via, a.local_addr());
    for _ in 0..2 {
        next_matching(&mut ev_a, |e| {
            matches!(e, AgentEvent::MemberJoin { member } if member.name != "a").then_some(())
        })
        .await;
    }
    let members = ha.members().await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(members[0].local && members[0].name == "a");
    let b_seen = members.iter().find(|m| m.name == "b").unwrap();
    assert_eq!(b_seen.tags["role"], "backend");
    assert_eq!(b_seen.addr, b.local_addr());

    // Tags change at run time and reach the others, and b's own handlers, as an update.
    let mut own_events = hb.events();
    let tags = hb
        .update_tags(vec![("port".into(), "3000".into())], vec![])
        .await
        .unwrap();
    assert_eq!(tags.get("port"), Some("3000"));
    let own = next_matching(&mut own_events, |e| match e {
        AgentEvent::MemberUpdate { member } => Some(member.clone()),
        _ => None,
    })
    .await;
    assert!(own.local && own.name == "b" && own.tags["port"] == "3000");
    let updated = next_matching(&mut ev_a, |e| match e {
        AgentEvent::MemberUpdate { member } if member.name == "b" => Some(member.clone()),
        _ => None,
    })
    .await;
    assert_eq!(updated.tags["port"], "3000");
    assert_eq!(hb.local().tags["port"], "3000");
    assert!(matches!(
        hb.update_tags(vec![("bad key".into(), "x".into())], vec![])
            .await,
        Err(HandleError::Tags(_))
    ));

    // A user event reaches everyone once, the sender included.
    ha.user_event("deploy", b"v2").await.unwrap();
    let got = next_matching(&mut ev_c, |e| match e {
        AgentEvent::User(u) => Some(u.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (got.origin.as_str(), got.name.as_str(), &got.payload[..]),
        ("a", "deploy", &b"v2"[..])
    );
    assert!(matches!(
        ha.user_event("", b"").await,
        Err(HandleError::UserEvent(_))
    ));

    // Under load a member can be suspected for a moment (and refute it): wait, bounded,
    // for all three alive rather than judging one snapshot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats = ha.stats().await.unwrap();
        if stats.members["alive"] == 3 || tokio::time::Instant::now() >= deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats.members["alive"], 3, "{:?}", stats.members);
    assert!(stats.protocol["datagrams_received"] > 0);

    // b leaves gracefully: left (not failed) for the others, and b stops.
    let outcome = hb.leave().await.unwrap();
    assert_eq!(outcome, LeaveOutcome::Complete);
    let left = next_matching(&mut ev_a, |e| match e {
        AgentEvent::MemberLeave { member } if member.name == "b" => Some(member.status),
        AgentEvent::MemberFailed { member } if member.name == "b" => Some(member.status),
        _ => None,
    })
    .await;
    assert_eq!(left, Status::Left);
    b.wait().await.expect("the agent stopped normally");
    assert!(!hb.is_running());
    assert_eq!(hb.members().await.unwrap_err(), HandleError::Stopped);
    assert!(
        hb.events().next().await.is_none(),
        "a stopped agent's stream is over"
    );

    // c crashes: failed for a.
    c.crash();
    let failed = next_matching(&mut ev_a, |e| match e {
        AgentEvent::MemberFailed { member } if member.name == "c" => Some(member.status),
        _ => None,
    })
    .await;
    assert_eq!(failed, Status::Failed);
    assert_eq!(a.shutdown().await, LeaveOutcome::Complete);
}

/// With a propagation delay, `leave` returns (and the agent stops) only that long after
/// the leave was gossiped, and the others have acted on it by then: whatever waits for the
/// agent's exit to stop its service stops it after the balancer let go (issue 14).
#[tokio::test(flavor = "current_thread")]
async fn a_leave_returns_only_after_the_propagation_delay() {
    let a = start("a", "balancer").await;
    let mut c = AgentConfig::new("b", "127.0.0.1:0".parse().unwrap());
    c.protocol = fast();
    c.leave_propagate_delay = Duration::from_millis(1500);
    let b = Agent::start(c).await.unwrap();
    let (ha, hb) = (a.handle(), b.handle());
    let (mut ev_a, mut ev_b) = (ha.events(), hb.events());
    hb.join([a.local_addr()]).await.unwrap();
    next_matching(&mut ev_b, |e| {
        matches!(e, AgentEvent::Joined { .. }).then_some(())
    })
    .await;
    next_matching(&mut ev_a, |e| match e {
        AgentEvent::MemberJoin { member } if member.name == "b" => Some(()),
        _ => None,
    })
    .await;

    let asked = tokio::time::Instant::now();
    let leaving = tokio::spawn(async move { hb.leave().await });
    // The leave is gossiped (b reports it) well before leave() returns ...
    next_matching(&mut ev_b, |e| {
        matches!(e, AgentEvent::LeaveComplete).then_some(())
    })
    .await;
    let gossiped = tokio::time::Instant::now();
    next_matching(&mut ev_a, |e| match e {
        AgentEvent::MemberLeave { member } if member.name == "b" => Some(()),
        _ => None,
    })
    .await;
    assert!(!leaving.is_finished(), "a saw the leave before b stopped");
    // ... and it returns once the delay has passed since.
    let outcome = leaving.await.unwrap().unwrap();
    assert_eq!(outcome, LeaveOutcome::Complete);
    assert!(
        gossiped.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        gossiped.elapsed()
    );
    assert!(asked.elapsed() >= Duration::from_millis(1500));
    b.wait().await.expect("the agent stopped normally");
    assert_eq!(a.shutdown().await, LeaveOutcome::Complete);
}
