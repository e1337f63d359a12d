//! Rendering the membership into files for other programs, HAProxy first, and applying
//! them safely: the lab's Serf handlers (render a template in place, restart HAProxy),
//! done right.
//!
//! - Renderers implement [`rumor_core::Render`]: [`HaproxyBackend`] (a `backend` section
//!   with one `server` line per member tagged `role=backend`), [`TemplateRenderer`]
//!   (Handlebars, so the lab's `haproxy.cfg.hb` works) and [`JsonRenderer`]. Each also
//!   renders an owned member snapshot ([`MemberInfo`](crate::member::MemberInfo)), which is what the agent and
//!   `rumor render --once` use.
//! - [`Applier`] runs one [`Target`]'s pipeline: render, skip when the bytes did not
//!   change, write a staged file next to the destination, run the check command
//!   (`haproxy -c -f {staged}`), rename it over the live file, then [`Reload`] (a
//!   command, SIGUSR2 to an HAProxy master, or the HAProxy [`RuntimeApi`]). On any failure
//!   the last good file stays live, the failure is logged and counted, and the next
//!   change (or a retry with backoff) tries again.
//! - [`RenderTargets`] runs one task per target in an agent, coalescing bursts of member
//!   events (quiet period and maximum wait) before each apply.
//! - [`RenderSpec`] is the `[[render]]` section of the agent's config file and the
//!   `--render` flag.

mod apply;
mod backend;
mod haproxy;
mod json;
mod reload;
mod runtime_api;
mod select;
mod spec;
mod template;
mod worker;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumor_core::{Members, Render};
use serde::{Deserialize, Serialize};

pub use self::apply::{Applied, Applier, ApplyError, staged_path};
pub use self::backend::{ServerLine, SplitFile, split as split_backend};
pub use self::haproxy::{DEFAULT_BACKEND_LINES, DEFAULT_SERVER_OPTIONS, HaproxyBackend};
pub use self::json::JsonRenderer;
pub use self::reload::{ApiReload, Reload};
pub use self::runtime_api::{Endpoint, LiveServer, RuntimeApi, SyncReport};
pub use self::select::{Selection, Server, collect_members, server_name, sorted_by_name};
pub use self::spec::RenderSpec;
pub use self::template::{TemplateRenderer, TemplateSource};
pub use self::worker::{RenderStatsList, RenderTargets};

/// Why a rendering failed (a template error, an unreadable template file, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenderError {}

/// One of the renderers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renderer {
    /// An HAProxy `backend` section.
    Haproxy(HaproxyBackend),
    /// A Handlebars template.
    Template(TemplateRenderer),
    /// A JSON member list.
    Json(JsonRenderer),
}

impl Renderer {
    /// Renders `members` (every member: the renderer applies its own selection).
    pub fn render_members(
        &self,
        members: &[crate::member::MemberInfo],
    ) -> Result<String, RenderError> {
        match self {
            Renderer::Haproxy(r) => r.render_members(members),
            Renderer::Template(r) => r.render_members(members),
            Renderer::Json(r) => r.render_members(members),
        }
    }

    /// Which members it renders.
    pub fn selection(&self) -> &Selection {
        match self {
            Renderer::Haproxy(r) => &r.selection,
            Renderer::Template(r) => &r.selection,
            Renderer::Json(r) => &r.selection,
        }
    }
}

/// Implements the core trait through `render_members`, so a node can render directly
/// (`node.render(&renderer, &mut out)`); errors become [`core::fmt::Error`].
macro_rules! impl_core_render {
    ($($t:ty),*) => {$(
        impl Render for $t {
            fn render<W: core::fmt::Write + ?Sized>(&self, members: Members<'_>, out: &mut W) -> core::fmt::Result {
                let text = self.render_members(&collect_members(members)).map_err(|e| {
                    tracing::debug!(error = %e, "render failed");
                    core::fmt::Error
                })?;
                out.write_str(&text)
            }
        }
    )*};
}
impl_core_render!(HaproxyBackend, TemplateRenderer, JsonRenderer, Renderer);

/// A file kept in step with the membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// What to render.
    pub renderer: Renderer,
    /// The live file.
    pub dest: PathBuf,
    /// A shell command that validates the staged file before it goes live, with
    /// `{staged}` and `{dest}` replaced by the paths (e.g. `haproxy -c -f {staged}`).
    pub check: Option<String>,
    /// How the consumer picks the new file up.
    pub reload: Reload,
    /// Longest run of the check and reload steps.
    pub command_timeout: Duration,
    /// A burst of member changes is applied after this long with no new change...
    pub coalesce_quiet: Duration,
    /// ...or at the latest this long after its first change.
    pub coalesce_max: Duration,
}

impl Target {
    /// A target with no check and no reload, coalescing like Serf (1 s quiet, 3 s at most).
    pub fn new(renderer: Renderer, dest: impl Into<PathBuf>) -> Self {
        Target {
            renderer,
            dest: dest.into(),
            check: None,
            reload: Reload::None,
            command_timeout: Duration::from_secs(30),
            coalesce_quiet: Duration::from_secs(1),
            coalesce_max: Duration::from_secs(3),
        }
    }
}

/// Counters of one target.
#[derive(Debug, Default)]
pub struct RenderStats {
    renders: AtomicU64,
    unchanged: AtomicU64,
    applied: AtomicU64,
    render_failures: AtomicU64,
    write_failures: AtomicU64,
    check_failures: AtomicU64,
    reload_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`RenderStats`] at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderCounts {
    /// Renders attempted.
    pub renders: u64,
    /// Renders identical to the live file (nothing done).
    pub unchanged: u64,
    /// New files installed and reloaded.
    pub applied: u64,
    /// Renders that failed (template errors).
    pub render_failures: u64,
    /// Staged files that could not be written or installed.
    pub write_failures: u64,
    /// Staged files the check command refused.
    pub check_failures: u64,
    /// Reloads that failed (the previous file was restored).
    pub reload_failures: u64,
    /// The latest failure, until the next success.
    pub last_error: Option<String>,
}

impl RenderCounts {
    /// All failures together.
    pub fn failures(&self) -> u64 {
        self.render_failures + self.write_failures + self.check_failures + self.reload_failures
    }
}

impl RenderStats {
    /// The counters now.
    pub fn counts(&self) -> RenderCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RenderCounts {
            renders: get(&self.renders),
            unchanged: get(&self.unchanged),
            applied: get(&self.applied),
            render_failures: get(&self.render_failures),
            write_failures: get(&self.write_failures),
            check_failures: get(&self.check_failures),
            reload_failures: get(&self.reload_failures),
            last_error: self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = e;
        }
    }
}
