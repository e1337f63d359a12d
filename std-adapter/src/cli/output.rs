//! What `members`, `info` and `version` print: Serf's layouts, field for field, with
//! rumor's extras added after Serf's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rumor_std::MemberInfo;
use rumor_std::rpc::Info;
use serde::Serialize;
use serde_json::{Map, Value};

/// The gossip protocol version rumor speaks, and the only one it understands: every
/// member it lists speaks it, since datagrams of any other version are dropped.
const PROTOCOL: u8 = rumor_core::VERSION;

/// One member in `rumor members --format json`: Serf's fields in Serf's order, then
/// rumor's.
#[derive(Debug, Serialize)]
struct JsonMember<'a> {
    /// Node name.
    name: &'a str,
    /// `IP:PORT`, as Serf prints it (not the bare IP).
    addr: String,
    /// The gossip port, a number.
    port: u16,
    /// Tags, sorted by key.
    tags: &'a BTreeMap<String, String>,
    /// `alive`, `suspect`, `left` or `failed`.
    status: &'static str,
    /// Serf's protocol object: `max`, `min`, `version`.
    protocol: BTreeMap<&'static str, u8>,
    /// Rumor's: the member's incarnation number.
    incarnation: u32,
    /// Rumor's: true on the agent's own entry (absent on the others).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    local: bool,
}

/// `rumor members --format json`: `{"members": [...]}`, as `serf members -format json`.
#[derive(Debug, Serialize)]
struct JsonMembers<'a> {
    /// The members shown.
    members: Vec<JsonMember<'a>>,
}

/// Serf's protocol object for a rumor member: min, max and current are all [`PROTOCOL`].
fn protocol_object() -> BTreeMap<&'static str, u8> {
    [("max", PROTOCOL), ("min", PROTOCOL), ("version", PROTOCOL)]
        .into_iter()
        .collect()
}

/// The members as `serf members -format json` prints them (pretty, two-space indent).
/// An empty list is `[]`, where Serf prints `null`.
pub(crate) fn members_json(members: &[MemberInfo]) -> Result<String, serde_json::Error> {
    let doc = JsonMembers {
        members: members
            .iter()
            .map(|m| JsonMember {
                name: &m.name,
                addr: m.addr.to_string(),
                port: m.addr.port(),
                tags: &m.tags,
                status: m.status.as_str(),
                protocol: protocol_object(),
                incarnation: m.incarnation,
                local: m.local,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc)
}

/// Serf's `columnize.SimpleFormat`: every column but the last padded to its widest cell,
/// columns joined by two spaces; then, as Serf's `prepareOutput`, the whole text trimmed,
/// and one newline added (so no members print one empty line, as Serf).
fn columnize(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push('\n');
    }
    let mut trimmed = out.trim().to_owned();
    trimmed.push('\n');
    trimmed
}

/// One aligned line per member, as `serf members`: `name  addr:port  status  k=v,k=v`;
/// `detailed` adds Serf's `Protocol Version: N  Available Protocol Range: [MIN, MAX]`.
pub(crate) fn members_text(members: &[MemberInfo], detailed: bool) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let mut row = vec![
                m.name.clone(),
                m.addr.to_string(),
                m.status.as_str().to_owned(),
                m.tags_joined(),
            ];
            if detailed {
                row.push(format!("Protocol Version: {PROTOCOL}"));
                row.push(format!(
                    "Available Protocol Range: [{PROTOCOL}, {PROTOCOL}]"
                ));
            }
            row
        })
        .collect();
    columnize(&rows)
}

/// [`members_text`] without the protocol columns (`rumor demo`'s table).
pub(crate) fn member_table(members: &[MemberInfo]) -> String {
    members_text(members, false)
}

