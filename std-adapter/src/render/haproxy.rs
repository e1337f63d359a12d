//! The `haproxy` renderer: a `backend` section with one `server` line per selected member.

use std::fmt::Write as _;

use super::RenderError;
use super::select::Selection;
use crate::member::MemberInfo;

/// The backend lines rendered before the servers by default: a dynamic algorithm (which
/// the runtime API's `add server` needs), and a request that meets a dead server retried
/// on another one rather than failed (HAProxy 2.6; `docs/OPERATIONS.md` explains each).
pub const DEFAULT_BACKEND_LINES: [&str; 5] = [
    "balance roundrobin",
    "retries 3",
    "option redispatch 1",
    "retry-on conn-failure empty-response",
    "timeout connect 1s",
];

/// The keywords after each server's address by default: health checks every second, a
/// server out of rotation after two failed checks and back after two good ones.
pub const DEFAULT_SERVER_OPTIONS: &str = "check inter 1s fall 2 rise 2";

/// Renders a whole HAProxy config: a fixed prelude (global, defaults, frontends, copied
/// verbatim) and then
///
/// ```text
/// backend nodes
///     balance roundrobin
///     retries 3
///     option redispatch 1
///     retry-on conn-failure empty-response
///     timeout connect 1s
///     server web-1 10.0.0.11:3000 check inter 1s fall 2 rise 2
///     server web-2 10.0.0.22:3000 check inter 1s fall 2 rise 2
/// ```
///
/// with one `server <name> <ip>:<port> <options>` line per selected member that has a
/// port, sorted by name, so the same membership always renders the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaproxyBackend {
    /// Which members become servers, and their port tag.
    pub selection: Selection,
    /// The backend's name.
    pub backend: String,
    /// Keywords after each server's address ([`DEFAULT_SERVER_OPTIONS`] by default).
    pub server_options: String,
    /// Lines of the backend section before its servers ([`DEFAULT_BACKEND_LINES`] by
    /// default).
    pub backend_lines: Vec<String>,
    /// Text written before the backend section (empty by default).
    pub prelude: String,
}

impl Default for HaproxyBackend {
    fn default() -> Self {
        HaproxyBackend {
            selection: Selection::backends(),
            backend: "nodes".to_owned(),
            server_options: DEFAULT_SERVER_OPTIONS.to_owned(),
            backend_lines: DEFAULT_BACKEND_LINES.map(String::from).to_vec(),
            prelude: String::new(),
        }
    }
}

impl HaproxyBackend {
    /// Renders the config for `members` (every member; the selection is applied here).
    pub fn render_members(&self, members: &[MemberInfo]) -> Result<String, RenderError> {
        let mut out = self.prelude.clone();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(out, "backend {}", self.backend);
        for line in &self.backend_lines {
            let _ = writeln!(out, "    {}", line.trim());
        }
        let servers = self.selection.servers(members);
        let selected = self.selection.apply(members).count();
        if servers.is_empty() && selected > 0 {
            return Err(RenderError(format!(
                "none of the {selected} selected members has a port (tag `{}`, and no \
                 default_port): refusing to render an empty backend",
                self.selection.port_tag
            )));
        }
        for s in servers {
            let _ = write!(out, "    server {} {}", s.name, s.address());
            let opts = self.server_options.trim();
            if !opts.is_empty() {
                out.push(' ');
                out.push_str(opts);
            }
            out.push('\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use rumor_core::Status;

    use super::*;
    use crate::render::select::tests::member;

    #[test]
    fn renders_alive_backends_sorted_with_options() {
        let members = vec![
            member(
                "web-2",
                "10.0.0.22",
                Status::Alive,
                &["role=backend", "port=3000"],
            ),
            member("ha", "10.0.0.42", Status::Alive, &["role=balancer"]),
            member(
                "web-1",
                "10.0.0.11",
                Status::Alive,
                &["role=backend", "port=3000"],
            ),
            member(
                "web-3",
                "10.0.0.33",
                Status::Left,
                &["role=backend", "port=3000"],
            ),
        ];
        let r = HaproxyBackend {
            prelude: "global\n    maxconn 100".into(),
            backend_lines: vec!["balance roundrobin".into(), "option httpchk HEAD /".into()],
            server_options: "check inter 1s".into(),
            ..HaproxyBackend::default()
        };
        let text = r.render_members(&members).unwrap();
        assert_eq!(
            text,
            "global\n    maxconn 100\nbackend nodes\n    balance roundrobin\n    option httpchk HEAD /\n\
             \x20   server web-1 10.0.0.11:3000 check inter 1s\n    server web-2 10.0.0.22:3000 check inter 1s\n"
        );
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(
            r.render_members(&reversed).unwrap(),
            text,
            "order does not matter"
        );
    }

    /// The lab's members carry no `port` tag: rendering would delete every server.
    #[test]
    fn backends_that_all_lack_a_port_are_refused_not_rendered_empty() {
        let members = vec![
            member("web-1", "10.0.0.11", Status::Alive, &["role=backend"]),
            member("web-2", "10.0.0.22", Status::Alive, &["role=backend"]),
        ];
        let e = HaproxyBackend::default()
            .render_members(&members)
            .unwrap_err();
        assert!(
            e.0.contains("none of the 2 selected members has a port (tag `port`"),
            "{e:?}"
        );
        // One with a port is enough: the others are left out as before.
        let mut some = members.clone();
        some.push(member(
            "web-3",
            "10.0.0.33",
            Status::Alive,
            &["role=backend", "port=3000"],
        ));
        let text = HaproxyBackend::default().render_members(&some).unwrap();
        assert!(text.contains("server web-3 10.0.0.33:3000"), "{text}");
    }

    #[test]
    fn an_empty_pool_is_still_a_valid_backend() {
        let text = HaproxyBackend::default().render_members(&[]).unwrap();
        assert_eq!(
            text,
            "backend nodes\n    balance roundrobin\n    retries 3\n    option redispatch 1\n    \
             retry-on conn-failure empty-response\n    timeout connect 1s\n"
        );
    }
}
