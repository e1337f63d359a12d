//! The application's side of a node: commands (join, leave, tags, user events, keys) and
//! getters (members, stats, config).

use super::*;

impl<const MEMBERS: usize, const UPDATES: usize> Node<MEMBERS, UPDATES> {
    /// Joins the cluster through `seed` (call again for more seeds). The node sends the
    /// seed its member table and asks for the seed's, retrying with exponential backoff
    /// until a seed answers; then [`Event::Joined`] is reported. Joining again after
    /// [`Node::leave`] brings the node back with a new incarnation.
    pub fn join(&mut self, now: Instant, seed: SocketAddr) -> Result<(), JoinError> {
        if self.local_slot().name.is_empty() {
            return Err(JoinError::Unconfigured);
        }
        self.start(now);
        if self.phase != Phase::Running {
            self.phase = Phase::Running;
            self.table.set_status(0, Status::Alive);
            let local = self.local_mut();
            local.incarnation = (local.incarnation + 1).min(MAX_COUNTER);
            self.broadcast(Subject::Member(0));
        }
        if seed == self.local_slot().addr || self.join.seeds.contains(&seed) {
            return Ok(());
        }
        self.join
            .seeds
            .push(seed)
            .map_err(|_| JoinError::TooManySeeds)?;
        if !self.join.remembered.contains(&seed) {
            if self.join.remembered.is_full() {
                self.join.remembered.remove(0);
            }
            let _ = self.join.remembered.push(seed);
        }
        self.join.backoff = self.config.join_retry_initial;
        self.timers.join = Some(now);
        // Spread our own arrival too, not only through the seed.
        self.broadcast(Subject::Member(0));
        Ok(())
    }

    /// Declares the failed member `name` gone for good, as Serf's `force-leave`: it becomes
    /// [`Status::Left`] here and the news is gossiped, so every member reports it as left
    /// (not failed) and reaps it after `reap_timeout`. Only a failed member can be forced out
    /// (a live one would refute at once); one that left already is left as it is. If it
    /// comes back, it rejoins as usual with a higher incarnation.
    pub fn force_leave(&mut self, now: Instant, name: &str) -> Result<(), ForceLeaveError> {
        if self.phase != Phase::Running {
            return Err(ForceLeaveError::NotRunning);
        }
        let (incarnation, status) = match self.find(name) {
            None => return Err(ForceLeaveError::UnknownMember),
            Some(0) => return Err(ForceLeaveError::Local),
            Some(i) => match self.table.get(i) {
                Some(s) => (s.incarnation, s.status),
                None => return Err(ForceLeaveError::UnknownMember),
            },
        };
        match status {
            Status::Failed => {
                self.start(now);
                self.merge_left(now, name, incarnation);
                Ok(())
            }
            Status::Left => Ok(()),
            Status::Alive | Status::Suspect => Err(ForceLeaveError::Live),
        }
    }

    /// Leaves gracefully: the node announces it left (others mark it [`Status::Left`], not
    /// failed), stops probing, and reports [`Event::LeaveComplete`] once the news has been
    /// gossiped. Keep driving the node until then.
    pub fn leave(&mut self, now: Instant) {
        self.start(now);
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Leaving;
        self.probe = None;
        self.syncs.clear();
        self.join.seeds.clear();
        self.timers.join = None;
        self.table.set_status(0, Status::Left);
        let local = self.local_mut();
        local.incarnation = (local.incarnation + 1).min(MAX_COUNTER);
        local.since = now;
        self.broadcast(Subject::Member(0));
        self.check_leave_complete();
    }

    /// Replaces the local node's tags and gossips them (with a new incarnation).
    pub fn set_tags(&mut self, now: Instant, tags: Tags) {
        self.start(now);
        let local = self.local_mut();
        if local.tags == tags {
            return;
        }
        local.tags = tags;
        local.incarnation = (local.incarnation + 1).min(MAX_COUNTER);
        self.broadcast(Subject::Member(0));
    }

    /// Sends a user event to every member. It is also delivered locally through
    /// [`Node::poll_event`], as Serf does.
    pub fn send_user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
    ) -> Result<(), UserEventError> {
        self.start(now);
        if self.phase != Phase::Running {
            return Err(UserEventError::NotRunning);
        }
        if name.is_empty() || name.len() > USER_EVENT_NAME_MAX {
            return Err(UserEventError::BadName);
        }
        let payload =
            heapless::Vec::from_slice(payload).map_err(|_| UserEventError::PayloadTooLarge)?;
        let name = heapless::String::try_from(name).map_err(|_| UserEventError::BadName)?;
        let event = UserEvent {
            origin: self.local_slot().name.clone(),
            ltime: self.user.stamp(),
            name,
            payload,
        };
        self.accept_user_event(event);
        Ok(())
    }

    /// Turns on authenticated encryption (or replaces the keyring). From now on every
    /// datagram is sealed with the primary key, and only datagrams that open with one of the
    /// keyring's keys are accepted: plaintext is dropped, unless [`Node::set_plaintext`]
    /// says otherwise (to turn encryption on in a running cluster).
    ///
    /// `entropy` must be fresh random bytes on every boot (from a hardware RNG, the OS, or a
    /// persisted boot counter hashed with the node name): it salts the nonces, which never
    /// repeat under one key as long as it never repeats. Within one boot the nonce counter
    /// goes on across calls, so setting a keyring again never repeats a nonce, even with
    /// the same entropy.
    pub fn set_keyring(&mut self, keyring: Keyring, entropy: [u8; 16]) {
        self.sealer = Some(match &self.sealer {
            Some(old) => old.rekeyed(keyring, entropy),
            None => Sealer::new(keyring, entropy),
        });
    }

    /// Sets what this node does about plaintext while it has a keyring: the steps of turning
    /// encryption on (or off) in a running cluster with no split (see [`Plaintext`]).
    pub fn set_plaintext(&mut self, plaintext: Plaintext) {
        self.plaintext = plaintext;
    }

    /// What this node does about plaintext while it has a keyring.
    pub fn plaintext(&self) -> Plaintext {
        self.plaintext
    }

    /// The keyring, when encryption is on.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.sealer.as_ref().map(|s| &s.keyring)
    }

    /// The keyring, to install, use or remove keys during a rotation.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.sealer.as_mut().map(|s| &mut s.keyring)
    }

    /// Every member this node tracks, itself first.
    pub fn members(&self) -> Members<'_> {
        Members::new(self.table.slots())
    }

    /// The member called `name`, if tracked.
    pub fn member(&self, name: &str) -> Option<Member<'_>> {
        self.members().find(|m| m.name() == name)
    }

    /// The local node's own entry.
    pub fn local(&self) -> Member<'_> {
        Member {
            slot: self.local_slot(),
            local: true,
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Capacity of the member table, the local node included.
    pub const fn capacity() -> usize {
        MEMBERS
    }

    /// True once the node has been told to leave (while the leave is gossiped and after);
    /// false before it is configured.
    pub fn is_leaving(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Leaving => true,
            // Also the phase of an unconfigured node, which has no local slot yet.
            Phase::Left => self.table.get(0).is_some(),
        }
    }

    /// Renders the current membership with `renderer` into `out`.
    pub fn render<R: Render + ?Sized, W: core::fmt::Write + ?Sized>(
        &self,
        renderer: &R,
        out: &mut W,
    ) -> core::fmt::Result {
        renderer.render(self.members(), out)
    }
}