/// `rumor version`: rumor's version, then Serf's `Agent Protocol` line.
pub(crate) fn version_text() -> String {
    format!(
        "rumor v{}\nAgent Protocol: {PROTOCOL} (Understands back to: {PROTOCOL})\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A section of `info`: keys to values, both printed as they are.
type Section = BTreeMap<String, String>;

/// Serf's `serf` section, from the facts rumor has: `members` (every member known, the
/// agent included, whatever its status), `failed`, `left`, `health_score` and
/// `encrypted`. Serf's Lamport times and queue depths have no rumor counterpart.
fn serf_section(info: &Info) -> Section {
    let a = &info.agent;
    let count = |status: &str| a.members.get(status).copied().unwrap_or(0).to_string();
    [
        ("members", a.members.values().sum::<usize>().to_string()),
        ("failed", count("failed")),
        ("left", count("left")),
        ("health_score", a.health.to_string()),
        ("encrypted", (a.keys > 0).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `info` as Serf lays it out: sections sorted by name, each `name:` then one
/// `\tkey = value` line per field, sorted. Serf's sections `agent` (with `name` first
/// among rumor's identity fields), `serf` and `tags` are there; `handlers`, `members`,
/// `protocol`, `render` and `rpc` are rumor's.
pub(crate) fn info_text(info: &Info) -> String {
    let a = &info.agent;
    let mut sections: BTreeMap<&str, Section> = BTreeMap::new();
    let agent: Section = [
        ("name", a.local.name.clone()),
        ("addr", a.local.addr.to_string()),
        ("status", a.local.status.to_string()),
        ("incarnation", a.local.incarnation.to_string()),
        (
            "uptime",
            humantime::format_duration(std::time::Duration::from_secs(a.uptime_ms / 1000))
                .to_string(),
        ),
        ("encryption", encryption(a.keys)),
        ("send_errors", a.send_errors.to_string()),
        ("recv_errors", a.recv_errors.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    sections.insert("agent", agent);
    sections.insert("serf", serf_section(info));
    sections.insert("tags", a.local.tags.clone());
    sections.insert(
        "members",
        a.members
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    );
    sections.insert(
        "protocol",
        a.protocol
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    );
    sections.insert("handlers", json_fields(&info.handlers));
    if !info.render.is_empty() {
        let fields = info.render.iter().flat_map(|(dest, counts)| {
            json_fields(counts)
                .into_iter()
                .map(move |(k, v)| (format!("{dest} {k}"), v))
        });
        sections.insert("render", fields.collect());
    }
    sections.insert("rpc", json_fields(&info.rpc));
    let mut out = String::new();
    for (title, fields) in sections {
        let _ = writeln!(out, "{title}:");
        for (k, v) in fields {
            let _ = writeln!(out, "\t{k} = {v}");
        }
    }
    out
}

/// `info --format json`: rumor's report (`agent`, `handlers`, `render`, `rpc`) with
/// Serf's keys added where rumor has the fact: `agent.name`, and the sections `serf` and
/// `tags`, whose values are strings as in Serf.
pub(crate) fn info_json(info: &Info) -> Result<String, serde_json::Error> {
    let mut doc = serde_json::to_value(info)?;
    if let Value::Object(top) = &mut doc {
        if let Some(Value::Object(agent)) = top.get_mut("agent") {
            agent.insert("name".into(), Value::String(info.agent.local.name.clone()));
        }
        let strings = |s: Section| -> Value {
            Value::Object(
                s.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        top.insert("serf".into(), strings(serf_section(info)));
        top.insert("tags".into(), strings(info.agent.local.tags.clone()));
    }
    serde_json::to_string_pretty(&doc)
}

/// `off`, or `on (N keys)`.
fn encryption(keys: usize) -> String {
    match keys {
        0 => "off".into(),
        1 => "on (1 key)".into(),
        n => format!("on ({n} keys)"),
    }
}

/// The fields of a flat serialisable struct, by name.
fn json_fields<T: serde::Serialize>(value: &T) -> Section {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor_core::Status;

    /// A member for the tests.
    fn m(name: &str, addr: &str, status: Status, tags: &[(&str, &str)]) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: addr.parse().unwrap(),
            status,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            incarnation: 0,
            local: false,
        }
    }

    #[test]
    fn member_table_is_aligned_as_serf() {
        let members = [
            m("web-10", "127.0.0.12:7946", Status::Alive, &[]),
            m(
                "ha",
                "127.0.0.1:7946",
                Status::Failed,
                &[("role", "balancer")],
            ),
        ];
        // Serf keeps the separator after an empty last column, except at the very end.
        assert_eq!(
            members_text(&members, false),
            "web-10  127.0.0.12:7946  alive   \nha      127.0.0.1:7946   failed  role=balancer\n"
        );
        assert_eq!(
            members_text(&members[1..], true),
            "ha  127.0.0.1:7946  failed  role=balancer  Protocol Version: 1  \
             Available Protocol Range: [1, 1]\n"
        );
        assert_eq!(members_text(&[], false), "\n");
    }

    #[test]
    fn members_json_has_serfs_fields_first() {
        let mut me = m("ha", "127.0.0.1:7946", Status::Alive, &[("role", "lb")]);
        me.local = true;
        let text = members_json(&[me]).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
        let order = [
            "members",
            "name",
            "addr",
            "port",
            "tags",
            "status",
            "protocol",
            "incarnation",
            "local",
        ]
        .map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["members"][0]["addr"], "127.0.0.1:7946");
        assert_eq!(json["members"][0]["port"], 7946);
        assert_eq!(json["members"][0]["protocol"]["version"], PROTOCOL);
    }

    #[test]
    fn version_has_serfs_protocol_line() {
        let v = version_text();
        assert!(v.starts_with("rumor v"), "{v}");
        assert!(
            v.ends_with("Agent Protocol: 1 (Understands back to: 1)\n"),
            "{v}"
        );
    }
}
