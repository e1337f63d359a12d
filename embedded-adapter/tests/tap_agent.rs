//! smoltcp on the host, over a tap device, gossiping with a `rumor agent` on the kernel's
//! network stack: the test creates a network namespace with a tap device in it (the kernel's
//! side of the tap has the agent's address), runs the agent in the namespace and a
//! `smol::Driver` node on a `TunTapInterface` in a thread that moved into the namespace.
//! They converge, a user event goes from the agent to the smoltcp node, and the smoltcp node
//! leaves gracefully and is seen as left. Everything is deleted afterwards.
//!
//! Needs root and `/dev/net/tun` (skipped, saying so, where either is missing; CI has
//! both) and `ip`. The agent is the workspace's `rumor` binary (`$RUMOR_BIN`, or built by
//! cargo). Ignored by plain `cargo test`; `scripts/test` runs it with `--ignored`.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::netns::Netns;
use support::poll_until;
use support::tap_node::{TapNode, TapSettings};

/// The kernel's side of the tap (the agent) and the smoltcp node, inside the namespace.
const AGENT_IP: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 100);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 11);

#[test]
#[ignore = "creates a network namespace and a tap device; run by scripts/test with --ignored"]
fn smoltcp_on_a_tap_device_gossips_with_an_agent() {
    // Declared first, dropped last: the agent and the node stop before it goes.
    let mut ns = match Netns::create("tap") {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED smoltcp_on_a_tap_device_gossips_with_an_agent: {why}");
            return;
        }
    };
    ns.add_tap("tap0", None, Some(&format!("{AGENT_IP}/24")));
    let logs = tempfile::tempdir().unwrap();
    let node_addr = SocketAddr::from((NODE_IP, 7946));
    let agent = Agent::start(
        &ns,
        "agent",
        &SocketAddr::from((AGENT_IP, 7946)).to_string(),
        "127.0.0.1:7373",
        &[node_addr.to_string()],
        logs.path().join("agent.log"),
    );
    let node = TapNode::start(
        &ns,
        TapSettings {
            tap: "tap0".into(),
            name: "smoltcp".into(),
            ip: NODE_IP,
            seeds: vec![SocketAddr::from((AGENT_IP, 7946))],
        },
    );
    let show = |what: &str| {
        format!(
            "{what}\nsmoltcp node: {:?}, events {:?}, {:?}\nagent: {:?}\nagent log:\n{}",
            node.view(),
            node.events(),
            node.stats(),
            agent.members(),
            agent.log()
        )
    };

    let both_alive = |view: &std::collections::BTreeMap<String, String>| {
        view.len() == 2
            && ["agent", "smoltcp"]
                .iter()
                .all(|n| view.get(*n).map(String::as_str) == Some("alive"))
    };
    let start = Instant::now();
    let converged = poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
        (both_alive(&node.view()) && agent.view().is_some_and(|v| both_alive(&v))).then_some(())
    });
    assert!(converged.is_some(), "{}", show("no convergence in 30 s"));
    println!("smoltcp node and agent converged in {:?}", start.elapsed());
    let agent_view = agent.members().expect("the agent answers");
    let smol = agent_view.iter().find(|m| m.name == "smoltcp").unwrap();
    assert_eq!(smol.addr, node_addr.to_string());

    // A user event from the agent reaches the smoltcp node.
    assert!(agent.send_event("from-the-kernel"), "rumor event failed");
    let got = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        node.saw("user from-the-kernel").then_some(())
    });
    assert!(got.is_some(), "{}", show("the user event did not arrive"));

    // The smoltcp node leaves; the agent sees it left.
    node.leave();
    let left = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        let seen = agent.view()?.get("smoltcp").cloned();
        (node.saw("leave-complete") && seen.as_deref() == Some("left")).then_some(())
    });
    assert!(left.is_some(), "{}", show("the leave was not seen"));
    assert_eq!(node.stats().send_errors, 0);
    drop((node, agent));
}
