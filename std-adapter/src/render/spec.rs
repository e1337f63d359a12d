//! `[[render]]` in the agent's config file, and the equivalent `--render` flag (the same
//! keys as a TOML inline table).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reload::{ApiReload, Reload};
use super::runtime_api::{Endpoint, RuntimeApi};
use super::select::Selection;
use super::template::{TemplateRenderer, TemplateSource};
use super::{HaproxyBackend, JsonRenderer, Renderer, Target};
use crate::member::parse_status;

/// Timeout of one runtime API command.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// One render target as written in the config file:
///
/// ```toml
/// [[render]]
/// renderer = "haproxy"                  # haproxy | template | json
/// dest = "/etc/haproxy/haproxy.cfg"
/// prelude = "/etc/rumor/haproxy-base.cfg"  # global/defaults/frontend, copied first
/// backend_lines = ["balance roundrobin", "option httpchk HEAD /"]
/// check = "haproxy -c -f {staged}"
/// reload = "runtime-api"                # none | command | signal | runtime-api
/// socket = "/run/haproxy/admin.sock"
/// pid_file = "/run/haproxy.pid"
/// ```
///
/// or as a flag: `--render '{ renderer = "json", dest = "/run/members.json" }'`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSpec {
    /// `haproxy`, `template` or `json`.
    pub renderer: String,
    /// The live file.
    pub dest: PathBuf,
    /// `key=value` tags a member must carry to be rendered (default `role=backend` for
    /// `haproxy`, none otherwise).
    pub tags: Option<Vec<String>>,
    /// Statuses rendered (default alive and suspect).
    pub statuses: Option<Vec<String>>,
    /// The tag with a member's service port (default `port`).
    pub port_tag: Option<String>,
    /// The port of members without a port tag (default: such members are left out of
    /// server lists).
    pub default_port: Option<u16>,
    /// `haproxy`, runtime API: the backend's name (default `nodes`).
    pub backend: Option<String>,
    /// `haproxy`, runtime API: keywords after each server address (default
    /// [`DEFAULT_SERVER_OPTIONS`](super::DEFAULT_SERVER_OPTIONS)).
    pub server_options: Option<String>,
    /// `haproxy`: lines of the backend before its servers (default
    /// [`DEFAULT_BACKEND_LINES`](super::DEFAULT_BACKEND_LINES): balancing and
    /// retries).
    pub backend_lines: Option<Vec<String>>,
    /// `haproxy`: a file copied before the backend section (global, defaults, frontends).
    pub prelude: Option<PathBuf>,
    /// `template`: the Handlebars template file, read at every render.
    pub template: Option<PathBuf>,
    /// `template`: fail on a missing field instead of rendering it empty (default true).
    pub strict: Option<bool>,
    /// A command validating the staged file, `{staged}` and `{dest}` replaced by paths.
    pub check: Option<String>,
    /// `none`, `command`, `signal` or `runtime-api` (default: `command` if
    /// `reload_command` is set, else `runtime-api` if `socket` is, else `signal` if
    /// `pid_file` is, else `none`).
    pub reload: Option<String>,
    /// `command`: the reload command.
    pub reload_command: Option<String>,
    /// `signal`: the HAProxy master's pid file (SIGUSR2); `runtime-api`: reload through it
    /// when the file changed beyond its server lines.
    pub pid_file: Option<PathBuf>,
    /// `runtime-api`: the stats socket (a path, or `ipv4@host:port`); `signal`: confirm
    /// the reload there.
    pub socket: Option<String>,
    /// `runtime-api`: longest wait for a leaving server's sessions (default `10s`).
    pub drain_timeout: Option<String>,
    /// Longest run of the check and reload steps (default `30s`).
    pub command_timeout: Option<String>,
    /// Apply after this long with no new member change (default `1s`).
    pub coalesce_quiet: Option<String>,
    /// Apply at the latest this long after the first change (default `3s`).
    pub coalesce_max: Option<String>,
}

impl RenderSpec {
    /// Parses a `--render` value: the keys of a `[[render]]` section as a TOML inline
    /// table, the braces optional.
    pub fn parse_inline(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let table = if s.starts_with('{') {
            s.to_owned()
        } else {
            format!("{{ {s} }}")
        };
        #[derive(Deserialize)]
        struct Wrap {
            render: RenderSpec,
        }
        toml::from_str::<Wrap>(&format!("render = {table}"))
            .map(|w| w.render)
            .map_err(|e| format!("--render: {}", e.message()))
    }

