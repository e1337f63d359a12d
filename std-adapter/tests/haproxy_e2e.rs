//! The end-to-end test of issue 4 with a real HAProxy, all on loopback: three HTTP
//! backends, each with its own `rumor agent` tagged `role=backend port=<its port>`; an
//! HAProxy in master-worker mode whose agent renders the lab's template and applies
//! changes through the runtime API (SIGUSR2 for other changes); an HTTP client sending
//! requests through HAProxy throughout. A fourth backend joins, one leaves with SIGTERM,
//! a fifth runs its web server as its agent's child and is stopped by a SIGTERM to the
//! agent alone (it must be drained before its server stops), one crashes (`kill -9` of its agent and its server), then a template error and a
//! config refused by `haproxy -c`. Failed requests are counted and printed per phase,
//! with the time from the crash to the removal from rotation.

mod common;
mod lb;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, Place, args, free_ports, loopback_ip};
use lb::{Backend, Haproxy, Traffic, assert_no_failed_requests, prelude, print_phases, wait_for};
use rumor_std::render::{Renderer, Selection, TemplateRenderer, TemplateSource};

/// The lab's `haproxy.cfg.hb`, with the port from each member's tag.
fn template(sock: &Path, frontend: SocketAddr) -> String {
    format!(
        "{}backend nodes\n    option httpchk HEAD /\n    balance roundrobin\n\
         {{{{#each members}}}}\n    server {{{{name}}}} {{{{address}}}} check\n{{{{/each}}}}\n",
        prelude(sock, frontend)
    )
}

/// A backend node: an HTTP server and its agent, on an address of their own.
struct Node {
    http: Backend,
    agent: Agent,
}

impl Node {
    fn start(dir: &Path, name: &str, seed: SocketAddr) -> Node {
        let ip = loopback_ip();
        let http = Backend::start(name, ip);
        let agent = backend_agent(dir, name, ip, http.addr.port(), seed, &[]);
        Node { http, agent }
    }
}

/// The agent of a backend on `ip` serving on `port`, joined to `seed`, with `extra`
/// arguments at the end.
fn backend_agent(
    dir: &Path,
    name: &str,
    ip: Ipv4Addr,
    port: u16,
    seed: SocketAddr,
    extra: &[&str],
) -> Agent {
    let (gossip, rpc) = free_ports(ip);
    let mut a = args(&["--tag", "role=backend", "--tag", &format!("port={port}")]);
    a.extend(args(&["--join", &seed.to_string()]));
    a.extend(args(extra));
    Agent::start(
        dir,
        name,
        SocketAddr::from((ip, gossip)),
        SocketAddr::from((ip, rpc)),
        Place::Host,
        &a,
    )
}

/// A backend whose agent runs the lab's web application as its child (`-- CMD`).
fn child_mode_backend(dir: &Path, name: &str, seed: SocketAddr) -> Agent {
    let ip = loopback_ip();
    let port = lb::free_port(ip);
    let bind = format!("{ip}:{port}");
    let webapp = env!("CARGO_BIN_EXE_rumor-lab-webapp");
    backend_agent(dir, name, ip, port, seed, &["--", webapp, &bind, name])
}

/// Waits until exactly `names` are in rotation; panics with the logs otherwise.
fn expect_rotation(haproxy: &Haproxy, ha: &Agent, names: &[&str], timeout: Duration) {
    let ok = wait_for(timeout, || {
        (haproxy.in_rotation("nodes")? == names).then_some(())
    });
    assert!(
        ok.is_some(),
        "rotation is {:?}, expected {names:?}\n--- ha agent log:\n{}\n--- haproxy log:\n{}",
        haproxy.in_rotation("nodes"),
        ha.log_text(),
        haproxy.log_text()
    );
}

/// Sends requests until each of `names` answered one (at most 200); on failure, says
/// which backends answered how often and the first errors.
fn all_serve(frontend: SocketAddr, names: &[&str]) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    let mut errors = Vec::new();
    for _ in 0..200 {
        match lb::get(frontend) {
            Ok(b) => *seen.entry(b).or_default() += 1,
            Err(e) if errors.len() < 5 => errors.push(e),
            Err(_) => {}
        }
        if names.iter().all(|n| seen.contains_key(*n)) {
            return Ok(());
        }
    }
    Err(format!(
        "not every one of {names:?} answered 200 requests: answers {seen:?}, errors {errors:?}"
    ))
}

/// [`all_serve`], or a panic with HAProxy's view of the backend and its log.
fn expect_all_serve(haproxy: &Haproxy, frontend: SocketAddr, names: &[&str]) {
    if let Err(e) = all_serve(frontend, names) {
        panic!(
            "{e}\n--- servers: {:?}\n--- haproxy log:\n{}",
            haproxy.api().servers("nodes"),
            haproxy.log_text()
        );
    }
}

