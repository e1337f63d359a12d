//! Owned views of members and tags, detached from the node so they can cross tasks,
//! channels and the RPC wire.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rumor_core::{Member, Status, TagError, Tags};
use serde::{Deserialize, Serialize};

/// One member as the agent saw it at some instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Unique name.
    pub name: String,
    /// Address it advertises (IP and gossip port).
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `left` or `failed`.
    #[serde(with = "status_str")]
    pub status: Status,
    /// Its tags, sorted by key.
    pub tags: BTreeMap<String, String>,
    /// Incarnation number (raised by the member to refute, leave or change tags).
    #[serde(default)]
    pub incarnation: u32,
    /// True for the agent's own entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

impl MemberInfo {
    /// Copies a member out of the node.
    pub fn from_member(m: &Member<'_>) -> Self {
        MemberInfo {
            name: m.name().to_owned(),
            addr: m.addr(),
            status: m.status(),
            tags: tags_to_map(m.tags()),
            incarnation: m.incarnation(),
            local: m.is_local(),
        }
    }

    /// The `role` tag, or an empty string (what Serf's handlers see as the role).
    pub fn role(&self) -> &str {
        self.tags.get("role").map_or("", String::as_str)
    }

    /// Tags as `k=v,k=v` (sorted by key), the form used by `rumor members` and handlers.
    pub fn tags_joined(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// Copies tags into a map.
pub fn tags_to_map(tags: &Tags) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Builds tags from a map, checking every key and value and the total size.
pub fn tags_from_map(map: &BTreeMap<String, String>) -> Result<Tags, TagError> {
    let mut tags = Tags::new();
    for (k, v) in map {
        tags.insert(k, v)?;
    }
    Ok(tags)
}

/// Parses a `key=value` argument (the value may be empty or contain `=`).
pub fn parse_tag_arg(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got `{arg}`")),
    }
}

/// Serde for [`Status`] as its lower-case name.
pub(crate) mod status_str {
    use rumor_core::Status;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(s: &Status, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Status, D::Error> {
        let s = String::deserialize(de)?;
        super::parse_status(&s).ok_or_else(|| D::Error::custom(format!("unknown status `{s}`")))
    }
}

/// Parses `alive`, `suspect`, `left` or `failed`.
pub fn parse_status(s: &str) -> Option<Status> {
    [Status::Alive, Status::Suspect, Status::Left, Status::Failed]
        .into_iter()
        .find(|st| st.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_arguments_split_at_the_first_equals() {
        assert_eq!(
            parse_tag_arg("role=backend"),
            Ok(("role".into(), "backend".into()))
        );
        assert_eq!(parse_tag_arg("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(parse_tag_arg("k="), Ok(("k".into(), String::new())));
        assert!(parse_tag_arg("=v").is_err());
        assert!(parse_tag_arg("novalue").is_err());
    }

    #[test]
    fn member_info_round_trips_through_json() {
        let m = MemberInfo {
            name: "web-1".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            status: Status::Failed,
            tags: [
                ("role".to_owned(), "backend".to_owned()),
                ("port".into(), "3000".into()),
            ]
            .into_iter()
            .collect(),
            incarnation: 3,
            local: false,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""status":"failed""#), "{json}");
        assert!(!json.contains("local"), "{json}");
        assert_eq!(serde_json::from_str::<MemberInfo>(&json).unwrap(), m);
        assert_eq!(m.tags_joined(), "port=3000,role=backend");
        assert_eq!(m.role(), "backend");
    }

    #[test]
    fn tags_convert_both_ways_and_are_checked() {
        let map: BTreeMap<String, String> =
            [("role".to_owned(), "lb".to_owned())].into_iter().collect();
        assert_eq!(tags_to_map(&tags_from_map(&map).unwrap()), map);
        let bad: BTreeMap<String, String> = [("bad key".to_owned(), "x".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(tags_from_map(&bad), Err(TagError::BadKey));
    }
}
