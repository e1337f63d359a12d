//! `SIGHUP`: the agent reads its configuration again and applies what can change while it
//! runs, as Serf's `handleReload` does (log level, tags, event handlers), plus rumor's
//! render targets. A setting that only takes effect at start is reported, not applied.

use rumor_std::Handle;
use rumor_std::file_lock::FileLock;
use rumor_std::handler::Handlers;
use rumor_std::logging::LogFeed;
use rumor_std::render::RenderTargets;

use super::AgentArgs;
use super::settings::Settings;

/// What a reload may change in the running agent.
pub(crate) struct Running<'a> {
    pub(crate) handle: &'a Handle,
    pub(crate) logs: &'a LogFeed,
    pub(crate) handlers: &'a Handlers,
    pub(crate) renders: &'a mut RenderTargets,
    /// The claims on the render targets' destinations.
    pub(crate) render_locks: &'a mut Vec<FileLock>,
}

/// Resolves `args` again (the `--config` file is read anew; the flags stay as given) and
/// applies the differences from `current`, which is updated to what now runs. A file that
/// does not resolve changes nothing.
pub(crate) async fn reload(args: &AgentArgs, current: &mut Settings, running: Running<'_>) {
    tracing::info!("SIGHUP received: reloading the configuration");
    let new = match Settings::resolve(args.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "configuration not reloaded: the running one stays");
            return;
        }
    };
    if new.log_level != current.log_level {
        match running.logs.set_level(new.log_level) {
            Ok(()) => {
                tracing::info!(level = %new.log_level, "log level changed");
                current.log_level = new.log_level;
            }
            Err(e) => tracing::warn!(error = %e, "log level not changed"),
        }
    }
    if (new.drain_time, new.stop_timeout) != (current.drain_time, current.stop_timeout) {
        tracing::info!(drain_time = ?new.drain_time, stop_timeout = ?new.stop_timeout, "service stop timing changed");
        (current.drain_time, current.stop_timeout) = (new.drain_time, new.stop_timeout);
    }
    if new.tags != current.tags {
        match rumor_std::tags_from_map(&new.tags) {
            Ok(tags) => match running.handle.set_tags(&tags).await {
                Ok(()) => {
                    tracing::info!(tags = ?new.tags, "tags changed");
                    current.tags = new.tags.clone();
                }
                Err(e) => tracing::warn!(error = %e, "tags not changed"),
            },
            Err(e) => tracing::warn!(error = %e, "tags not changed"),
        }
    }
    if (&new.handlers, new.handler) != (&current.handlers, current.handler) {
        running.handlers.reload(new.handlers.clone(), new.handler);
        tracing::info!(handlers = new.handlers.len(), "event handlers replaced");
        current.handlers = new.handlers.clone();
        current.handler = new.handler;
    }
    if new.renders != current.renders {
        // Claim the new destinations first, so that one another agent holds leaves
        // everything as it was.
        match super::agent::claim_render_dests(&new.renders, running.render_locks) {
            Err(e) => tracing::error!(error = %e, "render targets not replaced"),
            Ok(claims) => {
                running
                    .renders
                    .reload(running.handle, new.renders.clone())
                    .await;
                running
                    .render_locks
                    .retain(|l| new.renders.iter().any(|t| t.dest == l.path()));
                running.render_locks.extend(claims);
                tracing::info!(targets = new.renders.len(), "render targets replaced");
                current.renders = new.renders.clone();
            }
        }
    }
    for setting in start_only_changes(current, &new) {
        tracing::warn!(
            setting,
            "changed in the configuration: takes effect when the agent restarts"
        );
    }
    tracing::info!("configuration reloaded");
}

/// The settings that differ between `a` and `b` and only take effect at start.
fn start_only_changes(a: &Settings, b: &Settings) -> Vec<&'static str> {
    [
        ("node", a.name != b.name),
        ("bind", a.bind != b.bind),
        ("advertise", a.advertise != b.advertise),
        ("join", a.join != b.join),
        ("profile", a.profile != b.profile),
        ("snapshot", a.snapshot != b.snapshot),
        ("leave_timeout", a.leave_timeout != b.leave_timeout),
        (
            "leave_propagate_delay",
            a.leave_propagate_delay != b.leave_propagate_delay,
        ),
        ("icmp_evidence", a.icmp_evidence != b.icmp_evidence),
        ("command", a.command != b.command),
        ("rpc_addr", a.rpc_addr != b.rpc_addr),
        ("rpc_token", a.rpc_token != b.rpc_token),
        ("encrypt", a.encrypt != b.encrypt),
        ("keyring_file", a.keyring_file != b.keyring_file),
        ("plaintext", a.plaintext != b.plaintext),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}
