//! Requests, responses and stream items of the RPC protocol.

use std::collections::BTreeMap;

use rumor_core::Plaintext;
use serde::{Deserialize, Serialize};

use crate::agent::AgentStats;
use crate::event::AgentEvent;
use crate::handler::HandlerCounts;
use crate::logging::LogLine;
use crate::member::MemberInfo;
use crate::render::RenderCounts;

/// Longest request line accepted, in bytes; a longer one is answered with an error and
/// the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;

/// One request: `{"cmd": "...", ...fields, "token": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The agent's `--rpc-token`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub command: RpcCommand,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum RpcCommand {
    /// Every member the agent knows.
    Members,
    /// Join through these seeds (`host:port`, `host` or `ip`; port 7946 by default), and
    /// wait up to `wait_ms` (default 5000; 0: do not wait) for one to answer.
    Join {
        /// Seeds.
        addrs: Vec<String>,
        /// How long to wait for an answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// Leave gracefully; the agent stops afterwards.
    Leave,
    /// Force the failed member `name` out (Serf's `force-leave`): it is marked left and
    /// the news gossiped. A live or suspect member is refused.
    ForceLeave {
        /// The member's name.
        name: String,
    },
    /// Send a user event.
    Event {
        /// Its name.
        name: String,
        /// Its payload.
        #[serde(default)]
        payload: String,
    },
    /// Delete then set tags of the agent.
    Tags {
        /// Tags to set.
        #[serde(default)]
        set: BTreeMap<String, String>,
        /// Tags to delete.
        #[serde(default)]
        delete: Vec<String>,
    },
    /// Counters and identity.
    Info,
    /// List or change the keyring: `op` is `list`, `install`, `use`, `remove` or
    /// `plaintext`; `install`, `use` and `remove` take a `key` (base64), `plaintext` takes
    /// a `plaintext` policy (`refuse`, `accept` or `send`). Changes are saved to the
    /// keyring file.
    Keys {
        /// What to do.
        op: KeyOp,
        /// The key, in base64.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<KeyText>,
        /// The plaintext policy.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "policy::optional"
        )]
        plaintext: Option<Plaintext>,
    },
    /// Stream events and log lines at `log_level` (default `info`) or more severe.
    Monitor {
        /// `trace`, `debug`, `info`, `warn` or `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_level: Option<String>,
    },
}

/// The operation of a `keys` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOp {
    /// Report the keys.
    List,
    /// Accept a key on receive too.
    Install,
    /// Seal with an installed key from now on.
    Use,
    /// Stop accepting a key.
    Remove,
    /// Set what the agent does about plaintext.
    Plaintext,
}

impl KeyOp {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOp::List => "list",
            KeyOp::Install => "install",
            KeyOp::Use => "use",
            KeyOp::Remove => "remove",
            KeyOp::Plaintext => "plaintext",
        }
    }
}

/// A key as base64 text in a request. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyText(pub String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(..)")
    }
}

/// Answer to `keys`: the keyring after the change.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringInfo {
    /// The key that seals outgoing datagrams (base64).
    pub primary: String,
    /// Every key accepted on receive, the primary first (base64).
    pub keys: Vec<String>,
    /// Where the keyring is saved; absent when the agent has no keyring file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What the agent does about plaintext: `refuse`, `accept` or `send`.
    #[serde(default, with = "policy")]
    pub plaintext: Plaintext,
}

impl std::fmt::Debug for KeyringInfo {
    /// Shows how many keys, never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringInfo")
            .field("keys", &self.keys.len())
            .field("file", &self.file)
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

/// A [`Plaintext`] policy as its name: `refuse`, `accept` or `send`.
mod policy {
    use rumor_core::Plaintext;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(p: &Plaintext, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Plaintext, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }

    /// The same, optional.
    pub(super) mod optional {
        use rumor_core::Plaintext;
        use serde::{Deserialize, Deserializer, Serializer};

