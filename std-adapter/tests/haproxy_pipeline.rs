//! The apply pipeline against a real HAProxy (Debian's package) in master-worker mode, on
//! loopback: runtime API changes, SIGUSR2 reloads confirmed by a new worker, and failures
//! (template error, `haproxy -c` refusal, failed reload) that leave the live config and
//! the traffic untouched.

mod common;
mod lb;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb::{
    BACKEND_LINES, Backend, Haproxy, Traffic, assert_no_failed_requests, free_port, loopback_ip,
    prelude, print_phases, wait_for,
};
use rumor_core::Status;
use rumor_std::member::MemberInfo;
use rumor_std::render::{
    ApiReload, Applied, Applier, ApplyError, HaproxyBackend, Reload, RenderStats, Renderer,
    Selection, Target, TemplateRenderer, TemplateSource, staged_path,
};

/// The lab's members: the balancer itself and one member per backend, tagged
/// `role=backend port=<its port>`.
fn members(backends: &[&Backend]) -> Vec<MemberInfo> {
    let mut out = vec![MemberInfo {
        name: "ha".into(),
        addr: "127.0.0.1:7946".parse().unwrap(),
        status: Status::Alive,
        tags: [("role".to_owned(), "balancer".to_owned())].into(),
        incarnation: 0,
        local: true,
    }];
    for b in backends {
        out.push(MemberInfo {
            name: b.name.clone(),
            addr: SocketAddr::new(b.addr.ip(), 7946),
            status: Status::Alive,
            tags: [
                ("role".to_owned(), "backend".to_owned()),
                ("port".to_owned(), b.addr.port().to_string()),
            ]
            .into(),
            incarnation: 0,
            local: false,
        });
    }
    out
}

struct Lab {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ip: Ipv4Addr,
    frontend: SocketAddr,
    sock: PathBuf,
    pid_file: PathBuf,
    dest: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        lb::require_haproxy();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let ip = loopback_ip();
        Lab {
            frontend: SocketAddr::from((ip, free_port(ip))),
            sock: dir.join("admin.sock"),
            pid_file: dir.join("haproxy.pid"),
            dest: dir.join("haproxy.cfg"),
            ip,
            dir,
            _dir: tmp,
        }
    }

    fn haproxy_renderer(&self) -> Renderer {
        Renderer::Haproxy(HaproxyBackend {
            prelude: prelude(&self.sock, self.frontend),
            backend_lines: BACKEND_LINES.map(String::from).to_vec(),
            ..HaproxyBackend::default()
        })
    }

    fn target(&self, renderer: Renderer, reload: Reload) -> Target {
        Target {
            check: Some("haproxy -c -f {staged}".into()),
            reload,
            // Generous for a loaded machine: a successful command returns as soon as it is
            // done, so this only bounds a hung one.
            command_timeout: Duration::from_secs(30),
            ..Target::new(renderer, &self.dest)
        }
    }

    /// Renders the first file with no reload, then starts HAProxy on it.
    fn start(&self, renderer: Renderer, members: &[MemberInfo]) -> Haproxy {
        let mut first = Applier::new(self.target(renderer, Reload::None), Arc::default());
        assert!(matches!(first.apply(members), Ok(Applied::Changed { .. })));
        Haproxy::start(&self.dest, &self.pid_file, &self.sock)
    }

    /// An applier of the `haproxy` renderer through `haproxy`'s runtime API (backend
    /// `nodes`, servers with `check`, SIGUSR2 for other changes).
    fn runtime_api_applier(&self, haproxy: &Haproxy, stats: Arc<RenderStats>) -> Applier {
        let reload = Reload::RuntimeApi(ApiReload {
            api: haproxy.api(),
            backend: "nodes".into(),
            server_options: "check".into(),
            drain_timeout: Duration::from_secs(10),
            pid_file: Some(self.pid_file.clone()),
        });
        Applier::new(self.target(self.haproxy_renderer(), reload), stats)
    }

    fn live(&self) -> String {
        std::fs::read_to_string(&self.dest).unwrap()
    }
}

fn served_by_all(frontend: SocketAddr, names: &[&str]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..(names.len() * 4) {
        if let Ok(b) = lb::get(frontend) {
            seen.insert(b);
        }
    }
    names.iter().all(|n| seen.contains(*n)) && seen.len() == names.len()
}

