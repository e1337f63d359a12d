//! ICMP evidence in running agents (in process, on 127.0.0.1): a crashed agent's port is
//! closed, the kernel answers the others' pings with port unreachable, and they declare it
//! failed on that evidence; with the feature off, only suspicion timeouts do (issue 14).
//! How much sooner is measured by `scripts/detection-bench`, not here.

use std::time::Duration;

use rumor_core::{Config, Status};
use rumor_std::{Agent, AgentConfig, AgentEvent, EventStream};

async fn start(name: &str, icmp_evidence: bool) -> Agent {
    let mut c = AgentConfig::new(name, "127.0.0.1:0".parse().unwrap());
    c.protocol = Config::local();
    c.icmp_evidence = icmp_evidence;
    Agent::start(c).await.unwrap()
}

/// Waits (at most 60 s) for `events` to report `name` failed.
async fn failed(events: &mut EventStream, name: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.next().await.expect("the agent is running") {
                AgentEvent::MemberFailed { member } if member.name == name => return,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} not failed within 60 s"));
}

/// Four agents; the last one crashes. Returns the evidence the other three acted on.
async fn crash_one_of_four(icmp_evidence: bool) -> u64 {
    let agents = [
        start("a", icmp_evidence).await,
        start("b", icmp_evidence).await,
        start("c", icmp_evidence).await,
    ];
    let d = start("d", icmp_evidence).await;
    let seed = agents[0].local_addr();
    let mut streams: Vec<EventStream> = agents.iter().map(|a| a.handle().events()).collect();
    for a in agents.iter().skip(1).chain([&d]) {
        a.handle().join([seed]).await.unwrap();
    }
    for _ in 0..400 {
        let mut all = true;
        for a in &agents {
            let members = a.handle().members().await.unwrap();
            all &= members.iter().filter(|m| m.status == Status::Alive).count() == 4;
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.crash();
    for s in &mut streams {
        failed(s, "d").await;
    }
    let mut evidence = 0;
    for a in &agents {
        evidence += a.handle().stats().await.unwrap().protocol["unreachable_evidence"];
    }
    for a in agents {
        a.shutdown().await;
    }
    evidence
}

#[tokio::test(flavor = "current_thread")]
async fn a_crashed_agent_is_failed_on_icmp_evidence() {
    assert!(
        crash_one_of_four(true).await >= 1,
        "no ICMP evidence was taken"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn without_icmp_evidence_a_crash_is_still_detected_by_timeouts() {
    assert_eq!(crash_one_of_four(false).await, 0);
}
