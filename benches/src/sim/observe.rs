//! What the nodes reported: every [`rumor_core::Event`] with its virtual time and
//! observer, indexed so that scenarios can ask "when did observer `o` first see `x` fail?"
//! or "how many observers have seen `x` leave?" cheaply, even inside run predicates.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;

use rumor_core::{Event, Instant};

/// The kind of a reported event, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObsKind {
    /// [`Event::MemberJoined`].
    Joined,
    /// [`Event::MemberUpdated`].
    Updated,
    /// [`Event::MemberSuspected`].
    Suspected,
    /// [`Event::MemberLeft`].
    Left,
    /// [`Event::MemberFailed`].
    Failed,
    /// [`Event::MemberReaped`].
    Reaped,
    /// [`Event::MemberRefused`].
    Refused,
    /// [`Event::NameConflict`].
    NameConflict,
    /// [`Event::User`]; the observation's `member` is the event's name.
    User,
    /// [`Event::Joined`]: the observer itself joined (`member` is its own name, `addr` the
    /// node it joined through).
    JoinedCluster,
    /// [`Event::LeaveComplete`]: the observer finished leaving (`member` is its own name).
    LeaveComplete,
    /// An event kind added to `rumor_core` (whose `Event` is `#[non_exhaustive]`) and not
    /// classified here yet (`member` is the observer's name).
    Other,
}

impl ObsKind {
    /// Every kind, in declaration order.
    pub const ALL: [ObsKind; 12] = [
        ObsKind::Joined,
        ObsKind::Updated,
        ObsKind::Suspected,
        ObsKind::Left,
        ObsKind::Failed,
        ObsKind::Reaped,
        ObsKind::Refused,
        ObsKind::NameConflict,
        ObsKind::User,
        ObsKind::JoinedCluster,
        ObsKind::LeaveComplete,
        ObsKind::Other,
    ];
}

/// One event reported by one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// When the node reported it.
    pub at: Instant,
    /// Index of the reporting node.
    pub observer: usize,
    /// What happened.
    pub kind: ObsKind,
    /// The member it is about (see [`ObsKind`] for the special cases).
    pub member: String,
    /// The address carried by the event, if any.
    pub addr: Option<SocketAddr>,
}

impl Observation {
    /// Converts a core event reported by `observer` (named `observer_name`) at `at`.
    pub fn from_event(at: Instant, observer: usize, observer_name: &str, event: &Event) -> Self {
        let (kind, member, addr) = Observation::parts(observer_name, event);
        Observation {
            at,
            observer,
            kind,
            member: member.to_owned(),
            addr,
        }
    }

    /// The kind, member and address of an event reported by `observer_name`, without
    /// allocating.
    pub fn parts<'a>(
        observer_name: &'a str,
        event: &'a Event,
    ) -> (ObsKind, &'a str, Option<SocketAddr>) {
        match event {
            Event::MemberJoined { name, addr } => (ObsKind::Joined, name.as_str(), Some(*addr)),
            Event::MemberUpdated { name, addr } => (ObsKind::Updated, name.as_str(), Some(*addr)),
            Event::MemberSuspected { name, addr } => {
                (ObsKind::Suspected, name.as_str(), Some(*addr))
            }
            Event::MemberLeft { name, addr } => (ObsKind::Left, name.as_str(), Some(*addr)),
            Event::MemberFailed { name, addr } => (ObsKind::Failed, name.as_str(), Some(*addr)),
            Event::MemberReaped { name } => (ObsKind::Reaped, name.as_str(), None),
            Event::MemberRefused { name, addr } => (ObsKind::Refused, name.as_str(), Some(*addr)),
            Event::NameConflict { name, other } => {
                (ObsKind::NameConflict, name.as_str(), Some(*other))
            }
            Event::User(user) => (ObsKind::User, user.name.as_str(), None),
            Event::Joined { via } => (ObsKind::JoinedCluster, observer_name, Some(*via)),
            Event::LeaveComplete => (ObsKind::LeaveComplete, observer_name, None),
            _ => (ObsKind::Other, observer_name, None),
        }
    }
}

/// A user event as one node received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDelivery {
    /// When the node reported it.
    pub at: Instant,
    /// Index of the receiving node.
    pub observer: usize,
    /// The event's name.
    pub name: String,
    /// The event's payload.
    pub payload: Vec<u8>,
    /// The event's Lamport time.
    pub ltime: u64,
    /// The originating member's name.
    pub origin: String,
}

/// When each observer first reported one kind of event about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detections {
    /// `(observer, first report)`, ordered by observer index.
    pub by_observer: Vec<(usize, Instant)>,
}

impl Detections {
    /// How many observers reported it.
    pub fn count(&self) -> usize {
        self.by_observer.len()
    }

    /// The earliest first report.
    pub fn first(&self) -> Option<Instant> {
        self.by_observer.iter().map(|&(_, t)| t).min()
    }

