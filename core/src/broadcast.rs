//! The dissemination queue: which updates still ride on outgoing packets, and how often
//! they already did.
//!
//! Entries name what to send (a member's current state, a buffered user event), never a
//! copy of it: when a member changes twice, the packet carries the latest state once.

/// What an entry disseminates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The current state of the member in this table slot.
    Member(u16),
    /// The user event in this buffer slot.
    User(u8),
}

/// The local node's own state: never evicted.
const LOCAL: Subject = Subject::Member(0);

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) subject: Subject,
    pub(crate) transmits: u8,
}

/// At most `U` pending updates, least-sent first.
#[derive(Debug)]
pub(crate) struct Queue<const U: usize> {
    entries: heapless::Vec<Entry, U>,
}

/// What [`Queue::push`] did: callers count every update lost to a full queue.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued, or already queued and now news again.
    Queued,
    /// Queued in place of the most-sent entry, which is lost.
    Evicted,
    /// Not queued: the queue holds only the local node's own state.
    Dropped,
}

impl<const U: usize> Queue<U> {
    pub(crate) const fn new() -> Self {
        Queue {
            entries: heapless::Vec::new(),
        }
    }

    /// Queues `subject` as news (sent zero times). A full queue drops an entry: its
    /// most-sent one, but never the local node's own state ([`Subject::Member`] of slot 0:
    /// a refutation or a leave must go out), which is queued whatever else is dropped for it.
    pub(crate) fn push(&mut self, subject: Subject) -> Pushed {
        if let Some(e) = self.entries.iter_mut().find(|e| e.subject == subject) {
            e.transmits = 0;
            return Pushed::Queued;
        }
        let entry = Entry {
            subject,
            transmits: 0,
        };
        match self.entries.push(entry) {
            Ok(()) => Pushed::Queued,
            Err(entry) => {
                let worst = self
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.subject != LOCAL)
                    .max_by_key(|(_, e)| e.transmits)
                    .map(|(i, _)| i);
                match worst {
                    Some(i) => {
                        self.entries[i] = entry;
                        Pushed::Evicted
                    }
                    None => Pushed::Dropped,
                }
            }
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Forgets `subject`.
    pub(crate) fn remove(&mut self, subject: Subject) {
        self.entries.retain(|e| e.subject != subject);
    }

    /// True when `subject` is still queued.
    pub(crate) fn contains(&self, subject: Subject) -> bool {
        self.entries.iter().any(|e| e.subject == subject)
    }

    /// Orders entries least-sent first (insertion sort: the queue is nearly sorted).
    pub(crate) fn sort(&mut self) {
        let e = &mut self.entries;
        for i in 1..e.len() {
            let mut j = i;
            while j > 0 && e[j - 1].transmits > e[j].transmits {
                e.swap(j - 1, j);
                j -= 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get(&self, i: usize) -> Option<Entry> {
        self.entries.get(i).copied()
    }

    /// Counts one more transmission of entry `i`.
    pub(crate) fn sent(&mut self, i: usize) {
        if let Some(e) = self.entries.get_mut(i) {
            e.transmits = e.transmits.saturating_add(1);
        }
    }

    /// Drops entries sent `limit` times or more; user events get half as many again (see
    /// [`limit_for`]).
    pub(crate) fn retire(&mut self, limit: u8) {
        self.entries
            .retain(|e| e.transmits < limit_for(e.subject, limit));
    }
}

/// The retransmission limit of `subject` when member updates have `limit`: user events get
/// half as many again. A member that misses a member update learns it at the next push-pull,
/// but a user event is replayed only while it is among the newest few buffered, so gossip
/// is its one real chance. Simulated, 20 nodes, one event every 300 ms for a minute
/// (scenario i3, 100 seeds): a third of the runs lost an event somewhere with the members'
/// limit, none with half as many again, for 30 % more bytes in that run.
pub(crate) fn limit_for(subject: Subject, limit: u8) -> u8 {
    match subject {
        Subject::Member(_) => limit,
        Subject::User(_) => limit.saturating_add(limit / 2),
    }
}

/// `retransmit_mult * ceil(log10(n + 1))`, at least 1.
pub(crate) fn retransmit_limit(mult: u8, n: usize) -> u8 {
    let mut digits = 0u8;
    let mut pow: usize = 1;
    while pow < n.saturating_add(1) && digits < 20 {
        pow = pow.saturating_mul(10);
        digits += 1;
    }
    mult.saturating_mul(digits.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_scales_with_log10() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
    }

    #[test]
    fn full_queue_drops_the_most_sent_and_news_resets_count() {
        let mut q: Queue<2> = Queue::new();
        assert_eq!(q.push(Subject::Member(1)), Pushed::Queued);
        assert_eq!(q.push(Subject::Member(2)), Pushed::Queued);
        q.sent(0);
        q.sent(0);
        assert_eq!(q.push(Subject::Member(3)), Pushed::Evicted);
        assert!(!q.contains(Subject::Member(1)));
        q.sent(1);
        assert_eq!(q.push(Subject::Member(3)), Pushed::Queued);
        q.sort();
        assert_eq!(q.get(0).unwrap().transmits, 0);
        q.retire(1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn user_events_are_retransmitted_half_as_many_times_again() {
        let mut q: Queue<4> = Queue::new();
        assert_eq!(q.push(Subject::Member(1)), Pushed::Queued);
        assert_eq!(q.push(Subject::User(0)), Pushed::Queued);
        let sent_each = |q: &mut Queue<4>, times: usize| {
            for _ in 0..times {
                for i in 0..q.len() {
                    q.sent(i);
                }
            }
        };
        sent_each(&mut q, 8);
        q.retire(8);
        assert!(!q.contains(Subject::Member(1)));
        assert!(q.contains(Subject::User(0)));
        sent_each(&mut q, 3);
        q.retire(8);
        assert!(q.contains(Subject::User(0)), "11 of 12 sent");
        sent_each(&mut q, 1);
        q.retire(8);
        assert!(q.is_empty());
        assert_eq!(limit_for(Subject::User(0), u8::MAX), u8::MAX);
    }

    #[test]
    fn full_queue_keeps_the_local_state_however_often_it_was_sent() {
        let mut q: Queue<2> = Queue::new();
        assert_eq!(q.push(LOCAL), Pushed::Queued);
        for _ in 0..5 {
            q.sent(0);
        }
        for m in 1..10 {
            let _ = q.push(Subject::Member(m));
            assert!(q.contains(LOCAL), "after member {m}");
        }
        // A full queue of others makes room for it.
        let mut q: Queue<1> = Queue::new();
        assert_eq!(q.push(Subject::Member(1)), Pushed::Queued);
        assert_eq!(q.push(LOCAL), Pushed::Evicted);
        assert!(q.contains(LOCAL));
        assert_eq!(
            q.push(Subject::Member(2)),
            Pushed::Dropped,
            "the newcomer is dropped instead"
        );
        assert!(q.contains(LOCAL) && !q.contains(Subject::Member(2)));
    }
}