#[test]
fn haproxy_runtime_api_follows_membership_without_failed_requests() {
    let lab = Lab::new();
    let (b1, b2, b3) = (
        Backend::start("web-1", lab.ip),
        Backend::start("web-2", lab.ip),
        Backend::start("web-3", lab.ip),
    );
    let haproxy = lab.start(lab.haproxy_renderer(), &members(&[&b1]));
    let stats = Arc::new(RenderStats::default());
    let mut applier = lab.runtime_api_applier(&haproxy, stats.clone());
    let traffic = Traffic::start(
        lab.frontend,
        Duration::from_millis(5),
        Duration::from_secs(120),
    );
    assert!(
        wait_for(Duration::from_secs(10), || served_by_all(
            lab.frontend,
            &["web-1"]
        )
        .then_some(()))
        .is_some()
    );
    let worker = haproxy.api().worker_pid().unwrap();

    traffic.phase("runtime API: web-2 and web-3 join");
    let applied = applier.apply(&members(&[&b1, &b2, &b3])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. } if reload.contains("added [\"web-2\", \"web-3\"]")),
        "{applied:?}"
    );
    assert_eq!(
        haproxy.in_rotation("nodes").unwrap(),
        ["web-1", "web-2", "web-3"]
    );
    assert!(served_by_all(lab.frontend, &["web-1", "web-2", "web-3"]));
    assert_eq!(
        haproxy.api().worker_pid().unwrap(),
        worker,
        "no reload for server changes"
    );

    traffic.phase("runtime API: web-1 leaves");
    let applied = applier.apply(&members(&[&b2, &b3])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. } if reload.contains("deleted [\"web-1\"]")),
        "{applied:?}"
    );
    assert_eq!(haproxy.in_rotation("nodes").unwrap(), ["web-2", "web-3"]);
    let hits = b1.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(served_by_all(lab.frontend, &["web-2", "web-3"]));
    assert_eq!(
        b1.hits.load(std::sync::atomic::Ordering::Relaxed),
        hits,
        "web-1 is out of rotation"
    );
    let live = lab.live();
    assert!(
        !live.contains("web-1") && live.contains("server web-2") && live.contains("server web-3"),
        "{live}"
    );

    traffic.phase("unchanged membership");
    assert_eq!(
        applier.apply(&members(&[&b3, &b2])).unwrap(),
        Applied::Unchanged
    );

    traffic.phase("prelude change: SIGUSR2 reload");
    let mut renderer = lab.haproxy_renderer();
    if let Renderer::Haproxy(h) = &mut renderer {
        h.backend_lines.push("retries 2".into());
    }
    let reload = applier.target().reload.clone();
    let mut applier = Applier::new(lab.target(renderer, reload), stats.clone());
    let applied = applier.apply(&members(&[&b2, &b3])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. } if reload.contains("reloaded: worker")),
        "{applied:?}"
    );
    assert_ne!(haproxy.api().worker_pid().unwrap(), worker);
    assert_eq!(haproxy.in_rotation("nodes").unwrap(), ["web-2", "web-3"]);
    assert!(served_by_all(lab.frontend, &["web-2", "web-3"]));

    let phases = traffic.finish();
    print_phases(&phases);
    assert_no_failed_requests(&phases, |_| false);
    let counts = stats.counts();
    assert_eq!(
        (counts.applied, counts.unchanged, counts.failures()),
        (3, 1, 0),
        "{counts:?}"
    );
}