/// Changes a tag of `node`: a member-update, so the balancer renders again.
fn touch(node: &Agent, value: &str) {
    let out = node.client(&["tags", "--set", &format!("touch={value}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn haproxy_end_to_end_backends_join_leave_and_crash_behind_a_real_haproxy() {
    lb::require_haproxy();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ha_ip: Ipv4Addr = loopback_ip();
    let frontend = SocketAddr::from((ha_ip, lb::free_port(ha_ip)));
    let (sock, pid_file, cfg, hb) = (
        dir.join("admin.sock"),
        dir.join("haproxy.pid"),
        dir.join("haproxy.cfg"),
        dir.join("haproxy.cfg.hb"),
    );
    let good = template(&sock, frontend);
    std::fs::write(&hb, &good).unwrap();
    // HAProxy starts on the template rendered for an empty cluster, as a fresh lab would.
    let empty = Renderer::Template(TemplateRenderer {
        selection: Selection::backends(),
        source: TemplateSource::File(hb.clone()),
        strict: true,
    })
    .render_members(&[])
    .unwrap();
    std::fs::write(&cfg, empty).unwrap();
    let haproxy = Haproxy::start(&cfg, &pid_file, &sock);

    let render = format!(
        "{{ renderer = \"template\", dest = \"{}\", template = \"{}\", tags = [\"role=backend\"], \
         check = \"haproxy -c -f {{staged}}\", reload = \"runtime-api\", socket = \"{}\", \
         pid_file = \"{}\", drain_timeout = \"5s\", coalesce_quiet = \"200ms\", coalesce_max = \"1s\" }}",
        cfg.display(),
        hb.display(),
        sock.display(),
        pid_file.display()
    );
    let (g, r) = free_ports(ha_ip);
    let ha = Agent::start(
        dir,
        "ha",
        SocketAddr::from((ha_ip, g)),
        SocketAddr::from((ha_ip, r)),
        Place::Host,
        &args(&["--tag", "role=balancer", "--render", &render]),
    );

    let mut nodes: Vec<Node> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|n| Node::start(dir, n, ha.gossip))
        .collect();
    let limit = Duration::from_secs(40);
    expect_rotation(&haproxy, &ha, &["web-1", "web-2", "web-3"], limit);
    expect_all_serve(&haproxy, frontend, &["web-1", "web-2", "web-3"]);
    let once = ha.client(&["render", "--once", "--render", &render]);
    assert!(once.status.success());
    assert_eq!(
        String::from_utf8_lossy(&once.stdout),
        std::fs::read_to_string(&cfg).unwrap()
    );

    let traffic = Traffic::start(
        frontend,
        Duration::from_millis(10),
        Duration::from_secs(240),
    );
    traffic.phase("3 backends in rotation");
    std::thread::sleep(Duration::from_secs(1));

    traffic.phase("web-4 joins (runtime API)");
    nodes.push(Node::start(dir, "web-4", ha.gossip));
    expect_rotation(&haproxy, &ha, &["web-1", "web-2", "web-3", "web-4"], limit);
    expect_all_serve(&haproxy, frontend, &["web-1", "web-2", "web-3", "web-4"]);

    traffic.phase("web-2 SIGTERM (runtime API)");
    nodes[1].agent.signal(rustix::process::Signal::TERM);
    assert!(
        nodes[1].agent.wait_exit(limit).is_some(),
        "web-2's agent exits after leaving"
    );
    expect_rotation(&haproxy, &ha, &["web-1", "web-3", "web-4"], limit);
    // Out of rotation: its server can go now.
    nodes[1].http.stop();
    std::thread::sleep(Duration::from_secs(1));
    let graceful = traffic.current();

    traffic.phase("web-5 joins, its web server the agent's child");
    let mut web5 = child_mode_backend(dir, "web-5", ha.gossip);
    let with_web5 = ["web-1", "web-3", "web-4", "web-5"];
    expect_rotation(&haproxy, &ha, &with_web5, limit);
    traffic.phase("web-5 SIGTERM to the agent only (drained, then stopped)");
    web5.signal(rustix::process::Signal::TERM);
    let status = web5.wait_exit(limit);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "web-5 exits 0: its web server ended by the SIGTERM passed on to it:\n{}",
        web5.log_text()
    );
    expect_rotation(&haproxy, &ha, &["web-1", "web-3", "web-4"], limit);
    std::thread::sleep(Duration::from_secs(1));

    traffic.phase("web-3 kill -9 (agent and server)");
    let crash = Instant::now();
    nodes[2].agent.kill9();
    nodes[2].http.stop();
    let mut check_down = None;
    let removed = wait_for(Duration::from_secs(60), || {
        let servers = haproxy.api().servers("nodes").ok()?;
        let web3 = servers.iter().find(|s| s.name == "web-3");
        if check_down.is_none() && web3.is_some_and(|s| !s.up) {
            check_down = Some(crash.elapsed());
        }
        web3.is_none_or(|s| s.maint).then(|| crash.elapsed())
    })
    .unwrap_or_else(|| panic!("web-3 never left the rotation:\n{}", ha.log_text()));
    expect_rotation(&haproxy, &ha, &["web-1", "web-4"], limit);
    std::thread::sleep(Duration::from_secs(1));

    traffic.phase("template error");
    let live = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&hb, good.replace("{{/each}}", "")).unwrap();
    touch(&nodes[0].agent, "1");
    let logged = wait_for(limit, || {
        ha.log_text()
            .contains("render failed: template")
            .then_some(())
    });
    assert!(
        logged.is_some(),
        "the template error is logged:\n{}",
        ha.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        live,
        "live config untouched"
    );
    expect_all_serve(&haproxy, frontend, &["web-1", "web-4"]);

    traffic.phase("config refused by haproxy -c");
    let worker = haproxy.api().worker_pid().unwrap();
    std::fs::write(
        &hb,
        good.replace(
            "balance roundrobin",
            "balance roundrobin\n    no-such-keyword 1",
        ),
    )
    .unwrap();
    touch(&nodes[0].agent, "2");
    let logged = wait_for(limit, || {
        ha.log_text().contains("check failed").then_some(())
    });
    assert!(
        logged.is_some(),
        "the check failure is logged:\n{}",
        ha.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        live,
        "live config untouched"
    );
    assert_eq!(haproxy.api().worker_pid().unwrap(), worker, "no reload");
    expect_all_serve(&haproxy, frontend, &["web-1", "web-4"]);

    traffic.phase("template fixed: SIGUSR2 reload");
    std::fs::write(
        &hb,
        good.replace("backend nodes\n", "backend nodes\n    # fixed\n"),
    )
    .unwrap();
    let fixed = wait_for(limit, || {
        std::fs::read_to_string(&cfg)
            .ok()?
            .contains("# fixed")
            .then_some(())
    });
    assert!(
        fixed.is_some(),
        "a retry applies the fixed template:\n{}",
        ha.log_text()
    );
    let reloaded = wait_for(limit, || {
        (haproxy.api().worker_pid().ok()? != worker).then_some(())
    });
    assert!(
        reloaded.is_some(),
        "HAProxy reloaded:\n{}",
        haproxy.log_text()
    );
    expect_rotation(&haproxy, &ha, &["web-1", "web-4"], limit);
    expect_all_serve(&haproxy, frontend, &["web-1", "web-4"]);

    // `rumor info` counts what happened to the target, once the fixed template's apply
    // has cleared the last error (the counters are updated after the reload returns).
    let target = cfg.display().to_string();
    let cleared = wait_for(limit, || {
        let counts = ha.info()["render"][&target].clone();
        (counts.is_object() && counts["last_error"].is_null()).then_some(())
    });
    let info = ha.info();
    assert!(
        cleared.is_some(),
        "the last error was never cleared: {info}\n--- ha agent log:\n{}",
        ha.log_text()
    );
    let counts = &info["render"][&target];
    println!("render target counters (rumor info): {counts}");
    assert!(counts["render_failures"].as_u64() >= Some(1), "{info}");
    assert!(counts["check_failures"].as_u64() >= Some(1), "{info}");
    assert_eq!(counts["reload_failures"].as_u64(), Some(0), "{info}");
    assert!(counts["applied"].as_u64() >= Some(5), "{info}");
    assert!(
        counts["last_error"].is_null(),
        "cleared by the last success: {info}"
    );

    let phases = traffic.finish();
    println!("\nrequests through HAProxy per phase:");
    print_phases(&phases);
    println!(
        "kill -9 of web-3 -> out of rotation by rumor: {:.2} s (HAProxy's own check marked it down after {})",
        removed.as_secs_f64(),
        check_down.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
    );
    assert_no_failed_requests(&phases, |name| name.contains("kill -9"));
    haproxy.assert_no_worker_died();
    assert!(
        graceful.by_backend.contains_key("web-4"),
        "web-4 served: {graceful:?}"
    );
    let p = |name: &str| phases.iter().find(|p| p.name.starts_with(name)).unwrap();
    assert!(!p("template error").by_backend.contains_key("web-3"));
    assert!(p("web-2 SIGTERM").ok > 0 && p("template fixed").ok > 0);
}
