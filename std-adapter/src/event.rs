//! What an agent reports to its application: the core's [`rumor_core::Event`], with each
//! member's details (tags, status) copied in, so subscribers never touch the node.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::member::MemberInfo;

/// A user event as delivered by the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEventInfo {
    /// The member that sent it.
    pub origin: String,
    /// Its Lamport time.
    pub ltime: u32,
    /// Its name.
    pub name: String,
    /// Its payload (shown as UTF-8, lossily, in JSON).
    #[serde(with = "lossy_utf8")]
    pub payload: Vec<u8>,
}

/// An event of the agent. The `type` names in JSON are Serf's handler event names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AgentEvent {
    /// A member joined or came back. The agent also reports its own join when it starts,
    /// as Serf does.
    MemberJoin {
        /// The member, as it is now.
        member: MemberInfo,
    },
    /// A member changed its tags or address.
    MemberUpdate {
        /// The member, as it is now.
        member: MemberInfo,
    },
    /// A member missed its probes and is suspected (it may still refute).
    MemberSuspect {
        /// The member, as it is now.
        member: MemberInfo,
    },
    /// A member left gracefully.
    MemberLeave {
        /// The member, as it is now.
        member: MemberInfo,
    },
    /// A member was declared failed.
    MemberFailed {
        /// The member, as it is now.
        member: MemberInfo,
    },
    /// A failed or left member was forgotten after the reap timeout.
    MemberReap {
        /// The member as last seen before it was forgotten.
        member: MemberInfo,
    },
    /// The member table is full of live members, so a newcomer was not tracked.
    MemberRefused {
        /// The newcomer's name.
        name: String,
        /// The newcomer's address.
        addr: SocketAddr,
    },
    /// A name is claimed from another address while the agent holds it live (its own
    /// name, or a member's): the claim was not applied. Reported once per name and address.
    NameConflict {
        /// The contested name.
        name: String,
        /// The other claimant's address.
        other: SocketAddr,
    },
    /// A user event arrived (or was sent by this agent).
    User(UserEventInfo),
    /// A seed answered: the agent is part of a cluster.
    Joined {
        /// The seed that answered.
        via: SocketAddr,
    },
    /// The graceful leave has been gossiped.
    LeaveComplete,
}

/// Whether the handler event name `kind` is a removal (`member-leave`, `member-failed`):
/// see [`AgentEvent::is_removal`].
pub(crate) fn is_removal(kind: &str) -> bool {
    matches!(kind, "member-leave" | "member-failed")
}

impl AgentEvent {
    /// The event name handlers see in `RUMOR_EVENT`/`SERF_EVENT` (`member-join`, ...,
    /// `user`), or `None` for events handlers are not given (suspicions, refusals,
    /// conflicts, join and leave completion).
    pub fn handler_name(&self) -> Option<&'static str> {
        Some(match self {
            AgentEvent::MemberJoin { .. } => "member-join",
            AgentEvent::MemberUpdate { .. } => "member-update",
            AgentEvent::MemberLeave { .. } => "member-leave",
            AgentEvent::MemberFailed { .. } => "member-failed",
            AgentEvent::MemberReap { .. } => "member-reap",
            AgentEvent::User(_) => "user",
            _ => return None,
        })
    }

    /// Whether a consumer should act on this event at once rather than coalesce it: a
    /// member left or failed, so a load balancer should stop sending it traffic now (a
    /// burst of joins, by contrast, is worth one reload rather than many).
    pub fn is_removal(&self) -> bool {
        self.handler_name().is_some_and(is_removal)
    }

    /// The member this event is about, for member events.
    pub fn member(&self) -> Option<&MemberInfo> {
        match self {
            AgentEvent::MemberJoin { member }
            | AgentEvent::MemberUpdate { member }
            | AgentEvent::MemberSuspect { member }
            | AgentEvent::MemberLeave { member }
            | AgentEvent::MemberFailed { member }
            | AgentEvent::MemberReap { member } => Some(member),
            _ => None,
        }
    }
}

impl std::fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentEvent::MemberSuspect { member } => {
                write!(f, "member-suspect {} {}", member.name, member.addr)
            }
            AgentEvent::MemberRefused { name, addr } => {
                write!(f, "member-refused {name} {addr} (member table full)")
            }
            AgentEvent::NameConflict { name, other } => {
                write!(f, "name-conflict {name} also claimed by {other}")
            }
            AgentEvent::User(u) => write!(
                f,
                "user {} from {} ltime {}: {}",
                u.name,
                u.origin,
                u.ltime,
                String::from_utf8_lossy(&u.payload)
            ),
            AgentEvent::Joined { via } => write!(f, "joined via {via}"),
            AgentEvent::LeaveComplete => f.write_str("leave complete"),
            other => {
                let m = other.member().unwrap_or_else(|| unreachable!());
                let name = other.handler_name().unwrap_or_default();
                write!(f, "{name} {} {} [{}]", m.name, m.addr, m.tags_joined())
            }
        }
    }
}

mod lossy_utf8 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&String::from_utf8_lossy(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(de)?.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor_core::Status;

    fn member() -> MemberInfo {
        MemberInfo {
            name: "s1".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            status: Status::Alive,
            tags: Default::default(),
            incarnation: 0,
            local: false,
        }
    }

    #[test]
    fn events_serialise_with_serf_names() {
        let e = AgentEvent::MemberFailed { member: member() };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with(r#"{"type":"member-failed""#), "{json}");
        assert_eq!(serde_json::from_str::<AgentEvent>(&json).unwrap(), e);
        let u = AgentEvent::User(UserEventInfo {
            origin: "a".into(),
            ltime: 4,
            name: "deploy".into(),
            payload: b"v2".to_vec(),
        });
        let json = serde_json::to_string(&u).unwrap();
        assert!(json.contains(r#""payload":"v2""#), "{json}");
        assert_eq!(u.handler_name(), Some("user"));
        assert_eq!(AgentEvent::LeaveComplete.handler_name(), None);
        assert_eq!(
            AgentEvent::MemberSuspect { member: member() }.handler_name(),
            None
        );
    }
}