/// A crashed backend leaves the requests bound to it waiting to retry their refused
/// connections. Debian 12's HAProxy (2.6.12) frees a server under such streams on
/// `del server` (a use after free that crashes its worker now and then), so the runtime
/// API sync must wait for them to end before deleting: every request that fails because
/// of the crash fails before the deletion, none after. Three clients, three crashes.
#[test]
fn haproxy_runtime_api_deletes_a_crashed_server_only_once_no_request_is_bound_to_it() {
    let lab = Lab::new();
    let b1 = Backend::start("web-1", lab.ip);
    let haproxy = lab.start(lab.haproxy_renderer(), &members(&[&b1]));
    let mut applier = lab.runtime_api_applier(&haproxy, Arc::default());
    let worker = haproxy.api().worker_pid().unwrap();
    let clients: Vec<Traffic> = (0..3)
        .map(|_| {
            Traffic::start(
                lab.frontend,
                Duration::from_millis(5),
                Duration::from_secs(120),
            )
        })
        .collect();

    for name in ["web-2", "web-3", "web-4"] {
        let mut crashing = Backend::start(name, lab.ip);
        applier.apply(&members(&[&b1, &crashing])).unwrap();
        assert!(served_by_all(lab.frontend, &["web-1", name]));

        clients
            .iter()
            .for_each(|c| c.phase(&format!("{name} crashes")));
        crashing.stop();
        let bound = wait_for(Duration::from_secs(20), || {
            let streams = haproxy.api().streams("nodes").ok()?;
            (streams.get(name).copied().unwrap_or(0) > 0).then_some(())
        });
        assert!(
            bound.is_some(),
            "no request got bound to the crashed {name}"
        );
        let applied = applier.apply(&members(&[&b1])).unwrap();
        let deleted = Instant::now();
        assert!(
            matches!(&applied, Applied::Changed { reload, .. } if reload.contains(&format!("deleted [\"{name}\"]"))),
            "{applied:?}"
        );
        // A request still bound at the deletion would fail when its retry timer fires,
        // up to a second later; let every client go on well past that.
        let served = wait_for(Duration::from_secs(20), || {
            clients.iter().all(|c| c.current().ok >= 150).then_some(())
        });
        assert!(
            served.is_some(),
            "traffic stalled after the deletion of {name}"
        );
        for c in &clients {
            let phase = c.current();
            // The client records a failure a moment after HAProxy ends the stream.
            let grace = Duration::from_millis(250);
            assert!(
                phase.last_failure.is_none_or(|t| t < deleted + grace),
                "a request bound to {name} outlived its deletion by {:?}: {phase:?}",
                phase.last_failure.map(|t| t - deleted)
            );
        }
        assert_eq!(
            haproxy.api().worker_pid().ok(),
            Some(worker),
            "{}",
            haproxy.log_text()
        );
        assert_eq!(haproxy.in_rotation("nodes").unwrap(), ["web-1"]);
    }
    for c in clients {
        let phases = c.finish();
        print_phases(&phases);
        assert_no_failed_requests(&phases, |p| p.ends_with("crashes"));
    }
}

#[test]
fn haproxy_template_error_and_check_failure_leave_config_and_traffic_untouched() {
    let lab = Lab::new();
    let (b1, b2) = (
        Backend::start("web-1", lab.ip),
        Backend::start("web-2", lab.ip),
    );
    let template = lab.dir.join("haproxy.cfg.hb");
    let good = format!(
        "{}backend nodes\n    balance roundrobin\n    option httpchk HEAD /\n\
         {{{{#each members}}}}\n    server {{{{name}}}} {{{{addr}}}}:{{{{port}}}} check\n{{{{/each}}}}\n",
        prelude(&lab.sock, lab.frontend)
    );
    std::fs::write(&template, &good).unwrap();
    let renderer = Renderer::Template(TemplateRenderer {
        selection: Selection::backends(),
        source: TemplateSource::File(template.clone()),
        strict: true,
    });
    let haproxy = lab.start(renderer.clone(), &members(&[&b1]));
    let stats = Arc::new(RenderStats::default());
    let reload = Reload::Signal {
        pid_file: lab.pid_file.clone(),
        confirm: Some(haproxy.api()),
    };
    let mut applier = Applier::new(lab.target(renderer, reload), stats.clone());
    let traffic = Traffic::start(
        lab.frontend,
        Duration::from_millis(5),
        Duration::from_secs(120),
    );
    assert!(
        wait_for(Duration::from_secs(10), || served_by_all(
            lab.frontend,
            &["web-1"]
        )
        .then_some(()))
        .is_some()
    );
    let before = lab.live();
    let worker = haproxy.api().worker_pid().unwrap();

    traffic.phase("template syntax error");
    std::fs::write(&template, good.replace("{{/each}}", "")).unwrap();
    let err = applier.apply(&members(&[&b1, &b2])).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Render(e) if e.contains("template")),
        "{err}"
    );
    assert_live_untouched(&lab, &haproxy, &before, worker);

    traffic.phase("config refused by haproxy -c");
    std::fs::write(
        &template,
        good.replace(
            "balance roundrobin",
            "balance roundrobin\n    no-such-keyword 1",
        ),
    )
    .unwrap();
    let err = applier.apply(&members(&[&b1, &b2])).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Check(e) if e.contains("no-such-keyword")),
        "{err}"
    );
    assert_live_untouched(&lab, &haproxy, &before, worker);
    assert!(served_by_all(lab.frontend, &["web-1"]));

    traffic.phase("template fixed: SIGUSR2 reload");
    std::fs::write(&template, &good).unwrap();
    let applied = applier.apply(&members(&[&b1, &b2])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. } if reload.contains("reloaded")),
        "{applied:?}"
    );
    assert_ne!(haproxy.api().worker_pid().unwrap(), worker);
    assert!(served_by_all(lab.frontend, &["web-1", "web-2"]));

    let phases = traffic.finish();
    print_phases(&phases);
    assert_no_failed_requests(&phases, |_| false);
    let counts = stats.counts();
    assert_eq!(
        (
            counts.render_failures,
            counts.check_failures,
            counts.applied
        ),
        (1, 1, 1),
        "{counts:?}"
    );
    assert_eq!(counts.last_error, None, "cleared by the success");
}

