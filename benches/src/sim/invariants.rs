//! Mirrors of every node's member table, refreshed after each node step, and the
//! invariants checked against them (see [`Views`]); the user events each node delivered
//! (see [`Deliveries`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rumor_core::{Duration, Instant, Status};

/// What an observer holds about one member, as of the observer's last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The member's status.
    pub status: Status,
    /// The member's incarnation.
    pub incarnation: u32,
    /// The member's address.
    pub addr: SocketAddr,
}

#[derive(Clone, Debug)]
struct Record {
    seen: Seen,
    /// The pass that last saw this member in the observer's table.
    stamp: u64,
    /// When the observer's status or incarnation for it last changed.
    since: Instant,
}

#[derive(Clone, Debug, Default)]
struct View {
    /// Every member the observer has held since it was last reset, until reaped: entries
    /// absent from the table are kept (with an old stamp) so invariants 1 and 2 still hold
    /// them to their last incarnation.
    records: BTreeMap<String, Record>,
    /// The stamp of the latest completed pass; records with this stamp are in the table.
    stamp: u64,
    present: usize,
    alive: usize,
}

/// The per-observer mirrors of the member tables, and the invariant checker.
///
/// The simulator refreshes an observer's mirror after every step of that observer and
/// checks, panicking with seed, virtual time, observer and member on a violation:
///
/// 1. The incarnation an observer holds for a member never decreases. The record is
///    forgotten when the observer reports [`rumor_core::Event::MemberReaped`] for that
///    member, and all of an observer's records are forgotten when it is restarted. (A
///    member evicted to make room is *not* forgotten: it must come back at a higher
///    incarnation.)
/// 2. A member the observer holds as `Left` or `Failed` never becomes `Alive` or `Suspect`
///    again at the same or a lower incarnation.
/// 3. A node never holds more members than its capacity `M` (itself included).
///
/// 4. A node delivers each user event at most once in one life (checked at every delivery,
///    in both recording levels).
///
/// (The simulator also checks that no datagram exceeds the node's `max_datagram`.)
///
/// The mirror doubles as a cheap query cache: "what does observer `o` think of `x`" and
/// "how many members does `o` see alive" cost a map lookup, not a scan of the node.
#[derive(Clone, Debug)]
pub struct Views {
    views: Vec<View>,
    seed: u64,
    capacity: usize,
    /// See [`Views::forget_absent_after`].
    forget_absent_after: Option<Duration>,
}

impl Views {
    /// Mirrors for nodes of capacity `capacity`, in a run with `seed` (for messages).
    pub fn new(seed: u64, capacity: usize) -> Self {
        Views {
            views: Vec::new(),
            seed,
            capacity,
            forget_absent_after: None,
        }
    }

    /// A member absent from an observer's table whose record last changed at least `d`
    /// ago is forgotten when it comes back, as if reaped: rumor-core remembers a member
    /// evicted to make room (so stale news cannot bring it back) until it would have been
    /// reaped, `reap_timeout` after its last change. Off by default: an evicted member must
    /// then come back at a higher incarnation, whenever it does.
    pub fn forget_absent_after(&mut self, d: Duration) {
        self.forget_absent_after = Some(d);
    }

    /// Forgets everything observer `observer` held (it was restarted).
    pub(crate) fn reset(&mut self, observer: usize) {
        self.ensure(observer);
        self.views[observer] = View::default();
    }

    /// Forgets observer `observer`'s record of `member` (it reaped the member).
    pub(crate) fn forget(&mut self, observer: usize, member: &str) {
        if let Some(view) = self.views.get_mut(observer) {
            view.records.remove(member);
        }
    }

