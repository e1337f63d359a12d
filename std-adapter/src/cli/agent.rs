//! `rumor agent`: run an agent until a signal or an RPC `leave`.

use std::future::Future;
use std::pin::pin;
use std::process::{ExitCode, ExitStatus};

use rumor_core::{Keyring, Plaintext};
use rumor_std::file_lock::FileLock;
use rumor_std::handler::Handlers;
use rumor_std::keyring::{KeyringFile, Startup};
use rumor_std::render::RenderTargets;
use rumor_std::rpc::RpcServer;
use rumor_std::service::{Service, reaper};
use rumor_std::{Agent, AgentConfig, Handle, LeaveOutcome, TaskFailed, logging, seeds, snapshot};
use rustix::process::Signal;
use tokio::signal::unix::{SignalKind, signal};

use super::settings::Settings;
use super::{AgentArgs, CliError, reload, runtime};

/// Longest wait for a join before the first render.
const RENDER_JOIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn run(args: AgentArgs) -> Result<ExitCode, CliError> {
    // Held until every signal the agent handles has its handler: as PID 1, a signal with
    // no handler would be dropped, and otherwise it would end the agent with its service
    // orphaned.
    let held = HeldSignals::hold()?;
    let settings = Settings::resolve(args.clone())?;
    let logs = logging::init(settings.log_level).map_err(CliError)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    runtime()?.block_on(serve(args, settings, logs, held))
}