    /// Checks the spec and builds the target (reading the prelude file, if any).
    pub fn to_target(&self) -> Result<Target, String> {
        let dest = self.dest.display().to_string();
        self.build()
            .map_err(|e| format!("render target {dest}: {e}"))
    }

    fn build(&self) -> Result<Target, String> {
        if self.dest.as_os_str().is_empty() {
            return Err("`dest` is required".into());
        }
        let selection = self.selection()?;
        let backend = self.backend.clone().unwrap_or_else(|| "nodes".into());
        let server_options = self
            .server_options
            .clone()
            .unwrap_or_else(|| super::DEFAULT_SERVER_OPTIONS.into());
        let renderer = match self.renderer.as_str() {
            "haproxy" => {
                self.only_for(
                    "haproxy",
                    &[
                        ("template", self.template.is_some()),
                        ("strict", self.strict.is_some()),
                    ],
                )?;
                let prelude = match &self.prelude {
                    Some(p) => std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read prelude {}: {e}", p.display()))?,
                    None => String::new(),
                };
                Renderer::Haproxy(HaproxyBackend {
                    selection,
                    backend: backend.clone(),
                    server_options: server_options.clone(),
                    backend_lines: self
                        .backend_lines
                        .clone()
                        .unwrap_or_else(|| HaproxyBackend::default().backend_lines),
                    prelude,
                })
            }
            "template" => {
                self.only_for("template", &self.haproxy_keys())?;
                let path = self
                    .template
                    .clone()
                    .ok_or("`template` (the template file) is required")?;
                Renderer::Template(TemplateRenderer {
                    selection,
                    source: TemplateSource::File(path),
                    strict: self.strict.unwrap_or(true),
                })
            }
            "json" => {
                let mut keys = self.haproxy_keys();
                keys.extend([
                    ("template", self.template.is_some()),
                    ("strict", self.strict.is_some()),
                ]);
                self.only_for("json", &keys)?;
                Renderer::Json(JsonRenderer { selection })
            }
            other => {
                return Err(format!(
                    "unknown renderer `{other}` (haproxy, template or json)"
                ));
            }
        };
        let command_timeout = duration(
            &self.command_timeout,
            "command_timeout",
            Duration::from_secs(30),
        )?;
        let api = self.socket.as_deref().map(|s| RuntimeApi {
            endpoint: Endpoint::parse(s),
            timeout: API_TIMEOUT,
        });
        let mode = match &self.reload {
            Some(m) => m.as_str(),
            None if self.reload_command.is_some() => "command",
            None if self.socket.is_some() => "runtime-api",
            None if self.pid_file.is_some() => "signal",
            None => "none",
        };
        let reload = match mode {
            "none" => Reload::None,
            "command" => Reload::Command(
                self.reload_command
                    .clone()
                    .ok_or("reload = \"command\" needs `reload_command`")?,
            ),
            "signal" => Reload::Signal {
                pid_file: self
                    .pid_file
                    .clone()
                    .ok_or("reload = \"signal\" needs `pid_file`")?,
                confirm: api,
            },
            "runtime-api" => Reload::RuntimeApi(ApiReload {
                api: api.ok_or("reload = \"runtime-api\" needs `socket`")?,
                backend,
                server_options,
                drain_timeout: duration(
                    &self.drain_timeout,
                    "drain_timeout",
                    Duration::from_secs(10),
                )?,
                pid_file: self.pid_file.clone(),
            }),
            other => {
                return Err(format!(
                    "unknown reload `{other}` (none, command, signal or runtime-api)"
                ));
            }
        };
        let target = Target {
            renderer,
            dest: self.dest.clone(),
            check: self.check.clone(),
            reload,
            command_timeout,
            coalesce_quiet: duration(
                &self.coalesce_quiet,
                "coalesce_quiet",
                Duration::from_secs(1),
            )?,
            coalesce_max: duration(&self.coalesce_max, "coalesce_max", Duration::from_secs(3))?,
        };
        if target.command_timeout.is_zero() {
            return Err("`command_timeout` must be above zero".into());
        }
        Ok(target)
    }

