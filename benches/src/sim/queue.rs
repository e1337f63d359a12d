//! The discrete-event queue: pending arrivals, timers and resumes, ordered by
//! `(time, sequence number)` so that simultaneous events always run in the order they
//! were scheduled.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use rumor_core::Instant;

/// Something that will happen at a given virtual instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// A datagram reaches whichever node owns `to` at arrival time.
    Arrival {
        /// Index of the sending node (for the partition check at arrival).
        from_node: usize,
        /// The sender's address, as the receiver sees it.
        from: SocketAddr,
        /// The destination address.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Node `node` asked to be woken now (valid only while it is still armed for this
    /// instant and still in `generation`).
    Timer { node: usize, generation: u32 },
    /// Node `node`'s pause ends.
    Resume { node: usize, generation: u32 },
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    what: Pending,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the max-heap pops the earliest `(at, seq)` first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A min-queue of [`Pending`] events with deterministic tie-breaking.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Queue {
    /// Schedules `what` at `at`.
    pub(crate) fn push(&mut self, at: Instant, what: Pending) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            what,
        });
    }

    /// The instant of the earliest pending event.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns the earliest pending event.
    pub(crate) fn pop(&mut self) -> Option<(Instant, Pending)> {
        self.heap.pop().map(|e| (e.at, e.what))
    }

    /// Number of pending events (stale timers included).
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = Queue::default();
        let t = |ms| Instant::from_millis(ms);
        q.push(
            t(5),
            Pending::Timer {
                node: 0,
                generation: 0,
            },
        );
        q.push(
            t(3),
            Pending::Timer {
                node: 1,
                generation: 0,
            },
        );
        q.push(
            t(5),
            Pending::Timer {
                node: 2,
                generation: 0,
            },
        );
        q.push(
            t(3),
            Pending::Timer {
                node: 3,
                generation: 0,
            },
        );
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(_, p)| match p {
                Pending::Timer { node, .. } => node,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }
}