async fn serve(
    args: AgentArgs,
    mut s: Settings,
    logs: logging::LogFeed,
    held: HeldSignals,
) -> Result<ExitCode, CliError> {
    // Signals first, so that one arriving during start-up is not lost (SIGHUP would
    // otherwise end the process). With a service, SIGQUIT stops it gracefully too (the
    // stop signal of some images, nginx's), and SIGUSR1, SIGUSR2 and SIGWINCH are
    // forwarded to it.
    let mut stops = StopSignals::listen(!s.command.is_empty())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut forwarded = match s.command.is_empty() {
        true => None,
        false => Some(Forwarded::listen()?),
    };
    if reaper::is_init() {
        tokio::spawn(reaper::reap_forever(signal(SignalKind::child())?));
    }
    held.release()?;
    // Files two agents must not share, claimed before anything touches them.
    let _state_locks = [(&s.snapshot, "snapshot"), (&s.keyring_file, "keyring file")]
        .into_iter()
        .filter_map(|(path, what)| path.as_ref().map(|p| FileLock::claim(p, what)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError)?;
    let mut render_locks = claim_render_dests(&s.renders, &[]).map_err(CliError)?;

    let mut config = AgentConfig::new(&s.name, s.bind);
    config.advertise = s.advertise;
    config.tags =
        rumor_std::tags_from_map(&s.tags).map_err(|e| CliError(format!("invalid tags: {e}")))?;
    config.protocol = s.profile.config();
    // Serf's -replay: the user events the seed replays on join reach the handlers.
    config.protocol.replay_user_events = s.replay;
    if let Some(max) = s.join_retry_max {
        let max =
            rumor_core::Duration::from_millis(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
        config.protocol.join_retry_max = max;
        config.protocol.join_retry_initial = config.protocol.join_retry_initial.min(max);
    }
    config.leave_timeout = s.leave_timeout;
    config.leave_propagate_delay = s.leave_propagate_delay;
    config.icmp_evidence = s.icmp_evidence;
    (config.keyring, config.plaintext, config.keyring_file) = startup_keyring(&s)?;
    let agent = Agent::start(config).await?;
    let handle = agent.handle();
    // Subscribed before the agent task first runs, so they see its own member-join.
    let mut handlers = Handlers::start(&handle, s.handlers.clone(), s.handler);
    // With seeds to join, the first render waits for the join (a little), so a restarted
    // balancer does not render a cluster of one.
    let join_grace = (!s.join.is_empty() || s.snapshot.is_some()).then_some(RENDER_JOIN_GRACE);
    let mut renders = RenderTargets::start(&handle, s.renders.clone(), join_grace);

    let rpc = match RpcServer::bind(
        &s.rpc_addr,
        handle.clone(),
        s.rpc_token.clone(),
        Some(logs.clone()),
        handlers.stats(),
    )
    .await
    {
        Ok(rpc) => rpc.with_render_stats(renders.shared_stats()),
        Err(e) => {
            // Nobody knows this node yet: stopping without a leave is right.
            agent.crash();
            return Err(CliError(format!(
                "cannot listen for RPC on {}: {e}",
                s.rpc_addr
            )));
        }
    };
    if !s.rpc_addr.is_local() && s.rpc_token.is_none() {
        tracing::warn!(rpc = %s.rpc_addr, "RPC is reachable beyond loopback with no --rpc-token");
    }
    tracing::info!(rpc = %s.rpc_addr, profile = ?s.profile, "RPC listening");
    let (stop_rpc, rpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let rpc_task = tokio::spawn(rpc.serve(async {
        let _ = rpc_stopped.await;
    }));

    // The service starts before the agent announces it.
    let mut service = match start_service(&s.command) {
        Ok(service) => service,
        Err(e) => {
            agent.crash();
            return Err(e);
        }
    };

    rejoin_from_snapshot(&handle, &s).await;
    if !s.join.is_empty() {
        tokio::spawn(seeds::join_with_retry(handle.clone(), s.join.clone()));
    }

    let mut stopped = pin!(agent.wait());
    let stop = loop {
        let wake = tokio::select! {
            r = &mut stopped => Wake::Stop(Stop::Stopped(r)),
            (name, sig) = stops.recv() => Wake::Stop(Stop::Signal(name, sig)),
            f = handlers.failed() => Wake::Stop(Stop::Failed(f)),
            f = renders.failed() => Wake::Stop(Stop::Failed(f)),
            status = service_exit(&mut service) => Wake::Stop(Stop::ServiceExited(status)),
            _ = sighup.recv() => Wake::Reload,
            sig = forward_next(&mut forwarded) => Wake::Forward(sig),
        };
        match wake {
            Wake::Stop(stop) => break stop,
            Wake::Forward(sig) => forward(&service, sig),
            Wake::Reload => {
                // A service run by the agent gets the hangup too (a reload, by custom).
                forward(&service, Signal::HUP);
                let running = reload::Running {
                    handle: &handle,
                    logs: &logs,
                    handlers: &handlers,
                    renders: &mut renders,
                    render_locks: &mut render_locks,
                };
                reload::reload(&args, &mut s, running).await;
            }
        }
    };
    // The signal the service gets once the cluster has let go of it.
    let mut service_signal = Signal::TERM;
    let (agent_result, mut failure) = match stop {
        Stop::Stopped(r) => (r, None),
        leaving => {
            let failure = match leaving {
                Stop::Failed(f) => {
                    tracing::error!(error = %f, "leaving the cluster, then exiting with a failure");
                    Some(f)
                }
                Stop::Signal(name, sig) => {
                    tracing::info!(
                        "{name} received: leaving the cluster (send it again to exit at once)"
                    );
                    service_signal = sig;
                    None
                }
                Stop::ServiceExited(status) => {
                    tracing::warn!(status = %describe(&status), "the service exited: leaving the cluster");
                    None
                }
                Stop::Stopped(_) => None,
            };
            let second = async {
                stops.recv().await;
            };
            match first_of(handle.leave(), second).await {
                Some(Ok(LeaveOutcome::Complete)) => tracing::info!("left the cluster"),
                Some(Ok(other)) => tracing::warn!(outcome = ?other, "leave did not complete"),
                Some(Err(e)) => tracing::warn!(error = %e, "leave failed"),
                None => {
                    rpc_task.abort();
                    if let Some(service) = &mut service {
                        let _ = service.stop(service_signal, s.stop_timeout).await;
                    }
                    return Err(CliError(
                        "second signal: exited before the leave completed".into(),
                    ));
                }
            }
            (stopped.await, failure)
        }
    };
    let service_status = match &mut service {
        Some(service) => Some(drain_and_stop(service, service_signal, &s, &mut stops).await),
        None => None,
    };
    // Let a `leave` request that stopped the agent get its answer.
    let _ = stop_rpc.send(());
    let _ = rpc_task.await;
    for result in [agent_result, handlers.join().await, renders.join().await] {
        if let Err(e) = result {
            tracing::error!(error = %e, "a task of the agent failed");
            failure.get_or_insert(e);
        }
    }
    match (failure, service_status) {
        (Some(f), _) => Err(CliError(f.to_string())),
        (None, Some(Ok(status))) => Ok(ExitCode::from(
            service.as_ref().map_or(0, |svc| svc.exit_code(status)),
        )),
        (None, Some(Err(e))) => Err(CliError(format!("cannot wait for the service: {e}"))),
        (None, None) => Ok(ExitCode::SUCCESS),
    }
}

/// Why the agent's main loop ends.
enum Stop {
    /// The agent stopped by itself (an RPC `leave`), or its task failed.
    Stopped(Result<(), TaskFailed>),
    /// SIGINT or SIGTERM: leave, then pass the signal on to the service.
    Signal(&'static str, Signal),
    /// The handlers' or a render target's task failed: leave, then exit with a failure.
    Failed(TaskFailed),
    /// The service run by the agent exited: leave, then exit with its status.
    ServiceExited(std::io::Result<ExitStatus>),
}

/// What woke the agent's main loop.
enum Wake {
    Stop(Stop),
    /// SIGHUP: reload the config.
    Reload,
    /// A signal meant for the service.
    Forward(Signal),
}

/// The signals [`run`] holds (blocks) until [`serve`] has a handler for each.
const HANDLED: [nix::sys::signal::Signal; 7] = {
    use nix::sys::signal::Signal as S;
    [
        S::SIGINT,
        S::SIGTERM,
        S::SIGHUP,
        S::SIGQUIT,
        S::SIGUSR1,
        S::SIGUSR2,
        S::SIGWINCH,
    ]
};

/// [`HANDLED`], blocked on this thread (and on the threads it starts) until released.
struct HeldSignals(nix::sys::signal::SigSet);

impl HeldSignals {
    fn hold() -> Result<Self, CliError> {
        let set = HANDLED.into_iter().collect();
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_BLOCK,
            Some(&set),
            None,
        )
        .map_err(|e| CliError(format!("cannot block signals during start-up: {e}")))?;
        Ok(HeldSignals(set))
    }

    /// Unblocks them: one that arrived meanwhile is delivered now, to its handler, or with
    /// its default action if it has none here (SIGQUIT and the forwarded ones without a
    /// service).
    fn release(self) -> Result<(), CliError> {
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&self.0),
            None,
        )
        .map_err(|e| CliError(format!("cannot unblock signals: {e}")))
    }
}

/// The signals that make the agent leave: SIGINT and SIGTERM, and SIGQUIT too when it
/// runs a service (which then gets the same signal after the drain).
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    quit: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen(with_service: bool) -> std::io::Result<Self> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            quit: with_service
                .then(|| signal(SignalKind::quit()))
                .transpose()?,
        })
    }

    /// The next stop signal, by name.
    async fn recv(&mut self) -> (&'static str, Signal) {
        let quit = async {
            match &mut self.quit {
                Some(q) => q.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => ("SIGINT", Signal::INT),
            _ = self.term.recv() => ("SIGTERM", Signal::TERM),
            _ = quit => ("SIGQUIT", Signal::QUIT),
        }
    }
}

