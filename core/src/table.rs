//! The member table: fixed slots plus the small indexes that keep every hot path off
//! `O(MEMBERS)` scans, so a node tracking thousands of members costs about as much per
//! datagram as one tracking ten.
//!
//! - `index`: `(name hash, slot)` sorted, for `O(log n)` lookup by name;
//! - `timed`: the slots with a deadline (suspect, failed, left), for `poll_timeout`;
//! - `pending`: the slots with unreported transitions, for `poll_event`;
//! - `live`: how many members are alive or suspect;
//! - `used`: every slot at or past it is free, so scans and sampling stop there.
//!
//! Slot 0 is the local node and is never freed. Every status change goes through
//! [`Table::set_status`] and every new transition through [`Table::record`], which keep the
//! indexes true.

use crate::member::{Pending, Slot, Status, Transition};
use crate::name::fingerprint;

#[derive(Debug)]
pub(crate) struct Table<const M: usize> {
    /// Free slots hold [`Slot::EMPTY`]. Not `[Option<Slot>; M]`: `Option<Slot>` keeps its
    /// `None` in a spare value of the address's tag, which is not zero.
    slots: [Slot; M],
    occupied: [bool; M],
    index: heapless::Vec<(u32, u16), M>,
    timed: heapless::Vec<u16, M>,
    pending: heapless::Deque<u16, M>,
    live: usize,
    used: usize,
    free_hint: usize,
}

impl<const M: usize> Table<M> {
    /// A table with no member at all, not even the local node: every byte is zero. For a
    /// node not configured yet; [`Table::reset`] makes it usable.
    pub(crate) const fn empty() -> Self {
        Table {
            slots: [Slot::EMPTY; M],
            occupied: [false; M],
            index: heapless::Vec::new(),
            timed: heapless::Vec::new(),
            pending: heapless::Deque::new(),
            live: 0,
            used: 0,
            free_hint: 0,
        }
    }

    /// Empties the table in place and stores `local` in slot 0.
    pub(crate) fn reset(&mut self, local: Slot) {
        for s in self.slots.iter_mut() {
            *s = Slot::EMPTY;
        }
        self.occupied = [false; M];
        self.index.clear();
        self.timed.clear();
        self.pending.clear();
        self.live = 0;
        self.used = 0;
        self.free_hint = 1;
        self.put(0, local);
    }

    /// Every slot that may be occupied, with its occupancy: `0..used`.
    pub(crate) fn slots(&self) -> (&[Slot], &[bool]) {
        (&self.slots[..self.used], &self.occupied[..self.used])
    }

    /// One past the last occupied slot.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// The local node's slot, occupied once configured (empty before).
    pub(crate) fn local(&self) -> Option<&Slot> {
        self.slots.first()
    }