#[test]
fn haproxy_failed_reload_restores_the_previous_file() {
    let lab = Lab::new();
    let b1 = Backend::start("web-1", lab.ip);
    let haproxy = lab.start(lab.haproxy_renderer(), &members(&[&b1]));
    let before = lab.live();
    let worker = haproxy.api().worker_pid().unwrap();
    // No check command: HAProxy itself refuses the file at reload, keeps its old worker,
    // and the confirmation on the stats socket notices.
    let mut renderer = lab.haproxy_renderer();
    if let Renderer::Haproxy(h) = &mut renderer {
        h.backend_lines.push("no-such-keyword 1".into());
    }
    let stats = Arc::new(RenderStats::default());
    let target = Target {
        check: None,
        reload: Reload::Signal {
            pid_file: lab.pid_file.clone(),
            confirm: Some(haproxy.api()),
        },
        // The failure is judged by this timeout: it must outlast the master's re-exec on a
        // loaded machine, or the master would read the restored (good) file instead.
        command_timeout: Duration::from_secs(8),
        ..Target::new(renderer, &lab.dest)
    };
    let mut applier = Applier::new(target, stats.clone());
    let err = applier.apply(&members(&[&b1])).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Reload(e) if e.contains("did not start a new worker")),
        "{err}"
    );
    assert_live_untouched(&lab, &haproxy, &before, worker);
    assert!(served_by_all(lab.frontend, &["web-1"]));
    assert_eq!(stats.counts().reload_failures, 1);
    assert!(
        haproxy.log_mentions("no-such-keyword"),
        "{}",
        haproxy.log_text()
    );
}

/// The live file is the one from before, no staged file is left, the worker is the same.
fn assert_live_untouched(lab: &Lab, haproxy: &Haproxy, before: &str, worker: u32) {
    assert_eq!(lab.live(), before, "the live file changed");
    assert!(
        !Path::new(&staged_path(&lab.dest)).exists(),
        "a staged file was left behind"
    );
    assert_eq!(
        haproxy.api().worker_pid().unwrap(),
        worker,
        "HAProxy was reloaded"
    );
}

