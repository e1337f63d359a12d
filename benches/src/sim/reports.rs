//! Who reports whom as up, derived from the members' events alone, so it costs nothing per
//! step and works for any [`SimMember`](super::SimMember) and in [`Recording::Lean`]
//! runs.
//!
//! [`Recording::Lean`]: super::Recording::Lean

/// One bit per (observer, member): set by [`Event::MemberJoined`] and
/// [`Event::MemberUpdated`], cleared by [`Event::MemberFailed`], [`Event::MemberLeft`] and
/// [`Event::MemberReaped`]. A suspect stays up: it is still a member until declared failed.
///
/// [`Event::MemberJoined`]: rumor_core::Event::MemberJoined
/// [`Event::MemberUpdated`]: rumor_core::Event::MemberUpdated
/// [`Event::MemberFailed`]: rumor_core::Event::MemberFailed
/// [`Event::MemberLeft`]: rumor_core::Event::MemberLeft
/// [`Event::MemberReaped`]: rumor_core::Event::MemberReaped
#[derive(Clone, Debug, Default)]
pub struct Reports {
    rows: Vec<Vec<u64>>,
    counts: Vec<usize>,
    /// Bumped by every change, so that callers can cache what they derive.
    version: u64,
}

impl Reports {
    /// Records whether `observer` now reports `member` up.
    pub(crate) fn set(&mut self, observer: usize, member: usize, up: bool) {
        if self.rows.len() <= observer {
            self.rows.resize_with(observer + 1, Vec::new);
            self.counts.resize(observer + 1, 0);
        }
        let row = &mut self.rows[observer];
        let (word, bit) = (member / 64, 1u64 << (member % 64));
        if row.len() <= word {
            row.resize(word + 1, 0);
        }
        let was = row[word] & bit != 0;
        if was != up {
            row[word] ^= bit;
            if up {
                self.counts[observer] += 1;
            } else {
                self.counts[observer] -= 1;
            }
            self.version += 1;
        }
    }

    /// Forgets everything `observer` reported (it was restarted).
    pub(crate) fn reset(&mut self, observer: usize) {
        if let Some(row) = self.rows.get_mut(observer) {
            row.clear();
            self.counts[observer] = 0;
            self.version += 1;
        }
    }

    /// Whether `observer` currently reports `member` up.
    pub fn is_up(&self, observer: usize, member: usize) -> bool {
        self.rows
            .get(observer)
            .and_then(|row| row.get(member / 64))
            .is_some_and(|w| w & (1 << (member % 64)) != 0)
    }

    /// How many members (itself excluded) `observer` reports up.
    pub fn up_count(&self, observer: usize) -> usize {
        self.counts.get(observer).copied().unwrap_or(0)
    }

    /// A counter bumped by every change.
    pub fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_bits() {
        let mut r = Reports::default();
        r.set(2, 100, true);
        r.set(2, 100, true);
        r.set(2, 3, true);
        assert_eq!(r.up_count(2), 2);
        assert!(r.is_up(2, 100) && !r.is_up(1, 100) && !r.is_up(2, 4));
        r.set(2, 100, false);
        assert_eq!(r.up_count(2), 1);
        r.reset(2);
        assert_eq!(r.up_count(2), 0);
        assert!(!r.is_up(2, 3));
    }
}