/// Starts the service of `rumor agent ... -- CMD`, if there is one.
fn start_service(command: &[String]) -> Result<Option<Service>, CliError> {
    let Some(program) = command.first() else {
        return Ok(None);
    };
    let service = Service::spawn(command)
        .map_err(|e| CliError(format!("cannot start the service `{program}`: {e}")))?;
    tracing::info!(pid = service.id(), ?command, "service started");
    Ok(Some(service))
}

/// The service's exit; never, without a service or once it has been seen to exit.
async fn service_exit(service: &mut Option<Service>) -> std::io::Result<ExitStatus> {
    match service {
        Some(s) if s.id().is_some() => s.wait().await,
        _ => std::future::pending().await,
    }
}

/// Passes `sig` on to the service, if there is one.
fn forward(service: &Option<Service>, sig: Signal) {
    if let Some(s) = service {
        tracing::debug!(?sig, "forwarding a signal to the service");
        s.signal(sig);
    }
}

/// The signals the agent passes on to its service untouched (besides SIGHUP, which also
/// reloads the agent, and the [`StopSignals`], which reach the service after the drain).
struct Forwarded {
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    winch: tokio::signal::unix::Signal,
}

impl Forwarded {
    fn listen() -> std::io::Result<Self> {
        Ok(Forwarded {
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            winch: signal(SignalKind::window_change())?,
        })
    }
}

/// The next signal to forward; never without a service.
async fn forward_next(forwarded: &mut Option<Forwarded>) -> Signal {
    let Some(f) = forwarded else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = f.usr1.recv() => Signal::USR1,
        _ = f.usr2.recv() => Signal::USR2,
        _ = f.winch.recv() => Signal::WINCH,
    }
}

