//! The cluster test across network namespaces: the test builds a bridge in a namespace of
//! its own and one namespace per agent (veth into the bridge, own address), runs one agent
//! in each, and deletes every namespace afterwards, even on failure. Skipped, with a
//! message, only when this machine cannot create network namespaces (not root, or no
//! support).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::{Agent, Place, args, expect_status, views, wait_for};
use rustix::process::Signal;

/// Namespaces created by this test, deleted on drop (agents first, since they live in
/// them: declare the guard before the agents).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The test's private subnet: it exists only inside the namespaces below, which have no
/// route anywhere else.
fn addr_of(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, 77, k)
}

/// Creates the bridge namespace and `n` agent namespaces; `Err` when namespaces cannot be
/// created at all.
fn build(guard: &mut Namespaces, n: u8) -> Result<Vec<String>, String> {
    let tag = format!("rumor{}", std::process::id());
    let br = format!("{tag}-br");
    ip(&["netns", "add", &br])?;
    guard.0.push(br.clone());
    let setup = |guard: &mut Namespaces| -> Result<Vec<String>, String> {
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        let mut nodes = Vec::new();
        for k in 1..=n {
            let ns = format!("{tag}-n{k}");
            ip(&["netns", "add", &ns])?;
            guard.0.push(ns.clone());
            let veth = format!("v{k}");
            ip(&[
                "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &veth, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &veth, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", addr_of(k)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            nodes.push(ns);
        }
        Ok(nodes)
    };
    setup(guard)
        .map_err(|e| panic!("namespaces can be created but the network cannot be built: {e}"))
}

#[test]
fn cluster_across_network_namespaces() {
    let mut guard = Namespaces(Vec::new());
    let nodes = match build(&mut guard, 3) {
        Ok(n) => n,
        Err(e) => {
            println!(
                "SKIPPED cluster_across_network_namespaces: cannot create network namespaces ({e})"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let rpc: SocketAddr = "127.0.0.1:7373".parse().unwrap();
    let gossip = |k: u8| SocketAddr::from((addr_of(k), 7946));
    let seed = gossip(1).to_string();
    let start = |k: u8, extra: &[&str]| {
        Agent::start(
            dir.path(),
            &format!("n{k}"),
            gossip(k),
            rpc,
            Place::Netns(nodes[usize::from(k - 1)].clone()),
            &args(extra),
        )
    };
    let n1 = start(1, &["--tag", "role=balancer"]);
    let mut n2 = start(2, &["--join", &seed, "--tag", "role=backend"]);
    let mut n3 = start(3, &["--join", &seed, "--tag", "role=backend"]);

    let all = [&n1, &n2, &n3];
    let agreed = wait_for(Duration::from_secs(30), || {
        let v = views(&all);
        let first = v[0].clone()?;
        (first.len() == 3
            && first.iter().all(|(_, _, s)| s == "alive")
            && v.iter().all(|x| x.as_ref() == Some(&first)))
        .then_some(first)
    });
    let agreed =
        agreed.unwrap_or_else(|| panic!("no agreement across namespaces: {:?}", views(&all)));
    let addrs: Vec<&str> = agreed.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(
        addrs,
        ["10.213.77.1:7946", "10.213.77.2:7946", "10.213.77.3:7946"]
    );

    n3.kill9();
    expect_status(&[&n1, &n2], "n3", "failed", Duration::from_secs(60));
    n2.signal(Signal::TERM);
    assert!(
        n2.wait_exit(Duration::from_secs(20))
            .expect("n2 exits")
            .success()
    );
    expect_status(&[&n1], "n2", "left", Duration::from_secs(30));
    // Agents stop before the guard deletes their namespaces.
    drop((n1, n2, n3));
}