    /// Starts refreshing `observer`'s mirror from its member table at `now`. Feed every
    /// member of the table to [`Pass::member`], then call [`Pass::finish`].
    pub(crate) fn pass<'a>(
        &'a mut self,
        now: Instant,
        observer: usize,
        observer_name: &'a str,
    ) -> Pass<'a> {
        self.ensure(observer);
        let stamp = self.views[observer].stamp + 1;
        Pass {
            views: self,
            now,
            observer,
            observer_name,
            stamp,
            present: 0,
            alive: 0,
        }
    }

    /// What `observer` holds about `member`, if it is in the observer's table.
    pub fn get(&self, observer: usize, member: &str) -> Option<Seen> {
        let view = self.views.get(observer)?;
        view.records
            .get(member)
            .filter(|r| r.stamp == view.stamp)
            .map(|r| r.seen)
    }

    /// Every member in `observer`'s table (itself included), by name.
    pub fn table(&self, observer: usize) -> impl Iterator<Item = (&str, Seen)> + '_ {
        let view = self.views.get(observer);
        let stamp = view.map_or(0, |v| v.stamp);
        view.into_iter()
            .flat_map(|v| v.records.iter())
            .filter(move |(_, r)| r.stamp == stamp)
            .map(|(name, r)| (name.as_str(), r.seen))
    }

    /// How many members (itself included) `observer` holds as `Alive`.
    pub fn alive_count(&self, observer: usize) -> usize {
        self.views.get(observer).map_or(0, |v| v.alive)
    }

    /// How many members (itself included) are in `observer`'s table.
    pub fn present_count(&self, observer: usize) -> usize {
        self.views.get(observer).map_or(0, |v| v.present)
    }

    fn ensure(&mut self, observer: usize) {
        if self.views.len() <= observer {
            self.views.resize_with(observer + 1, View::default);
        }
    }
}

/// One refresh of one observer's mirror; see [`Views::pass`].
#[derive(Debug)]
pub(crate) struct Pass<'a> {
    views: &'a mut Views,
    now: Instant,
    observer: usize,
    observer_name: &'a str,
    stamp: u64,
    present: usize,
    alive: usize,
}

impl Pass<'_> {
    /// Checks one member of the observer's table against the invariants and records it.
    pub(crate) fn member(
        &mut self,
        name: &str,
        status: Status,
        incarnation: u32,
        addr: SocketAddr,
    ) {
        self.present += 1;
        if status == Status::Alive {
            self.alive += 1;
        }
        if self.present > self.views.capacity {
            self.violation(
                name,
                format_args!(
                    "holds {} members, over its capacity {}",
                    self.present, self.views.capacity
                ),
            );
        }
        let seen = Seen {
            status,
            incarnation,
            addr,
        };
        let forget_after = self.views.forget_absent_after;
        let view = &mut self.views.views[self.observer];
        let (now, stamp) = (self.now, self.stamp);
        let current = view.stamp;
        let stale = forget_after.is_some_and(|d| {
            view.records
                .get(name)
                .is_some_and(|r| r.stamp != current && r.since + d <= now)
        });
        if stale {
            view.records.remove(name);
        }
        match view.records.get_mut(name) {
            Some(record) => {
                let old = record.seen;
                if (old.status, old.incarnation) != (status, incarnation) {
                    record.since = now;
                }
                record.seen = seen;
                record.stamp = stamp;
                if incarnation < old.incarnation {
                    self.violation(
                        name,
                        format_args!(
                            "incarnation decreased from {} to {} ({:?} -> {:?})",
                            old.incarnation, incarnation, old.status, status
                        ),
                    );
                }
                let was_gone = matches!(old.status, Status::Left | Status::Failed);
                let now_live = matches!(status, Status::Alive | Status::Suspect);
                if was_gone && now_live && incarnation <= old.incarnation {
                    self.violation(
                        name,
                        format_args!(
                            "resurrected from {:?} at incarnation {} to {:?} at incarnation {}",
                            old.status, old.incarnation, status, incarnation
                        ),
                    );
                }
            }
            None => {
                view.records.insert(
                    name.to_owned(),
                    Record {
                        seen,
                        stamp,
                        since: now,
                    },
                );
            }
        }
    }

    /// Completes the refresh: members not fed to [`Pass::member`] are no longer in the
    /// observer's table (their records are kept for the invariants until reaped).
    pub(crate) fn finish(self) {
        let view = &mut self.views.views[self.observer];
        view.stamp = self.stamp;
        view.present = self.present;
        view.alive = self.alive;
    }

    fn violation(&self, member: &str, what: core::fmt::Arguments<'_>) -> ! {
        panic!(
            "invariant violated [seed {:#x}, t={}ms]: observer {} ({}) about member {}: {}",
            self.views.seed,
            self.now.as_millis(),
            self.observer,
            self.observer_name,
            member,
            what
        );
    }
}

/// Invariant 4: every node delivers each user event at most once (in one life: a restarted
/// node starts over). An event is its origin, Lamport time, name and payload.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deliveries {
    seed: u64,
    by_observer: Vec<BTreeSet<EventKey>>,
}

/// A user event's identity: origin, Lamport time, name, payload.
type EventKey = (String, u64, String, Vec<u8>);