/// The runtime API manages the `server` lines the file has in its backend, not the member
/// selection: a static backup server written in the template stays; a server whose
/// options changed, which the runtime API cannot apply, gets a reload; and a change
/// HAProxy refuses at runtime (`add server` under `balance source`, a static algorithm)
/// gets a reload instead of failing for ever. Before, the static server was drained and
/// deleted, the option change never reached HAProxy, and the refusal was retried forever.
#[test]
fn haproxy_runtime_api_keeps_static_servers_and_reloads_what_it_cannot_apply() {
    let lab = Lab::new();
    let (fallback, b1, b2) = (
        Backend::start("fallback", lab.ip),
        Backend::start("web-1", lab.ip),
        Backend::start("web-2", lab.ip),
    );
    // The template is read again at every render: each phase rewrites it.
    let template = lab.dir.join("haproxy.cfg.hb");
    let write_template = |balance: &str, options: &str| {
        let text = format!(
            "{}backend nodes\n    balance {balance}\n    server fallback {} backup\n\
             {{{{#each members}}}}    server {{{{server}}}} {{{{address}}}} {options}\n{{{{/each}}}}",
            prelude(&lab.sock, lab.frontend),
            fallback.addr,
        );
        std::fs::write(&template, text).unwrap();
    };
    write_template("roundrobin", "check");
    let renderer = Renderer::Template(TemplateRenderer {
        selection: Selection::backends(),
        source: TemplateSource::File(template.clone()),
        strict: true,
    });
    let haproxy = lab.start(renderer.clone(), &members(&[&b1]));
    let reload = Reload::RuntimeApi(ApiReload {
        api: haproxy.api(),
        backend: "nodes".into(),
        server_options: String::new(),
        drain_timeout: Duration::from_secs(5),
        pid_file: Some(lab.pid_file.clone()),
    });
    let mut applier = Applier::new(lab.target(renderer, reload), Arc::default());
    // The applier's first render is the running file: it reloads once to be sure.
    applier.apply(&members(&[&b1])).expect("the first render");
    let api = haproxy.api();
    let settled = |before: u32| {
        wait_for(Duration::from_secs(10), || {
            api.worker_pid().ok().filter(|w| *w != before)
        })
        .unwrap_or(before)
    };
    let worker = api.worker_pid().unwrap();

    // web-2 joins: added at runtime; the static backup server is left alone.
    let applied = applier.apply(&members(&[&b1, &b2])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. }
            if reload.contains("added [\"web-2\"]") && reload.contains("deleted []")),
        "{applied:?}"
    );
    let live: Vec<String> = api
        .servers("nodes")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(live, ["fallback", "web-1", "web-2"]);
    assert_eq!(api.worker_pid().unwrap(), worker, "no reload");

    // The servers' options change: only a reload applies them.
    write_template("roundrobin", "check weight 50");
    let applied = applier.apply(&members(&[&b1, &b2])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. } if reload.contains("reloaded: worker")),
        "{applied:?}"
    );
    let worker = settled(worker);

    // A static algorithm (a reload), then a join: HAProxy refuses `add server`, and rumor
    // reloads instead.
    write_template("source", "check weight 50");
    applier.apply(&members(&[&b1])).unwrap();
    let worker = settled(worker);
    let applied = applier.apply(&members(&[&b1, &b2])).unwrap();
    assert!(
        matches!(&applied, Applied::Changed { reload, .. }
            if reload.contains("runtime API refused") && reload.contains("reloaded instead")),
        "{applied:?}"
    );
    assert_ne!(settled(worker), worker);
    assert!(lab.live().contains("server web-2"));
}

/// Requests sent through HAProxy right after one of three backends' servers died (before
/// a health check noticed), with the `haproxy` renderer's backend lines and server options
/// as given: how many of `REQUESTS` failed.
fn failed_after_a_server_died(backend_lines: &[&str], server_options: &str) -> usize {
    const REQUESTS: usize = 30;
    let lab = Lab::new();
    let mut backends = [
        Backend::start("web-1", lab.ip),
        Backend::start("web-2", lab.ip),
        Backend::start("web-3", lab.ip),
    ];
    let renderer = Renderer::Haproxy(HaproxyBackend {
        prelude: prelude(&lab.sock, lab.frontend),
        backend_lines: backend_lines.iter().map(|l| (*l).to_owned()).collect(),
        server_options: server_options.to_owned(),
        ..HaproxyBackend::default()
    });
    let haproxy = lab.start(renderer, &members(&backends.iter().collect::<Vec<_>>()));
    let all = ["web-1", "web-2", "web-3"];
    let served = wait_for(Duration::from_secs(10), || {
        served_by_all(lab.frontend, &all).then_some(())
    });
    assert!(served.is_some(), "{}", haproxy.log_text());
    // web-2's server dies (connections refused); it stays in the config.
    backends[1].stop();
    let failed = (0..REQUESTS)
        .filter(|_| lb::get(lab.frontend).is_err())
        .count();
    haproxy.assert_no_worker_died();
    failed
}

/// The `haproxy` renderer's defaults retry a request that meets a dead server on another
/// one (`retries`, `option redispatch 1`, `retry-on conn-failure ...`): a crashed backend
/// costs no request even before a health check or the cluster removes it. With the lab's
/// backend lines (no redispatch) the first request round-robin sends to the dead server
/// is retried there, 1 s apart, and fails with a 503 after 3 s: what the defaults are for
/// (issue 14).
#[test]
fn haproxy_default_backend_retries_a_dead_server_on_another() {
    let defaults = rumor_std::render::DEFAULT_BACKEND_LINES;
    let failed = failed_after_a_server_died(&defaults, rumor_std::render::DEFAULT_SERVER_OPTIONS);
    assert_eq!(failed, 0, "with the renderer's defaults");
    let lab_lines = failed_after_a_server_died(&BACKEND_LINES, "check");
    assert!(lab_lines > 0, "without retries some requests fail");
    println!("failed requests right after a server died: defaults 0, lab's lines {lab_lines}");
}
