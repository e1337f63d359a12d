//! Coalescing member events as Serf does: per member the latest event wins; a batch is
//! released after a quiet period with no new event, or at the latest after a maximum wait
//! from its first event. Unlike Serf, a leave or a failure releases the batch at once (see
//! `burst.rs`). A member whose latest event is the one already
//! delivered for it is left out (except updates), so a flapping member does not re-run
//! handlers for nothing.

use std::collections::{BTreeMap, HashMap};

use tokio::time::{Duration, Instant};

use super::filter::MEMBER_EVENTS as ORDER;
use crate::burst::Burst;
use crate::member::MemberInfo;

/// Pending member events for one handler.
#[derive(Debug)]
pub(crate) struct Coalescer {
    quiet: Duration,
    max_wait: Duration,
    /// Latest event per member name.
    pending: BTreeMap<String, (&'static str, MemberInfo)>,
    /// Last event type delivered per member.
    delivered: HashMap<String, &'static str>,
    burst: Burst,
}

impl Coalescer {
    pub(crate) fn new(quiet: Duration, max_wait: Duration) -> Self {
        Coalescer {
            quiet,
            max_wait,
            pending: BTreeMap::new(),
            delivered: HashMap::new(),
            burst: Burst::default(),
        }
    }

    /// Records a member event.
    pub(crate) fn add(&mut self, now: Instant, kind: &'static str, member: MemberInfo) {
        self.burst.add(now, crate::event::is_removal(kind));
        self.pending.insert(member.name.clone(), (kind, member));
    }

    /// Members with an event waiting for the next batch.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the pending batch is due, if there is one.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        self.burst.due_at(self.quiet, self.max_wait)
    }

    /// Takes the batch: one `(event type, members)` per type, in a fixed order, leaving
    /// out repeats of what each member last delivered.
    pub(crate) fn take(&mut self) -> Vec<(&'static str, Vec<MemberInfo>)> {
        self.burst.clear();
        let mut by_kind: BTreeMap<usize, Vec<MemberInfo>> = BTreeMap::new();
        for (name, (kind, member)) in std::mem::take(&mut self.pending) {
            let repeat = self.delivered.get(&name) == Some(&kind) && kind != "member-update";
            if kind == "member-reap" {
                self.delivered.remove(&name);
            } else {
                self.delivered.insert(name, kind);
            }
            if repeat {
                continue;
            }
            let rank = ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len());
            by_kind.entry(rank).or_default().push(member);
        }
        by_kind
            .into_iter()
            .map(|(rank, members)| (ORDER.get(rank).copied().unwrap_or("member-update"), members))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_member as m;

    fn names(batch: &[(&'static str, Vec<MemberInfo>)]) -> Vec<(&'static str, Vec<String>)> {
        batch
            .iter()
            .map(|(k, ms)| (*k, ms.iter().map(|m| m.name.clone()).collect()))
            .collect()
    }

    #[test]
    fn quiet_period_and_max_wait() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1), Duration::from_secs(3));
        assert_eq!(c.due_at(), None);
        c.add(t0, "member-join", m("a"));
        assert_eq!(c.due_at(), Some(t0 + Duration::from_secs(1)));
        c.add(t0 + Duration::from_millis(900), "member-join", m("b"));
        assert_eq!(c.due_at(), Some(t0 + Duration::from_millis(1900)));
        c.add(t0 + Duration::from_millis(2500), "member-join", m("c"));
        assert_eq!(c.due_at(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn a_leave_or_failure_releases_the_batch_at_once() {
        for removal in ["member-leave", "member-failed"] {
            let t0 = Instant::now();
            let mut c = Coalescer::new(Duration::from_secs(1), Duration::from_secs(3));
            c.add(t0, "member-join", m("a"));
            let t1 = t0 + Duration::from_millis(400);
            c.add(t1, removal, m("b"));
            assert_eq!(c.due_at(), Some(t1), "{removal}");
            // Later events join the batch; it stays due.
            c.add(t1 + Duration::from_millis(10), "member-join", m("c"));
            assert_eq!(c.due_at(), Some(t1), "{removal}");
            assert_eq!(c.take().len(), 2);
            // The next batch coalesces again.
            c.add(t1, "member-update", m("a"));
            c.add(t1, "member-reap", m("b"));
            assert_eq!(c.due_at(), Some(t1 + Duration::from_secs(1)), "{removal}");
        }
    }

    #[test]
    fn latest_event_per_member_wins_and_batches_by_type() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1), Duration::from_secs(3));
        c.add(t0, "member-join", m("a"));
        c.add(t0, "member-join", m("b"));
        c.add(t0, "member-failed", m("b"));
        c.add(t0, "member-join", m("c"));
        assert_eq!(
            names(&c.take()),
            vec![
                ("member-join", vec!["a".to_owned(), "c".to_owned()]),
                ("member-failed", vec!["b".to_owned()]),
            ]
        );
        assert_eq!(c.due_at(), None);
    }

    #[test]
    fn repeats_of_the_last_delivered_event_are_dropped_but_updates_are_not() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1), Duration::from_secs(3));
        c.add(t0, "member-join", m("a"));
        c.add(t0, "member-update", m("u"));
        c.take();
        // a fails and comes back between two deliveries: the failure was never delivered,
        // so the join is a repeat of what was (Serf merges the same way).
        c.add(t0, "member-failed", m("a"));
        c.add(t0, "member-join", m("a"));
        c.add(t0, "member-update", m("u"));
        assert_eq!(
            names(&c.take()),
            vec![("member-update", vec!["u".to_owned()])]
        );
        c.add(t0, "member-reap", m("a"));
        assert_eq!(
            names(&c.take()),
            vec![("member-reap", vec!["a".to_owned()])]
        );
        // Reaped: a later join of the same name is news again.
        c.add(t0, "member-join", m("a"));
        assert_eq!(
            names(&c.take()),
            vec![("member-join", vec!["a".to_owned()])]
        );
    }

    #[test]
    fn every_delivered_transition_makes_the_next_one_news() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(1), Duration::from_secs(3));
        let mut deliver = |kind| {
            c.add(t0, kind, m("s1"));
            names(&c.take())
        };
        for kind in [
            "member-join",
            "member-failed",
            "member-join",
            "member-failed",
            "member-join",
            "member-update",
            "member-update",
            "member-failed",
            "member-join",
            "member-leave",
        ] {
            assert_eq!(deliver(kind), vec![(kind, vec!["s1".to_owned()])]);
        }
        // Only a repeat of the last delivered transition is left out.
        assert_eq!(deliver("member-leave"), vec![]);
    }
}
