//! Which members a render target shows, and the owned view of a member that renderers
//! and the HAProxy runtime API work from.

use std::net::{IpAddr, SocketAddr};

use rumor_core::{Members, Status};

use crate::member::MemberInfo;

/// Copies a node's member view, sorted by name.
pub fn collect_members(members: Members<'_>) -> Vec<MemberInfo> {
    let mut out: Vec<MemberInfo> = members.map(|m| MemberInfo::from_member(&m)).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A copy of a member snapshot, sorted by name.
pub fn sorted_by_name(members: &[MemberInfo]) -> Vec<MemberInfo> {
    let mut out = members.to_vec();
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
    pub fn matches(&self, m: &MemberInfo) -> bool {
        self.statuses.contains(&m.status)
            && self
                .tags
                .iter()
                .all(|(k, v)| m.tags.get(k).is_some_and(|have| have == v))
    }

    /// The selected members of `members`, in their order.
    pub fn apply<'a>(
        &'a self,
        members: &'a [MemberInfo],
    ) -> impl Iterator<Item = &'a MemberInfo> + 'a {
        members.iter().filter(|m| self.matches(m))
    }

    /// The service port of `m`: its port tag, else the default port.
    pub fn port(&self, m: &MemberInfo) -> Option<u16> {
        m.tags
            .get(&self.port_tag)
            .and_then(|p| p.trim().parse().ok())
            .or(self.default_port)
    }

    /// The load-balancer servers for `members`: one per selected member with a port,
    /// sorted by name.
    pub fn servers(&self, members: &[MemberInfo]) -> Vec<Server> {
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
    pub(crate) fn member(name: &str, ip: &str, status: Status, tags: &[&str]) -> MemberInfo {
        MemberInfo {
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
            incarnation: 0,
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
