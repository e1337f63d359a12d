//! `rumor demo`: a small cluster of in-process agents on loopback, and a load balancer
//! following it. It shows the member table converging, a node joining late, one crashing
//! (its task is dropped, no leave is sent) and another leaving gracefully, when each
//! survivor noticed, and node-1's rendered HAProxy backend changing with each step. With
//! `haproxy` on the PATH, a real HAProxy runs that config in front of one small web server
//! per backend node, and requests sent through it all along are counted per step.

mod balancer;
mod cluster;
mod traffic;
mod web;

use std::time::{Duration, Instant};

use rumor_core::Status;
use rumor_std::render::RenderTargets;

use self::balancer::{Balancer, haproxy_installed};
use self::cluster::{Cluster, Detection, demo_profile};
use self::traffic::{PhaseCount, Traffic, print_phase, print_phases};
use self::web::WebServer;
use super::{CliError, DemoArgs, runtime};

/// Longest wait for every survivor to declare the crashed node failed.
const CRASH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for every survivor to see the graceful leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests go on once a change is live in HAProxy, before the next step.
const HOLD: Duration = Duration::from_millis(1500);

/// Runs the demo on its own runtime; Ctrl-C ends it (HAProxy and the files go with it).
pub(crate) fn run(args: DemoArgs) -> Result<(), CliError> {
    let level = rumor_std::logging::parse_level(&args.log_level).map_err(CliError)?;
    if level != tracing_subscriber::filter::LevelFilter::OFF {
        rumor_std::logging::init(level).map_err(CliError)?;
    }
    runtime()?.block_on(async {
        tokio::select! {
            r = demo(usize::from(args.nodes), !args.no_haproxy) => r,
            _ = tokio::signal::ctrl_c() => Err(CliError("interrupted".into())),
        }
    })
}

/// What the membership part measured, for the summary.
struct Outcome {
    /// Until every first agent saw every other one.
    converged: Duration,
    /// Until every agent saw the late joiner.
    joined: Duration,
    /// The late joiner, which then crashes.
    crashed: usize,
    /// How the survivors saw the crash.
    crash: Detection,
    /// How many survivors should have seen it.
    crash_observers: usize,
    /// The node that leaves.
    leaver: usize,
    /// How the others saw the leave.
    leave: Detection,
    /// How many should have seen it.
    leave_observers: usize,
}

/// The web servers by node index (none for the balancer and for stopped nodes).
type WebServers = Vec<Option<WebServer>>;

