//! Event filters and the `[filter=]script` syntax of `--event-handler`, as Serf has them.

use crate::event::AgentEvent;

/// One event type a handler subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `*`: every event.
    All,
    /// `member-join`, `member-leave`, `member-failed`, `member-update` or `member-reap`.
    Member(&'static str),
    /// `user` (any user event) or `user:NAME` (only events called NAME).
    User(Option<String>),
}

/// The member event types handlers can ask for, in the order the batches of one
/// delivery run.
pub(crate) const MEMBER_EVENTS: [&str; 5] = [
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
];

impl Filter {
    /// Parses one filter word.
    pub fn parse(word: &str) -> Result<Filter, String> {
        let word = word.trim();
        if word == "*" {
            return Ok(Filter::All);
        }
        if word == "user" {
            return Ok(Filter::User(None));
        }
        if let Some(name) = word.strip_prefix("user:") {
            if name.is_empty() {
                return Err("`user:` needs an event name, e.g. `user:deploy`".into());
            }
            return Ok(Filter::User(Some(name.to_owned())));
        }
        MEMBER_EVENTS
            .iter()
            .find(|e| **e == word)
            .map(|e| Filter::Member(e))
            .ok_or_else(|| {
                format!(
                    "unknown event type `{word}` (use member-join, member-leave, member-failed, \
                     member-update, member-reap, user, user:NAME or *)"
                )
            })
    }

    /// Whether this filter takes `event`.
    pub fn matches(&self, event: &AgentEvent) -> bool {
        let Some(name) = event.handler_name() else {
            return false;
        };
        let user = match event {
            AgentEvent::User(u) => Some(u.name.as_str()),
            _ => None,
        };
        self.matches_type(name, user)
    }

    /// Whether this filter takes an event of type `name` (`member-join`, ..., `user`),
    /// called `user` if it is a user event.
    fn matches_type(&self, name: &str, user: Option<&str>) -> bool {
        match self {
            Filter::All => true,
            Filter::Member(m) => *m == name,
            Filter::User(None) => name == "user",
            Filter::User(Some(want)) => user == Some(want.as_str()),
        }
    }
}

/// A parsed `--event-handler`: which events, and the shell command to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerSpec {
    /// Events it runs for (any one matching is enough).
    pub filters: Vec<Filter>,
    /// Run as `/bin/sh -c SCRIPT`.
    pub script: String,
}

impl HandlerSpec {
    /// Parses `[type[,type...]=]script`. As in Serf, everything before the first `=` is
    /// the filter list, so a script containing `=` needs an explicit filter (`*=...`).
    pub fn parse(spec: &str) -> Result<HandlerSpec, String> {
        let (filters, script) = match spec.split_once('=') {
            Some((f, s)) => (
                f.split(',')
                    .map(Filter::parse)
                    .collect::<Result<Vec<_>, _>>()?,
                s,
            ),
            None => (vec![Filter::All], spec),
        };
        let script = script.trim();
        if script.is_empty() {
            return Err(format!("event handler `{spec}` has no script"));
        }
        Ok(HandlerSpec {
            filters,
            script: script.to_owned(),
        })
    }

    /// Whether the handler runs for `event`.
    pub fn wants(&self, event: &AgentEvent) -> bool {
        self.filters.iter().any(|f| f.matches(event))
    }

    /// Whether the handler runs for a batch of member events of type `kind`
    /// (`member-join`, ...).
    pub fn wants_members(&self, kind: &str) -> bool {
        self.filters.iter().any(|f| f.matches_type(kind, None))
    }

    /// Whether the handler runs for any member event.
    pub fn wants_any_member_event(&self) -> bool {
        MEMBER_EVENTS.iter().any(|k| self.wants_members(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UserEventInfo;
    use crate::member::MemberInfo;

    fn member() -> MemberInfo {
        crate::handler::test_member("s1")
    }

    fn user(name: &str) -> AgentEvent {
        AgentEvent::User(UserEventInfo {
            origin: "a".into(),
            ltime: 1,
            name: name.into(),
            payload: vec![],
        })
    }

    #[test]
    fn serf_handler_syntax() {
        let h = HandlerSpec::parse("member-leave,member-failed=/h/leave.sh").unwrap();
        assert_eq!(
            h.filters,
            vec![
                Filter::Member("member-leave"),
                Filter::Member("member-failed")
            ]
        );
        assert_eq!(h.script, "/h/leave.sh");
        let bare = HandlerSpec::parse("/h/all.sh arg").unwrap();
        assert_eq!(bare.filters, vec![Filter::All]);
        let eq = HandlerSpec::parse("*=FOO=1 ./x.sh").unwrap();
        assert_eq!(eq.script, "FOO=1 ./x.sh");
        assert!(
            HandlerSpec::parse("member-jion=x")
                .unwrap_err()
                .contains("member-jion")
        );
        assert!(HandlerSpec::parse("member-join=").is_err());
        assert!(HandlerSpec::parse("user:=x").is_err());
    }

    #[test]
    fn filters_select_events() {
        let join = AgentEvent::MemberJoin { member: member() };
        let failed = AgentEvent::MemberFailed { member: member() };
        let suspect = AgentEvent::MemberSuspect { member: member() };
        let h = HandlerSpec::parse("member-join=x").unwrap();
        assert!(h.wants(&join) && !h.wants(&failed));
        let all = HandlerSpec::parse("x").unwrap();
        assert!(all.wants(&join) && all.wants(&user("d")) && !all.wants(&suspect));
        let deploy = HandlerSpec::parse("user:deploy=x").unwrap();
        assert!(deploy.wants(&user("deploy")) && !deploy.wants(&user("other")));
        let any_user = HandlerSpec::parse("user=x").unwrap();
        assert!(any_user.wants(&user("other")) && !any_user.wants(&join));
        assert!(h.wants_members("member-join") && !h.wants_members("member-failed"));
        assert!(all.wants_members("member-reap") && all.wants_any_member_event());
        assert!(!any_user.wants_any_member_event() && !deploy.wants_members("user"));
    }
}
