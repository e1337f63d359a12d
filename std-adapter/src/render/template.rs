//! The `template` renderer: a user's Handlebars template, like the lab's `haproxy.cfg.hb`.

use std::path::PathBuf;

use handlebars::Handlebars;
use serde_json::{Value, json};

use super::RenderError;
use super::select::{Selection, server_name};
use crate::member::MemberInfo;

/// Where the template text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// A file, read again at every render: a fixed template takes effect at the next
    /// change, a broken one fails that render and leaves the live file alone.
    File(PathBuf),
    /// Text given in the config.
    Inline(String),
}

/// Renders a Handlebars template (no HTML escaping) with this context:
///
/// - `members`: the selected members sorted by name, each `{name, addr, port, address,
///   gossip_addr, status, tags, local, server}`, where `addr` is the IP, `port` the service
///   port from the port tag (or `null`), `address` is `addr:port` (IPv6 in brackets, `null`
///   without a port) and `server` the name as an HAProxy identifier;
/// - `addresses`: the same members as the lab's handler passed them, `{host, ip}`, so
///   `{{#each addresses}}server {{host}} {{ip}}:3000 check{{/each}}` works unchanged;
/// - `self`: the rendering node (same fields as a member), whatever the selection.
///
/// ```
/// use rumor_std::render::{Selection, TemplateRenderer, TemplateSource};
///
/// let t = TemplateRenderer {
///     selection: Selection::backends(),
///     source: TemplateSource::Inline(
///         "{{#each members}}server {{name}} {{addr}}:{{port}} check\n{{/each}}".into(),
///     ),
///     strict: true,
/// };
/// assert_eq!(t.render_members(&[]).unwrap(), "");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRenderer {
    /// Which members the template sees.
    pub selection: Selection,
    /// The template.
    pub source: TemplateSource,
    /// Fail the render when the template uses a field that does not exist (a typo, or a
    /// tag some member lacks) instead of rendering it empty.
    pub strict: bool,
}

impl TemplateRenderer {
    /// Renders the template for `members` (every member; the selection is applied here).
    pub fn render_members(&self, members: &[MemberInfo]) -> Result<String, RenderError> {
        let text = match &self.source {
            TemplateSource::Inline(t) => t.clone(),
            TemplateSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                RenderError(format!("cannot read template {}: {e}", path.display()))
            })?,
        };
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.set_strict_mode(self.strict);
        hb.render_template(&text, &self.context(members))
            .map_err(|e| RenderError(format!("template: {e}")))
    }

    /// The data the template sees (documented on the type).
    pub fn context(&self, members: &[MemberInfo]) -> Value {
        let selected: Vec<&MemberInfo> = self.selection.apply(members).collect();
        let local = members
            .iter()
            .find(|m| m.local)
            .map(|m| self.member_value(m));
        json!({
            "members": selected.iter().map(|m| self.member_value(m)).collect::<Vec<_>>(),
            "addresses": selected
                .iter()
                .map(|m| json!({"host": m.name, "ip": m.addr.ip().to_string()}))
                .collect::<Vec<_>>(),
            "self": local,
        })
    }

    fn member_value(&self, m: &MemberInfo) -> Value {
        let port = self.selection.port(m);
        json!({
            "name": m.name,
            "server": server_name(&m.name),
            "addr": m.addr.ip().to_string(),
            "port": port,
            "address": port.map(|p| std::net::SocketAddr::new(m.addr.ip(), p).to_string()),
            "gossip_addr": m.addr.to_string(),
            "status": m.status.as_str(),
            "tags": m.tags,
            "local": m.local,
        })
    }
}

#[cfg(test)]
mod tests {
    use rumor_core::Status;

    use super::*;
    use crate::render::select::tests::member;

    fn inline(text: &str) -> TemplateRenderer {
        TemplateRenderer {
            selection: Selection::backends(),
            source: TemplateSource::Inline(text.into()),
            strict: true,
        }
    }

    fn lab_members() -> Vec<MemberInfo> {
        let mut ha = member("ha", "192.168.42.42", Status::Alive, &["role=balancer"]);
        ha.local = true;
        vec![
            member(
                "s2",
                "192.168.42.22",
                Status::Alive,
                &["role=backend", "port=3000"],
            ),
            member(
                "s1",
                "192.168.42.11",
                Status::Alive,
                &["role=backend", "port=3000"],
            ),
            ha,
        ]
    }

    #[test]
    fn the_labs_template_renders_unchanged() {
        // The `backend nodes` part of the lab's ha/config/haproxy.cfg.hb.
        let lab = "backend nodes\n    option httpchk HEAD /\n    balance roundrobin\n\
                   {{#each addresses}}\n    server {{host}} {{ip}}:3000 check\n{{/each}}";
        let mut members = lab_members();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let text = inline(lab).render_members(&members).unwrap();
        assert_eq!(
            text,
            "backend nodes\n    option httpchk HEAD /\n    balance roundrobin\n\
             \x20   server s1 192.168.42.11:3000 check\n    server s2 192.168.42.22:3000 check\n",
            "standalone block lines leave no blank line, as in handlebars.js"
        );
    }

    #[test]
    fn members_carry_port_status_tags_and_self() {
        let mut members = lab_members();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let t = inline(
            "{{self.name}}:{{#each members}} {{name}}={{address}},{{status}},{{tags.role}},{{server}}{{/each}}",
        );
        assert_eq!(
            t.render_members(&members).unwrap(),
            "ha: s1=192.168.42.11:3000,alive,backend,s1 s2=192.168.42.22:3000,alive,backend,s2"
        );
    }

    #[test]
    fn no_html_escaping() {
        let mut members = lab_members();
        members[0].tags.insert("note".into(), "a&b<c>".into());
        let t = inline("{{#each members}}{{#if tags.note}}{{tags.note}}{{/if}}{{/each}}");
        assert_eq!(t.render_members(&members).unwrap(), "a&b<c>");
    }

    #[test]
    fn syntax_and_strict_errors_are_render_errors() {
        let members = lab_members();
        let e = inline("{{#each members}}unclosed")
            .render_members(&members)
            .unwrap_err();
        assert!(e.0.starts_with("template"), "{e}");
        let e = inline("{{#each members}}{{tags.weight}}{{/each}}")
            .render_members(&members)
            .unwrap_err();
        assert!(e.0.contains("weight"), "{e}");
        let lax = TemplateRenderer {
            strict: false,
            ..inline("{{#each members}}[{{tags.weight}}]{{/each}}")
        };
        assert_eq!(lax.render_members(&members).unwrap(), "[][]");
    }

    #[test]
    fn a_template_file_is_read_at_every_render() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.hb");
        let t = TemplateRenderer {
            source: TemplateSource::File(path.clone()),
            ..inline("")
        };
        assert!(
            t.render_members(&[])
                .unwrap_err()
                .0
                .contains("cannot read template")
        );
        std::fs::write(&path, "one").unwrap();
        assert_eq!(t.render_members(&[]).unwrap(), "one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(t.render_members(&[]).unwrap(), "two");
    }
}