/// The names of the nodes whose web server runs: the backends HAProxy should have.
fn serving(c: &Cluster, webs: &WebServers) -> Vec<String> {
    c.names
        .iter()
        .zip(webs)
        .filter(|(_, w)| w.is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

/// Lets requests run for [`HOLD`] and prints the phase's table with HAProxy's retries
/// (nothing without HAProxy), which it adds to `retried`.
async fn hold(traffic: Option<&Traffic>, lb: &mut Balancer, retried: &mut Vec<u64>) {
    if let Some(t) = traffic {
        tokio::time::sleep(HOLD).await;
        let retries = lb.retries().await.unwrap_or_default();
        print_phase(&t.current(), retries);
        retried.push(retries);
    }
}

/// Starts counting requests in a new phase, if requests are sent.
fn phase(traffic: Option<&Traffic>, name: &str) {
    if let Some(t) = traffic {
        t.phase(name);
    }
}

/// The whole demo with `n` agents, with a real HAProxy if `haproxy` and installed.
async fn demo(n: usize, haproxy: bool) -> Result<(), CliError> {
    let profile = demo_profile();
    println!(
        "rumor demo: {n} agents on 127.0.0.1, local profile with {} ms probes, {} ms probe timeout\n",
        profile.probe_interval.as_millis(),
        profile.probe_timeout.as_millis()
    );
    let haproxy = haproxy && haproxy_installed();
    let mut lb = Balancer::start(haproxy).await?;
    match lb.frontend() {
        Some(f) => println!(
            "HAProxy (master-worker, runtime API) listens on http://{f}; node-1 (role=balancer) \
             renders its backend and applies each change; requests go through it all along\n"
        ),
        None => println!(
            "haproxy is not on the PATH (or --no-haproxy): showing the rendered config only. \
             Install it (`apt-get install haproxy`) to see a real HAProxy follow the cluster.\n"
        ),
    }
    let mut c = Cluster::new(profile);
    let mut webs: WebServers = vec![None];
    c.add(None).await?;
    let render = RenderTargets::start(&c.handles[0], vec![lb.target()], None);
    for i in 2..n {
        let web = WebServer::start(&format!("node-{i}")).await?;
        c.add(Some(web.addr.port())).await?;
        webs.push(Some(web));
    }
    println!("{} agents join through node-1\n", n - 2);
    let converged = c.converge().await?;
    println!(
        "\nconverged in {:.2} s; node-1's member table:\n",
        converged.as_secs_f64()
    );
    c.print_table(0).await;
    println!();
    lb.follow(&serving(&c, &webs), Instant::now()).await?;
    let mut retried = Vec::new();
    let _ = lb.retries().await;
    let traffic = lb
        .frontend()
        .map(|f| Traffic::start(f, &format!("{} backends", n - 2)));
    hold(traffic.as_ref(), &mut lb, &mut retried).await;

    let joiner = n - 1;
    let name = format!("node-{n}");
    println!();
    phase(traffic.as_ref(), &format!("{name} joins"));
    c.say(&format!("{name} starts (web server, then agent) and joins"));
    let join_at = Instant::now();
    let web = WebServer::start(&name).await?;
    c.add(Some(web.addr.port())).await?;
    webs.push(Some(web));
    let joined = c.converge().await?;
    lb.follow(&serving(&c, &webs), join_at).await?;
    hold(traffic.as_ref(), &mut lb, &mut retried).await;

    let crashed = joiner;
    println!();
    phase(traffic.as_ref(), &format!("{name} crashes"));
    c.say(&format!(
        "crashing {name}: its agent's task is dropped (no leave is sent) and its web server stops"
    ));
    let crash_at = Instant::now();
    c.crash(crashed);
    webs[crashed] = None;
    let survivors: Vec<usize> = (0..n).filter(|i| *i != crashed).collect();
    let crash = c
        .wait_for(crashed, Status::Failed, &survivors, crash_at, CRASH_TIMEOUT)
        .await;
    lb.follow(&serving(&c, &webs), crash_at).await?;
    hold(traffic.as_ref(), &mut lb, &mut retried).await;

    let leaver = n - 2;
    let leaver_name = c.names[leaver].clone();
    println!();
    phase(traffic.as_ref(), &format!("{leaver_name} leaves"));
    c.say(&format!("{leaver_name} leaves gracefully"));
    let leave_at = Instant::now();
    let leave_task = c.leave(leaver);
    let rest: Vec<usize> = survivors.iter().copied().filter(|i| *i != leaver).collect();
    let leave = c
        .wait_for(leaver, Status::Left, &rest, leave_at, LEAVE_TIMEOUT)
        .await;
    let still: Vec<String> = serving(&c, &webs)
        .into_iter()
        .filter(|s| *s != leaver_name)
        .collect();
    lb.follow(&still, leave_at).await?;
    let _ = leave_task.await;
    c.say(&format!(
        "{leaver_name}'s agent has stopped (1 s after its leave, as `rumor agent`): its web server stops"
    ));
    webs[leaver] = None;
    hold(traffic.as_ref(), &mut lb, &mut retried).await;

    println!("\nnode-1's member table at the end:\n");
    c.print_table(0).await;
    let outcome = Outcome {
        converged,
        joined,
        crashed,
        crash,
        crash_observers: survivors.len(),
        leaver,
        leave,
        leave_observers: rest.len(),
    };
    let ok = summary(&c, &outcome);
    if let Some(t) = traffic {
        traffic_summary(&t.finish(), &retried);
    }
    drop(render);
    c.stop().await;
    if ok {
        Ok(())
    } else {
        Err(CliError(
            "the demo did not see every detection it expected (see above)".into(),
        ))
    }
}

/// Prints the membership summary; true if every survivor saw what it should have.
fn summary(c: &Cluster, o: &Outcome) -> bool {
    println!("\nsummary");
    println!(
        "  convergence      every agent saw all {} first members alive after {:.2} s",
        c.names.len() - 1,
        o.converged.as_secs_f64()
    );
    println!(
        "  join of {:<8} every agent saw it alive after {:.2} s",
        c.names[o.crashed],
        o.joined.as_secs_f64()
    );
    let line = |what: &str, d: &Detection, observers: usize, status: Status| {
        let range = d
            .first_last()
            .map(|(f, l)| {
                format!(
                    ": first after {:.2} s, last after {:.2} s",
                    f.as_secs_f64(),
                    l.as_secs_f64()
                )
            })
            .unwrap_or_default();
        println!(
            "  {what:<16} marked {status} by {}/{observers} survivors{range}",
            d.times.len()
        );
        for (o, s) in &d.wrong {
            println!("  {:<16} {} saw it {s} instead", "", c.names[*o]);
        }
        d.times.len() == observers && d.wrong.is_empty()
    };
    let crash_ok = line(
        &format!("crash of {}", c.names[o.crashed]),
        &o.crash,
        o.crash_observers,
        Status::Failed,
    );
    let leave_ok = line(
        &format!("leave of {}", c.names[o.leaver]),
        &o.leave,
        o.leave_observers,
        Status::Left,
    );
    crash_ok && leave_ok
}

/// Prints the requests of every phase with HAProxy's retries, and what the failures mean.
fn traffic_summary(phases: &[PhaseCount], retried: &[u64]) {
    println!("\nrequests through HAProxy, one new connection each, per phase:\n");
    print_phases(phases, retried);
    let failed: u64 = phases.iter().map(|p| p.failed).sum();
    let sent: u64 = phases.iter().map(|p| p.answered() + p.failed).sum();
    println!("\n  {failed} of {sent} requests failed");
    for p in phases.iter().filter(|p| p.failed > 0) {
        println!("  {}: {}", p.name, p.errors.join("; "));
    }
    if retried.iter().any(|r| *r > 0) {
        println!(
            "  a request HAProxy sent to a server that was gone was retried on another one\n  \
             (`retries`, `option redispatch` and `retry-on` in the rendered backend)"
        );
    }
}
