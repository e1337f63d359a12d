//! Text output: member tables and `info` sections.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rumor_std::MemberInfo;
use rumor_std::rpc::Info;

/// One aligned line per member: `name  addr  status  k=v,k=v` (Serf's layout).
pub(crate) fn member_table(members: &[MemberInfo]) -> String {
    let w_name = members.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let w_addr = members
        .iter()
        .map(|m| m.addr.to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for m in members {
        let line = format!(
            "{:<w_name$}  {:<w_addr$}  {:<7}  {}",
            m.name,
            m.addr.to_string(),
            m.status.as_str(),
            m.tags_joined()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `info` as indented `key = value` sections.
pub(crate) fn info_text(info: &Info) -> String {
    let a = &info.agent;
    let mut sections: Vec<(&str, BTreeMap<String, String>)> = Vec::new();
    let agent: BTreeMap<String, String> = [
        ("name", a.local.name.clone()),
        ("addr", a.local.addr.to_string()),
        ("status", a.local.status.to_string()),
        ("incarnation", a.local.incarnation.to_string()),
        ("tags", a.local.tags_joined()),
        ("health_score", a.health.to_string()),
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
    sections.push(("agent", agent));
    sections.push((
        "members",
        a.members
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    ));
    sections.push((
        "protocol",
        a.protocol
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    ));
    sections.push(("handlers", json_fields(&info.handlers)));
    if !info.render.is_empty() {
        let fields = info.render.iter().flat_map(|(dest, counts)| {
            json_fields(counts)
                .into_iter()
                .map(move |(k, v)| (format!("{dest} {k}"), v))
        });
        sections.push(("render", fields.collect()));
    }
    sections.push(("rpc", json_fields(&info.rpc)));
    let mut out = String::new();
    for (title, fields) in sections {
        let _ = writeln!(out, "{title}:");
        for (k, v) in fields {
            let _ = writeln!(out, "\t{k} = {v}");
        }
    }
    out
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
fn json_fields<T: serde::Serialize>(value: &T) -> BTreeMap<String, String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().map(|(k, v)| (k, v.to_string())).collect()
        }
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor_core::Status;

    #[test]
    fn member_table_is_aligned() {
        let m = |name: &str, addr: &str, status, tags: &[(&str, &str)]| MemberInfo {
            name: name.into(),
            addr: addr.parse().unwrap(),
            status,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            incarnation: 0,
            local: false,
        };
        let t = member_table(&[
            m(
                "ha",
                "127.0.0.1:7946",
                Status::Alive,
                &[("role", "balancer")],
            ),
            m("web-10", "127.0.0.12:7946", Status::Failed, &[]),
        ]);
        assert_eq!(
            t,
            "ha      127.0.0.1:7946   alive    role=balancer\nweb-10  127.0.0.12:7946  failed\n"
        );
    }
}
