//! One handler invocation: Serf's stdin and environment for an event, run by the agent's
//! one command runner ([`crate::subprocess`]).

use std::time::Duration;

use crate::member::MemberInfo;
use crate::subprocess::{self, Outcome, Script};

/// What to run, and what to give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// `member-join`, ..., or `user`.
    pub(crate) event: &'static str,
    /// For user events: the event's name and Lamport time.
    pub(crate) user: Option<(String, u32)>,
    /// Bytes written to the handler's stdin.
    pub(crate) stdin: Vec<u8>,
}

impl Invocation {
    /// A member event batch: one line per member, `name\taddr\trole\ttags`.
    pub(crate) fn members(event: &'static str, members: &[MemberInfo]) -> Self {
        let mut stdin = String::new();
        for m in members {
            stdin.push_str(&member_line(m));
        }
        Invocation {
            event,
            user: None,
            stdin: stdin.into_bytes(),
        }
    }

    /// A user event: its payload, with a newline added if it does not end with one (as
    /// Serf: shells' `read` needs it); an empty payload stays empty.
    pub(crate) fn user(name: &str, ltime: u32, payload: &[u8]) -> Self {
        let mut stdin = payload.to_vec();
        if !stdin.is_empty() && !stdin.ends_with(b"\n") {
            stdin.push(b'\n');
        }
        Invocation {
            event: "user",
            user: Some((name.to_owned(), ltime)),
            stdin,
        }
    }
}

/// Serf's stdin line for a member: `name\taddr\trole\ttags\n`, the address without port
/// (as Serf gives it), tags as `k=v,k=v`; tabs and newlines inside fields escaped.
pub(crate) fn member_line(m: &MemberInfo) -> String {
    format!(
        "{}\t{}\t{}\t{}\n",
        escape(&m.name),
        m.addr.ip(),
        escape(m.role()),
        escape(&m.tags_joined())
    )
}

fn escape(s: &str) -> String {
    s.replace('\t', "\\t").replace('\n', "\\n")
}

/// `RUMOR_TAG_<KEY>`'s key part: upper case, anything outside `[A-Z0-9_]` becomes `_`.
pub(crate) fn env_key(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The environment of an invocation, under both the `RUMOR_` and the `SERF_` prefix.
pub(crate) fn environment(inv: &Invocation, me: &MemberInfo) -> Vec<(String, String)> {
    let mut vars = vec![
        ("EVENT".to_owned(), inv.event.to_owned()),
        ("SELF_NAME".to_owned(), me.name.clone()),
        ("SELF_ROLE".to_owned(), me.role().to_owned()),
    ];
    for (k, v) in &me.tags {
        vars.push((format!("TAG_{}", env_key(k)), v.clone()));
    }
    if let Some((name, ltime)) = &inv.user {
        vars.push(("USER_EVENT".to_owned(), name.clone()));
        vars.push(("USER_LTIME".to_owned(), ltime.to_string()));
    }
    ["RUMOR_", "SERF_"]
        .into_iter()
        .flat_map(|prefix| {
            vars.iter()
                .map(move |(k, v)| (format!("{prefix}{k}"), v.clone()))
        })
        .collect()
}

/// Runs `script` for `inv` as the agent `me`, killing it after `timeout`.
pub(crate) async fn run(
    script: &str,
    inv: &Invocation,
    me: &MemberInfo,
    timeout: Duration,
) -> Outcome {
    subprocess::run(Script {
        script,
        env: environment(inv, me),
        stdin: inv.stdin.clone(),
        timeout,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor_core::Status;

    fn me() -> MemberInfo {
        MemberInfo {
            name: "ha".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            status: Status::Alive,
            tags: [
                ("role".to_owned(), "balancer".to_owned()),
                ("dc-name".into(), "eu 1".into()),
            ]
            .into_iter()
            .collect(),
            incarnation: 0,
            local: true,
        }
    }

    #[test]
    fn stdin_lines_are_serfs() {
        let mut m = me();
        m.name = "s1".into();
        m.tags.insert("port".into(), "3000".into());
        m.tags.insert("role".into(), "backend".into());
        assert_eq!(
            member_line(&m),
            "s1\t127.0.0.1\tbackend\tdc-name=eu 1,port=3000,role=backend\n"
        );
        let inv = Invocation::members("member-join", &[m.clone(), m]);
        assert_eq!(inv.stdin.iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(Invocation::user("deploy", 3, b"v2").stdin, b"v2\n");
    }

    #[test]
    fn a_user_payload_gets_a_newline_only_if_it_lacks_one() {
        assert_eq!(Invocation::user("d", 1, b"v2\n").stdin, b"v2\n");
        assert_eq!(Invocation::user("d", 1, b"a\nb").stdin, b"a\nb\n");
        assert_eq!(Invocation::user("d", 1, b"\n").stdin, b"\n");
        assert_eq!(Invocation::user("d", 1, b"").stdin, b"");
    }

    #[test]
    fn environment_has_both_prefixes() {
        let env = environment(&Invocation::user("deploy", 7, b""), &me());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        for p in ["RUMOR_", "SERF_"] {
            assert_eq!(get(&format!("{p}EVENT")), Some("user"));
            assert_eq!(get(&format!("{p}SELF_NAME")), Some("ha"));
            assert_eq!(get(&format!("{p}SELF_ROLE")), Some("balancer"));
            assert_eq!(get(&format!("{p}TAG_DC_NAME")), Some("eu 1"));
            assert_eq!(get(&format!("{p}TAG_ROLE")), Some("balancer"));
            assert_eq!(get(&format!("{p}USER_EVENT")), Some("deploy"));
            assert_eq!(get(&format!("{p}USER_LTIME")), Some("7"));
        }
    }

    #[tokio::test]
    async fn runs_with_stdin_and_env() {
        let inv = Invocation::members("member-join", &[me()]);
        let out = run(
            r#"read -r name ip role tags; echo "$SERF_EVENT $name $ip $role $RUMOR_TAG_ROLE""#,
            &inv,
            &me(),
            Duration::from_secs(10),
        )
        .await;
        match out {
            Outcome::Exited { status, stdout, .. } => {
                assert!(status.success());
                assert_eq!(stdout, "member-join ha 127.0.0.1 balancer balancer\n");
            }
            other => panic!("{other:?}"),
        }
    }
}