    /// The latest first report.
    pub fn last(&self) -> Option<Instant> {
        self.by_observer.iter().map(|&(_, t)| t).max()
    }

    /// Whether `observer` reported it.
    pub fn contains(&self, observer: usize) -> bool {
        self.by_observer.iter().any(|&(o, _)| o == observer)
    }
}

/// Every observation of a run, with indexes for the common questions.
#[derive(Clone, Debug, Default)]
pub struct Log {
    entries: Vec<Observation>,
    /// Member names interned to small ids, so index lookups by `&str` never allocate.
    ids: BTreeMap<String, u32>,
    first: BTreeMap<(ObsKind, u32, usize), Instant>,
    observers: BTreeMap<(ObsKind, u32), usize>,
    totals: BTreeMap<ObsKind, u64>,
    users: Vec<UserDelivery>,
}

impl Log {
    /// Appends an observation and updates the indexes.
    pub(crate) fn record(&mut self, obs: Observation) {
        *self.totals.entry(obs.kind).or_default() += 1;
        let next = u32::try_from(self.ids.len()).expect("fewer than 2^32 names");
        let id = *self.ids.entry(obs.member.clone()).or_insert(next);
        if let Entry::Vacant(slot) = self.first.entry((obs.kind, id, obs.observer)) {
            slot.insert(obs.at);
            *self.observers.entry((obs.kind, id)).or_default() += 1;
        }
        self.entries.push(obs);
    }

    /// Counts an observation in the totals without keeping it (a lean run's unwatched
    /// members).
    pub(crate) fn count(&mut self, kind: ObsKind) {
        *self.totals.entry(kind).or_default() += 1;
    }

    /// Appends a user-event delivery (its [`Observation`] is recorded separately).
    pub(crate) fn record_user(&mut self, delivery: UserDelivery) {
        self.users.push(delivery);
    }

    /// Every observation, in the order they were reported.
    pub fn entries(&self) -> &[Observation] {
        &self.entries
    }

    /// Every user-event delivery, in the order they were reported.
    pub fn user_deliveries(&self) -> &[UserDelivery] {
        &self.users
    }

    /// When `observer` first reported `kind` about `member`.
    pub fn first(&self, kind: ObsKind, member: &str, observer: usize) -> Option<Instant> {
        let id = *self.ids.get(member)?;
        self.first.get(&(kind, id, observer)).copied()
    }

    /// How many distinct observers have reported `kind` about `member`.
    pub fn observer_count(&self, kind: ObsKind, member: &str) -> usize {
        let Some(&id) = self.ids.get(member) else {
            return 0;
        };
        self.observers.get(&(kind, id)).copied().unwrap_or(0)
    }

    /// How many events of `kind` were reported in total, about anyone, by anyone.
    pub fn total(&self, kind: ObsKind) -> u64 {
        self.totals.get(&kind).copied().unwrap_or(0)
    }

    /// Per-observer first reports of `kind` about `member`.
    pub fn detections(&self, kind: ObsKind, member: &str) -> Detections {
        let by_observer = match self.ids.get(member) {
            Some(&id) => {
                let range = (kind, id, 0)..=(kind, id, usize::MAX);
                self.first
                    .range(range)
                    .map(|(&(_, _, o), &t)| (o, t))
                    .collect()
            }
            None => Vec::new(),
        };
        Detections { by_observer }
    }

    /// Observations of `kind` about `member`, in report order.
    pub fn about<'a>(
        &'a self,
        kind: ObsKind,
        member: &'a str,
    ) -> impl Iterator<Item = &'a Observation> + 'a {
        self.entries
            .iter()
            .filter(move |o| o.kind == kind && o.member == member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(ms: u64, observer: usize, kind: ObsKind, member: &str) -> Observation {
        Observation {
            at: Instant::from_millis(ms),
            observer,
            kind,
            member: member.into(),
            addr: None,
        }
    }

    #[test]
    fn indexes_first_reports_per_observer() {
        let mut log = Log::default();
        log.record(obs(10, 2, ObsKind::Failed, "x"));
        log.record(obs(20, 2, ObsKind::Failed, "x"));
        log.record(obs(15, 1, ObsKind::Failed, "x"));
        log.record(obs(5, 1, ObsKind::Failed, "y"));
        assert_eq!(log.observer_count(ObsKind::Failed, "x"), 2);
        assert_eq!(log.total(ObsKind::Failed), 4);
        assert_eq!(
            log.first(ObsKind::Failed, "x", 2),
            Some(Instant::from_millis(10))
        );
        let d = log.detections(ObsKind::Failed, "x");
        assert_eq!(
            d.by_observer,
            [(1, Instant::from_millis(15)), (2, Instant::from_millis(10))]
        );
        assert_eq!(
            (d.first(), d.last()),
            (
                Some(Instant::from_millis(10)),
                Some(Instant::from_millis(15))
            )
        );
        assert_eq!(log.about(ObsKind::Failed, "x").count(), 3);
    }
}
