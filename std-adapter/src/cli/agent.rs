//! `rumor agent`: run an agent until a signal or an RPC `leave`.

use std::future::Future;
use std::pin::pin;

use rumor_core::{Keyring, Plaintext};
use rumor_std::file_lock::FileLock;
use rumor_std::handler::Handlers;
use rumor_std::keyring::{KeyringFile, Startup};
use rumor_std::render::RenderTargets;
use rumor_std::rpc::RpcServer;
use rumor_std::{Agent, AgentConfig, Handle, LeaveOutcome, TaskFailed, logging, seeds, snapshot};
use tokio::signal::unix::{SignalKind, signal};

use super::settings::Settings;
use super::{AgentArgs, CliError, reload, runtime};

/// Longest wait for a join before the first render.
const RENDER_JOIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn run(args: AgentArgs) -> Result<(), CliError> {
    let settings = Settings::resolve(args.clone())?;
    let logs = logging::init(settings.log_level).map_err(CliError)?;
    runtime()?.block_on(serve(args, settings, logs))
}

async fn serve(args: AgentArgs, mut s: Settings, logs: logging::LogFeed) -> Result<(), CliError> {
    // Signals first, so that one arriving during start-up is not lost (SIGHUP would
    // otherwise end the process).
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
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

    rejoin_from_snapshot(&handle, &s).await;
    if !s.join.is_empty() {
        tokio::spawn(seeds::join_with_retry(handle.clone(), s.join.clone()));
    }

    let mut stopped = pin!(agent.wait());
    let stop = loop {
        let stop = tokio::select! {
            r = &mut stopped => Some(Stop::Stopped(r)),
            _ = sigint.recv() => Some(Stop::Signal("SIGINT")),
            _ = sigterm.recv() => Some(Stop::Signal("SIGTERM")),
            f = handlers.failed() => Some(Stop::Failed(f)),
            f = renders.failed() => Some(Stop::Failed(f)),
            _ = sighup.recv() => None,
        };
        match stop {
            Some(stop) => break stop,
            None => {
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
    let (agent_result, mut failure) = match stop {
        Stop::Stopped(r) => (r, None),
        leaving => {
            let failure = match leaving {
                Stop::Failed(f) => {
                    tracing::error!(error = %f, "leaving the cluster, then exiting with a failure");
                    Some(f)
                }
                Stop::Signal(name) => {
                    tracing::info!(
                        "{name} received: leaving the cluster (send it again to exit at once)"
                    );
                    None
                }
                Stop::Stopped(_) => None,
            };
            let second = async {
                tokio::select! {
                    _ = sigint.recv() => {},
                    _ = sigterm.recv() => {},
                }
            };
            match first_of(handle.leave(), second).await {
                Some(Ok(LeaveOutcome::Complete)) => tracing::info!("left the cluster"),
                Some(Ok(other)) => tracing::warn!(outcome = ?other, "leave did not complete"),
                Some(Err(e)) => tracing::warn!(error = %e, "leave failed"),
                None => {
                    rpc_task.abort();
                    return Err(CliError(
                        "second signal: exited before the leave completed".into(),
                    ));
                }
            }
            (stopped.await, failure)
        }
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
    match failure {
        Some(f) => Err(CliError(f.to_string())),
        None => Ok(()),
    }
}

/// Why the agent's main loop ends.
enum Stop {
    /// The agent stopped by itself (an RPC `leave`), or its task failed.
    Stopped(Result<(), TaskFailed>),
    /// SIGINT or SIGTERM: leave.
    Signal(&'static str),
    /// The handlers' or a render target's task failed: leave, then exit with a failure.
    Failed(TaskFailed),
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
