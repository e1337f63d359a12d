//! Which members a render target shows, and the owned view of a member that renderers
//! and the HAProxy runtime API work from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use rumor_core::{Member, Members, Status};
use serde::Serialize;

use crate::member::{MemberInfo, tags_to_map};

/// One member as a renderer sees it: detached from the node, so the same renderer works on
/// a live node's [`Members`] and on a `rumor members` snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenderMember {
    /// Unique name.
    pub name: String,
    /// Gossip address (IP and gossip port).
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `left` or `failed`.
    #[serde(with = "crate::member::status_str")]
    pub status: Status,
    /// Tags, sorted by key.
    pub tags: BTreeMap<String, String>,
    /// True for the rendering node itself.
    pub local: bool,
}

impl From<&Member<'_>> for RenderMember {
    fn from(m: &Member<'_>) -> Self {
        RenderMember {
            name: m.name().to_owned(),
            addr: m.addr(),
            status: m.status(),
            tags: tags_to_map(m.tags()),
            local: m.is_local(),
        }
    }
}

impl From<&MemberInfo> for RenderMember {
    fn from(m: &MemberInfo) -> Self {
        RenderMember {
            name: m.name.clone(),
            addr: m.addr,
            status: m.status,
            tags: m.tags.clone(),
            local: m.local,
        }
    }
}

/// Copies a node's member view, sorted by name.
pub fn collect_members(members: Members<'_>) -> Vec<RenderMember> {
    let mut out: Vec<RenderMember> = members.map(|m| RenderMember::from(&m)).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Copies a member snapshot, sorted by name.
pub fn from_infos(members: &[MemberInfo]) -> Vec<RenderMember> {
    let mut out: Vec<RenderMember> = members.iter().map(RenderMember::from).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Which members a target renders, and where their service port comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// `key=value` tags a member must all carry (an empty list selects every member).
    pub tags: Vec<(String, String)>,
    /// Statuses to keep. Alive and suspect by default: a suspect may still refute, and
    /// dropping it would reload the consumer for a false alarm (HAProxy's own health
    /// checks cover the seconds a real failure takes to be confirmed).
    pub statuses: Vec<Status>,
    /// The tag holding the member's service port.
    pub port_tag: String,
    /// The port of members without a valid port tag (`None`: such members get no
    /// server line).
    pub default_port: Option<u16>,
}

impl Selection {
    /// Every live member, port from the `port` tag.
    pub fn all() -> Self {
        Selection {
            tags: Vec::new(),
            statuses: vec![Status::Alive, Status::Suspect],
            port_tag: "port".to_owned(),
            default_port: None,
        }
    }

    /// Live members tagged `role=backend`, the lab's backends.
    pub fn backends() -> Self {
        Selection {
            tags: vec![("role".to_owned(), "backend".to_owned())],
            ..Selection::all()
        }
    }

    /// True if `m` passes the tag and status filters.
    pub fn matches(&self, m: &RenderMember) -> bool {
        self.statuses.contains(&m.status)
            && self
                .tags
                .iter()
                .all(|(k, v)| m.tags.get(k).is_some_and(|have| have == v))
    }

    /// The selected members of `members`, in their order.
    pub fn apply<'a>(
        &'a self,
        members: &'a [RenderMember],
    ) -> impl Iterator<Item = &'a RenderMember> + 'a {
        members.iter().filter(|m| self.matches(m))
    }

    /// The service port of `m`: its port tag, else the default port.
    pub fn port(&self, m: &RenderMember) -> Option<u16> {
        m.tags
            .get(&self.port_tag)
            .and_then(|p| p.trim().parse().ok())
            .or(self.default_port)
    }

    /// The load-balancer servers for `members`: one per selected member with a port,
    /// sorted by name.
    pub fn servers(&self, members: &[RenderMember]) -> Vec<Server> {
        let mut out: Vec<Server> = self
            .apply(members)
            .filter_map(|m| {
                Some(Server {
                    name: server_name(&m.name),
                    ip: m.addr.ip(),
                    port: self.port(m)?,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        out
    }
}

/// A backend server derived from a member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Server {
    /// The member's name with characters HAProxy refuses in identifiers replaced by `_`.
    pub name: String,
    /// The member's IP.
    pub ip: IpAddr,
    /// Its service port.
    pub port: u16,
}

impl Server {
    /// `ip:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// A member name as an HAProxy server name: only `[A-Za-z0-9_.:-]` is allowed there.
pub fn server_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A member for tests: `tags` as `k=v` strings.
    pub(crate) fn member(name: &str, ip: &str, status: Status, tags: &[&str]) -> RenderMember {
        RenderMember {
            name: name.to_owned(),
            addr: SocketAddr::new(ip.parse().unwrap(), 7946),
            status,
            tags: tags
                .iter()
                .map(|t| {
                    let (k, v) = t.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            local: false,
        }
    }

    #[test]
    fn backends_need_the_role_tag_a_live_status_and_a_port() {
        let members = vec![
            member(
                "a",
                "10.0.0.1",
                Status::Alive,
                &["role=backend", "port=3000"],
            ),
            member(
                "b",
                "10.0.0.2",
                Status::Suspect,
                &["role=backend", "port=3001"],
            ),
            member(
                "c",
                "10.0.0.3",
                Status::Failed,
                &["role=backend", "port=3000"],
            ),
            member("d", "10.0.0.4", Status::Alive, &["role=balancer"]),
            member("e", "10.0.0.5", Status::Alive, &["role=backend", "port=x"]),
        ];
        let sel = Selection::backends();
        let names: Vec<&str> = sel.apply(&members).map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "e"]);
        let servers = sel.servers(&members);
        assert_eq!(servers.len(), 2, "e has no valid port");
        assert_eq!(servers[1].address(), "10.0.0.2:3001");
        let with_default = Selection {
            default_port: Some(80),
            ..Selection::backends()
        };
        assert_eq!(with_default.servers(&members)[2].address(), "10.0.0.5:80");
    }

    #[test]
    fn server_names_are_haproxy_identifiers() {
        assert_eq!(server_name("web-1.example:a_b"), "web-1.example:a_b");
        assert_eq!(server_name("web/1#é"), "web_1__");
        let v6 = Server {
            name: "x".into(),
            ip: "::1".parse().unwrap(),
            port: 80,
        };
        assert_eq!(v6.address(), "[::1]:80");
    }
}