        pub(in super::super) fn serialize<S: Serializer>(
            p: &Option<Plaintext>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match p {
                Some(p) => super::serialize(p, s),
                None => s.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Plaintext>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(name) => name.parse().map(Some).map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// One answer: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. Only the fields
/// of the request's answer are present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `members`: the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberInfo>>,
    /// `join`: the seed that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_via: Option<String>,
    /// `leave`: how it ended (`complete`, `timed-out`, `already-stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave: Option<crate::agent::LeaveOutcome>,
    /// `tags`: the agent's tags after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// `info`: counters and identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Info>,
    /// `keys`: the keyring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<KeyringInfo>,
}

impl Response {
    /// A success with no fields (fill them in).
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    /// A failure.
    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Response::default()
        }
    }
}

/// Answer to `info`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The agent: identity, health, member counts, protocol counters.
    pub agent: AgentStats,
    /// Event handler counters.
    pub handlers: HandlerCounts,
    /// Render target counters, by destination file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub render: BTreeMap<String, RenderCounts>,
    /// RPC counters.
    pub rpc: RpcCounts,
}

/// RPC counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered (successes and errors).
    pub requests: u64,
    /// Requests that were not valid JSON requests (or too long).
    pub malformed: u64,
    /// Requests with a missing or wrong token.
    pub unauthorized: u64,
}

/// One line of a `monitor` stream: `{"event": {...}}` or `{"log": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamItem {
    /// An agent event.
    Event(AgentEvent),
    /// A log line.
    Log(LogLine),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_flat_json_objects() {
        let r: Request = serde_json::from_str(r#"{"cmd":"members"}"#).unwrap();
        assert_eq!(r.command, RpcCommand::Members);
        let r: Request =
            serde_json::from_str(r#"{"cmd":"tags","set":{"role":"web"},"token":"s3"}"#).unwrap();
        assert_eq!(r.token.as_deref(), Some("s3"));
        assert!(matches!(r.command, RpcCommand::Tags { ref set, .. } if set["role"] == "web"));
        let json = serde_json::to_string(&Request {
            token: None,
            command: RpcCommand::Event {
                name: "deploy".into(),
                payload: "v2".into(),
            },
        })
        .unwrap();
        assert_eq!(json, r#"{"cmd":"event","name":"deploy","payload":"v2"}"#);
        let r: Request = serde_json::from_str(r#"{"cmd":"force-leave","name":"c"}"#).unwrap();
        assert_eq!(r.command, RpcCommand::ForceLeave { name: "c".into() });
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"force-leave"}"#).is_err());
    }

    #[test]
    fn encrypt_keys_requests_name_their_op() {
        let r: Request = serde_json::from_str(r#"{"cmd":"keys","op":"list"}"#).unwrap();
        assert_eq!(
            r.command,
            RpcCommand::Keys {
                op: KeyOp::List,
                key: None,
                plaintext: None
            }
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"keys","op":"use","key":"AAAA"}"#).unwrap();
        assert!(matches!(
            r.command,
            RpcCommand::Keys {
                op: KeyOp::Use,
                key: Some(_),
                ..
            }
        ));
        assert!(!format!("{r:?}").contains("AAAA"));
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"keys","op":"rotate"}"#).is_err());
        let info = KeyringInfo {
            primary: "c2VjcmV0".into(),
            keys: vec!["c2VjcmV0".into()],
            file: None,
            plaintext: Plaintext::Refuse,
        };
        assert!(!format!("{info:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn encrypt_keys_requests_carry_a_plaintext_policy() {
        let r: Request =
            serde_json::from_str(r#"{"cmd":"keys","op":"plaintext","plaintext":"accept"}"#)
                .unwrap();
        assert_eq!(
            r.command,
            RpcCommand::Keys {
                op: KeyOp::Plaintext,
                key: None,
                plaintext: Some(Plaintext::Accept)
            }
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"cmd":"keys","op":"plaintext","plaintext":"accept"}"#
        );
        let e =
            serde_json::from_str::<Request>(r#"{"cmd":"keys","op":"plaintext","plaintext":"off"}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("refuse, accept or send"), "{e}");

        // The answer names the policy; one from an agent that predates it refuses.
        let info = KeyringInfo {
            primary: "AAA=".into(),
            keys: vec!["AAA=".into()],
            file: None,
            plaintext: Plaintext::Send,
        };
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            r#"{"primary":"AAA=","keys":["AAA="],"plaintext":"send"}"#
        );
        let old: KeyringInfo =
            serde_json::from_str(r#"{"primary":"AAA=","keys":["AAA="]}"#).unwrap();
        assert_eq!(old.plaintext, Plaintext::Refuse);
    }

    #[test]
    fn bad_requests_do_not_parse() {
        for bad in [
            "",
            "nonsense",
            "{}",
            r#"{"cmd":"explode"}"#,
            r#"{"cmd":"join"}"#,
            "[1,2]",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_carry_only_their_fields() {
        assert_eq!(
            serde_json::to_string(&Response::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            r#"{"ok":true}"#
        );
    }
}