impl Deliveries {
    /// No delivery yet, in a run with `seed` (for messages).
    pub(crate) fn new(seed: u64) -> Self {
        Deliveries {
            seed,
            by_observer: Vec::new(),
        }
    }

    /// Forgets what `observer` delivered (it was restarted).
    pub(crate) fn reset(&mut self, observer: usize) {
        if let Some(set) = self.by_observer.get_mut(observer) {
            set.clear();
        }
    }

    /// Records that `observer` delivered `delivery`.
    ///
    /// # Panics
    /// If it delivered the same event before, with the seed and virtual time.
    pub(crate) fn deliver(&mut self, delivery: &super::UserDelivery) {
        let o = delivery.observer;
        if self.by_observer.len() <= o {
            self.by_observer.resize_with(o + 1, BTreeSet::new);
        }
        let key = (
            delivery.origin.clone(),
            delivery.ltime,
            delivery.name.clone(),
            delivery.payload.clone(),
        );
        if !self.by_observer[o].insert(key) {
            panic!(
                "invariant violated [seed {:#x}, t={}ms]: observer {} delivered user event \
                 {:?} from {} at ltime {} twice",
                self.seed,
                delivery.at.as_millis(),
                o,
                delivery.name,
                delivery.origin,
                delivery.ltime
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "198.18.0.1:7946".parse().unwrap()
    }

    fn refresh(views: &mut Views, table: &[(&str, Status, u32)]) {
        let mut pass = views.pass(Instant::from_millis(7), 0, "obs");
        for &(name, status, inc) in table {
            pass.member(name, status, inc, addr());
        }
        pass.finish();
    }

    #[test]
    fn tracks_presence_and_counts() {
        let mut views = Views::new(1, 8);
        refresh(
            &mut views,
            &[("a", Status::Alive, 0), ("b", Status::Suspect, 1)],
        );
        assert_eq!((views.present_count(0), views.alive_count(0)), (2, 1));
        refresh(&mut views, &[("a", Status::Alive, 0)]);
        assert_eq!(views.get(0, "b"), None);
        assert_eq!(views.get(0, "a").unwrap().status, Status::Alive);
    }

    #[test]
    #[should_panic(expected = "incarnation decreased from 3 to 2")]
    fn decreasing_incarnation_panics() {
        let mut views = Views::new(1, 8);
        refresh(&mut views, &[("a", Status::Alive, 3)]);
        refresh(&mut views, &[("a", Status::Alive, 2)]);
    }

    #[test]
    #[should_panic(expected = "resurrected from Failed")]
    fn resurrection_at_same_incarnation_panics() {
        let mut views = Views::new(1, 8);
        refresh(&mut views, &[("a", Status::Failed, 3)]);
        refresh(&mut views, &[]);
        refresh(&mut views, &[("a", Status::Alive, 3)]);
    }

    #[test]
    fn refutation_and_reaping_are_allowed() {
        let mut views = Views::new(1, 8);
        refresh(&mut views, &[("a", Status::Failed, 3)]);
        refresh(&mut views, &[("a", Status::Alive, 4)]);
        views.forget(0, "a");
        refresh(&mut views, &[("a", Status::Alive, 0)]);
        views.reset(0);
        refresh(&mut views, &[]);
    }

    #[test]
    #[should_panic(expected = "over its capacity 1")]
    fn capacity_is_enforced() {
        let mut views = Views::new(1, 1);
        refresh(
            &mut views,
            &[("a", Status::Alive, 0), ("b", Status::Alive, 0)],
        );
    }

    fn delivery(observer: usize, ltime: u64) -> crate::sim::UserDelivery {
        crate::sim::UserDelivery {
            at: Instant::from_millis(3),
            observer,
            name: "deploy".into(),
            payload: b"v2".to_vec(),
            ltime,
            origin: "a".into(),
        }
    }

    #[test]
    fn each_node_may_deliver_an_event_once_per_life() {
        let mut d = Deliveries::new(1);
        d.deliver(&delivery(0, 1));
        d.deliver(&delivery(1, 1));
        d.deliver(&delivery(0, 2));
        d.reset(0);
        d.deliver(&delivery(0, 1));
    }

    #[test]
    #[should_panic(expected = "delivered user event \"deploy\" from a at ltime 1 twice")]
    fn a_second_delivery_panics() {
        let mut d = Deliveries::new(1);
        d.deliver(&delivery(2, 1));
        d.deliver(&delivery(2, 1));
    }
}
