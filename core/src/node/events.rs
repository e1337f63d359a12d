//! `poll_event`: non-member events first, then member transitions, then user events.

use super::Node;
use crate::event::Event;
use crate::member::Transition;

impl<const M: usize, const U: usize> Node<M, U> {
    /// The next event for the application, or `None` when there is none.
    ///
    /// Member transitions, reaps included, are kept in the member table until reported, so
    /// they are never lost however long the application waits; several transitions of one
    /// member between two drains are coalesced (see [`Event`]). A reaped member's slot is
    /// freed when its [`Event::MemberReaped`] is returned, and a failed or left member's
    /// slot is only given to a newcomer once its transition has been reported.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if let Some(e) = self.next_member_event() {
            return Some(e);
        }
        let e = self.user.next_undelivered()?;
        self.stats.user_events += 1;
        Some(Event::User(e))
    }

    fn next_member_event(&mut self) -> Option<Event> {
        let (i, what) = self.table.take_pending()?;
        let s = self.table.get(i)?;
        let (name, addr) = (s.name.clone(), s.addr);
        Some(match what {
            Transition::Joined => Event::MemberJoined { name, addr },
            Transition::Updated => Event::MemberUpdated { name, addr },
            Transition::Suspected => Event::MemberSuspected { name, addr },
            Transition::Left => Event::MemberLeft { name, addr },
            Transition::Failed => Event::MemberFailed { name, addr },
            // The slot is freed as its reap is reported.
            Transition::Reaped => {
                self.free_slot(i)?;
                Event::MemberReaped { name }
            }
        })
    }
}