/// Once the agent has left (and its leave-propagate delay has passed): lets the service
/// serve for the drain time, then stops it with `sig` (SIGKILL after the stop timeout).
/// Another stop signal cuts the drain short.
async fn drain_and_stop(
    service: &mut Service,
    sig: Signal,
    s: &Settings,
    stops: &mut StopSignals,
) -> std::io::Result<ExitStatus> {
    if service.id().is_some() {
        tracing::info!(drain = ?s.drain_time, "left: draining the service before stopping it");
        tokio::select! {
            () = tokio::time::sleep(s.drain_time) => {},
            (name, _) = stops.recv() => tracing::info!("{name}: drain cut short"),
            status = service.wait() => return status,
        }
    }
    let status = service.stop(sig, s.stop_timeout).await;
    tracing::info!(status = %describe(&status), "the service stopped");
    status
}

/// An exit status as a log line shows it.
fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Claims the destinations of `targets` not in `held` (all or none).
pub(crate) fn claim_render_dests(
    targets: &[rumor_std::render::Target],
    held: &[FileLock],
) -> Result<Vec<FileLock>, String> {
    targets
        .iter()
        .filter(|t| !held.iter().any(|l| l.path() == t.dest))
        .map(|t| FileLock::claim(&t.dest, "render destination"))
        .collect()
}

/// Joins the peers saved in the snapshot, and keeps the snapshot up to date.
async fn rejoin_from_snapshot(handle: &Handle, s: &Settings) {
    let Some(path) = s.snapshot.clone() else {
        return;
    };
    match snapshot::load(&path) {
        Ok(Some(snap)) => {
            let peers = snap.rejoin_addrs(handle.local().addr);
            if peers.is_empty() {
                tracing::info!(path = %path.display(), "snapshot has no peer to rejoin");
            } else {
                tracing::info!(path = %path.display(), ?peers, "rejoining peers from the snapshot");
                if let Err(e) = handle.join(peers).await {
                    tracing::error!(error = %e, "cannot rejoin from the snapshot");
                }
            }
        }
        Ok(None) => tracing::info!(path = %path.display(), "no snapshot yet"),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable snapshot")
        }
    }
    tokio::spawn(snapshot::keep_saved(handle.clone(), path));
}

/// The keyring to start with, its plaintext policy, and the file that keeps them: the
/// keyring file's keys (the file is created from `--encrypt` when missing), or only
/// `--encrypt`'s key, or none. `--plaintext` wins over the file's policy, and is saved.
fn startup_keyring(
    s: &Settings,
) -> Result<(Option<Keyring>, Plaintext, Option<KeyringFile>), CliError> {
    let Some(path) = &s.keyring_file else {
        let plaintext = s.plaintext.unwrap_or_default();
        return Ok((s.encrypt.clone().map(Keyring::new), plaintext, None));
    };
    let file = KeyringFile::new(path);
    let (saved, startup) = file.open_or_create(s.encrypt.as_ref(), s.plaintext)?;
    let shown = path.display();
    let plaintext = saved.plaintext;
    match startup {
        Startup::Created => {
            tracing::info!(path = %shown, %plaintext, "keyring file created from --encrypt")
        }
        Startup::Loaded {
            given_key_ignored,
            plaintext_replaced,
            too_open,
        } => {
            let keys = saved.keyring.keys().count();
            tracing::info!(path = %shown, keys, %plaintext, "keyring file loaded");
            if given_key_ignored {
                tracing::warn!(path = %shown, "the --encrypt key is not in the keyring file, which wins: the key is ignored");
            }
            if let Some(old) = plaintext_replaced {
                tracing::info!(path = %shown, was = %old, %plaintext, "--plaintext saved to the keyring file");
            }
            if let Some(mode) = too_open {
                tracing::warn!(path = %shown, mode = format_args!("{mode:o}"), "others may read the keyring file: chmod 600 it");
            }
        }
    }
    Ok((Some(saved.keyring), plaintext, Some(file)))
}

/// The output of `a`, or `None` if `b` finishes first.
async fn first_of<T>(a: impl Future<Output = T>, b: impl Future<Output = ()>) -> Option<T> {
    tokio::select! {
        t = a => Some(t),
        () = b => None,
    }
}