    fn selection(&self) -> Result<Selection, String> {
        let mut sel = if self.renderer == "haproxy" {
            Selection::backends()
        } else {
            Selection::all()
        };
        if let Some(tags) = &self.tags {
            sel.tags = tags
                .iter()
                .map(|t| crate::member::parse_tag_arg(t).map_err(|e| format!("tags: {e}")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(statuses) = &self.statuses {
            sel.statuses = statuses
                .iter()
                .map(|s| {
                    parse_status(s).ok_or_else(|| {
                        format!("unknown status `{s}` (alive, suspect, left, failed)")
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(p) = &self.port_tag {
            sel.port_tag = p.clone();
        }
        sel.default_port = self.default_port;
        Ok(sel)
    }

    /// The keys only the `haproxy` renderer reads, and whether each is set.
    fn haproxy_keys(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("backend_lines", self.backend_lines.is_some()),
            ("prelude", self.prelude.is_some()),
        ]
    }

    fn only_for(&self, renderer: &str, keys: &[(&'static str, bool)]) -> Result<(), String> {
        match keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!("`{key}` does not apply to the {renderer} renderer")),
            None => Ok(()),
        }
    }
}

fn duration(value: &Option<String>, key: &str, default: Duration) -> Result<Duration, String> {
    match value {
        Some(s) => humantime::parse_duration(s).map_err(|e| format!("{key}: {e}")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use rumor_core::Status;

    use super::*;

    #[test]
    fn a_minimal_haproxy_target_gets_the_labs_defaults() {
        let spec =
            RenderSpec::parse_inline(r#"renderer = "haproxy", dest = "/tmp/h.cfg""#).unwrap();
        let t = spec.to_target().unwrap();
        let Renderer::Haproxy(h) = &t.renderer else {
            panic!("{t:?}")
        };
        assert_eq!(h.selection, Selection::backends());
        assert_eq!(h.backend, "nodes");
        assert_eq!(t.reload, Reload::None);
        assert_eq!(
            (t.coalesce_quiet, t.coalesce_max),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
    }

    #[test]
    fn a_full_section_from_the_config_file() {
        #[derive(Deserialize)]
        struct File {
            render: Vec<RenderSpec>,
        }
        let text = r#"
            [[render]]
            renderer = "template"
            dest = "/etc/haproxy/haproxy.cfg"
            template = "/etc/rumor/haproxy.cfg.hb"
            tags = ["role=backend"]
            statuses = ["alive"]
            port_tag = "http"
            default_port = 3000
            check = "haproxy -c -f {staged}"
            socket = "/run/haproxy.sock"
            pid_file = "/run/haproxy.pid"
            drain_timeout = "2s"
            coalesce_quiet = "200ms"
            coalesce_max = "1s"
        "#;
        let file: File = toml::from_str(text).unwrap();
        let t = file.render[0].to_target().unwrap();
        let Reload::RuntimeApi(api) = &t.reload else {
            panic!("{t:?}")
        };
        assert_eq!(api.api.endpoint, Endpoint::Unix("/run/haproxy.sock".into()));
        assert_eq!(api.backend, "nodes");
        assert_eq!(api.drain_timeout, Duration::from_secs(2));
        assert_eq!(
            api.pid_file.as_deref(),
            Some(std::path::Path::new("/run/haproxy.pid"))
        );
        let sel = t.renderer.selection();
        assert_eq!(sel.statuses, vec![Status::Alive]);
        assert_eq!(
            (sel.port_tag.as_str(), sel.default_port),
            ("http", Some(3000))
        );
        assert_eq!(t.coalesce_quiet, Duration::from_millis(200));
    }

    #[test]
    fn mistakes_are_explained() {
        let err = |s: &str| {
            RenderSpec::parse_inline(s)
                .and_then(|s| s.to_target())
                .unwrap_err()
        };
        assert!(err(r#"renderer = "nginx", dest = "x""#).contains("unknown renderer"));
        assert!(err(r#"renderer = "template", dest = "x""#).contains("`template`"));
        assert!(err(r#"renderer = "json", dest = "x", prelude = "p""#).contains("does not apply"));
        assert!(err(r#"renderer = "json", dest = "x", reload = "signal""#).contains("pid_file"));
        assert!(
            err(r#"renderer = "json", dest = "x", statuses = ["up"]"#).contains("unknown status")
        );
        assert!(
            err(r#"renderer = "json", dest = "x", coalesce_max = "soon""#).contains("coalesce_max")
        );
        assert!(err(r#"renderer = "json", dest = "x", colour = 1"#).contains("colour"));
        assert!(err(r#"renderer = "json""#).contains("dest"));
        let cmd = RenderSpec::parse_inline(
            r#"{ renderer = "json", dest = "x", reload_command = "true" }"#,
        )
        .unwrap()
        .to_target()
        .unwrap();
        assert_eq!(cmd.reload, Reload::Command("true".into()));
    }
}