    /// [`Table::local`], mutable (same rules as [`Table::get_mut`]).
    pub(crate) fn local_mut(&mut self) -> Option<&mut Slot> {
        self.slots.first_mut()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Slot> {
        self.occupied.get(i)?.then(|| self.slots.get(i))?
    }

    /// Mutable access for everything but `status` (use [`Table::set_status`]) and `pending`
    /// (use [`Table::record`]).
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut Slot> {
        if !*self.occupied.get(i)? {
            return None;
        }
        self.slots.get_mut(i)
    }

    /// Slots `1..used`: every remote slot that may be occupied.
    pub(crate) fn remote_range(&self) -> core::ops::Range<usize> {
        1..self.used
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn timed(&self) -> &[u16] {
        &self.timed
    }

    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        let h = fingerprint(name);
        let start = self.index.partition_point(|&(k, _)| k < h);
        self.index[start..]
            .iter()
            .take_while(|&&(k, _)| k == h)
            .map(|&(_, i)| usize::from(i))
            .find(|&i| self.get(i).is_some_and(|s| s.name == name))
    }

    /// The lowest free slot, if any.
    fn next_free(&mut self) -> Option<usize> {
        let found = (self.free_hint..M).find(|&i| !self.occupied[i]);
        self.free_hint = found.unwrap_or(M);
        found
    }

    /// True when every slot is taken.
    pub(crate) fn is_full(&self) -> bool {
        // Every slot below the hint is taken.
        self.occupied
            .get(self.free_hint..)
            .is_none_or(|rest| rest.iter().all(|&taken| taken))
    }

    /// Stores `slot` in the lowest free slot; `None` (and nothing stored) when full.
    pub(crate) fn insert(&mut self, slot: Slot) -> Option<usize> {
        let i = self.next_free()?;
        self.free_hint = i + 1;
        self.put(i, slot);
        Some(i)
    }

    fn put(&mut self, i: usize, slot: Slot) {
        let key = (fingerprint(&slot.name), i as u16);
        let at = self.index.partition_point(|&k| k < key);
        // Cannot fail: one entry per occupied slot, at most M.
        let _ = self.index.insert(at, key);
        let status = slot.status;
        let pending = slot.pending;
        self.slots[i] = slot;
        self.occupied[i] = true;
        self.used = self.used.max(i + 1);
        self.count(i, None, Some(status));
        if pending != Pending::default() {
            let _ = self.pending.push_back(i as u16);
        }
    }

    /// Frees slot `i` (never the local one).
    pub(crate) fn remove(&mut self, i: usize) -> Option<Slot> {
        if i == 0 {
            return None;
        }
        if !*self.occupied.get(i)? {
            return None;
        }
        self.occupied[i] = false;
        let slot = core::mem::replace(&mut self.slots[i], Slot::EMPTY);
        let key = (fingerprint(&slot.name), i as u16);
        if let Ok(at) = self.index.binary_search(&key) {
            self.index.remove(at);
        }
        self.count(i, Some(slot.status), None);
        let mut left = self.pending.len();
        while left > 0 {
            left -= 1;
            if let Some(p) = self.pending.pop_front()
                && usize::from(p) != i
            {
                let _ = self.pending.push_back(p);
            }
        }
        self.free_hint = self.free_hint.min(i);
        while self.used > 1 && !self.occupied[self.used - 1] {
            self.used -= 1;
        }
        Some(slot)
    }

    /// Changes the status of slot `i`, keeping the counts and the timed list true.
    pub(crate) fn set_status(&mut self, i: usize, status: Status) {
        let Some(s) = self.get_mut(i) else {
            return;
        };
        let old = core::mem::replace(&mut s.status, status);
        self.count(i, Some(old), Some(status));
    }

    fn count(&mut self, i: usize, old: Option<Status>, new: Option<Status>) {
        let live = |s: Option<Status>| s.is_some_and(Status::is_live);
        let timed = |s: Option<Status>| i != 0 && s.is_some_and(|s| s != Status::Alive);
        self.live = (self.live + usize::from(live(new))).saturating_sub(usize::from(live(old)));
        match (timed(old), timed(new)) {
            (false, true) => {
                let _ = self.timed.push(i as u16);
            }
            (true, false) => self.timed.retain(|&t| usize::from(t) != i),
            _ => {}
        }
    }

    /// Records an unreported transition of slot `i`.
    pub(crate) fn record(&mut self, i: usize, what: Transition) {
        if i == 0 {
            return;
        }
        let Some(s) = self.get_mut(i) else {
            return;
        };
        let was_idle = s.pending == Pending::default();
        s.pending.record(what);
        if was_idle {
            let _ = self.pending.push_back(i as u16);
        }
    }

    /// The next unreported transition, with its slot.
    pub(crate) fn take_pending(&mut self) -> Option<(usize, Transition)> {
        while let Some(&p) = self.pending.front() {
            let i = usize::from(p);
            let what = self.get_mut(i).and_then(|s| s.pending.take());
            let idle = self.get(i).is_none_or(|s| s.pending == Pending::default());
            if idle {
                self.pending.pop_front();
            }
            if let Some(what) = what {
                return Some((i, what));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Tags;
    use crate::time::Instant;

    fn slot(name: &str, status: Status) -> Slot {
        Slot {
            name: crate::name::name(name).unwrap(),
            addr: "10.0.0.1:1".parse().unwrap(),
            incarnation: 0,
            status,
            tags: Tags::new(),
            since: Instant::ZERO,
            suspicion: None,
            pending: Pending::default(),
        }
    }

    #[test]
    fn indexes_follow_every_change() {
        let mut t: Table<4> = Table::empty();
        assert_eq!((t.slots().0.len(), t.get(0).map(|s| s.status)), (0, None));
        t.reset(slot("me", Status::Alive));
        let a = t.insert(slot("a", Status::Alive)).unwrap();
        let b = t.insert(slot("b", Status::Alive)).unwrap();
        let c = t.insert(slot("c", Status::Alive)).unwrap();
        assert!(t.insert(slot("d", Status::Alive)).is_none());
        assert!(t.is_full());
        assert_eq!(
            (t.find("b"), t.find("me"), t.find("zz")),
            (Some(b), Some(0), None)
        );
        assert_eq!(t.live(), 4);
        t.set_status(b, Status::Suspect);
        t.set_status(c, Status::Failed);
        assert_eq!((t.live(), t.timed().len()), (3, 2));
        t.record(a, Transition::Joined);
        t.record(c, Transition::Failed);
        t.record(c, Transition::Left);
        t.remove(c);
        assert_eq!(t.take_pending(), Some((a, Transition::Joined)));
        assert_eq!(t.take_pending(), None);
        assert_eq!((t.live(), t.timed().len(), t.find("c")), (3, 1, None));
        assert_eq!(t.insert(slot("e", Status::Alive)), Some(c));
        assert_eq!(t.find("e"), Some(c));
        t.remove(c);
        assert_eq!(t.slots().0.len(), 3);
        assert!(t.remove(0).is_none());
    }
}
