//! The liveness check run after an attack: a newcomer joins, members refute, push-pull
//! works, user events are delivered once, each within its documented bound.

use super::*;

/// A liveness invariant that did not hold after the attack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The newcomer did not join, or some member did not see every other one alive at its
    /// real address, within [`CONVERGE_BOUND`]. `wrong` lists `(observer, member, what
    /// it holds)` for every disagreement.
    NoConvergence {
        /// Every disagreement, as `(observer, member, held)`.
        wrong: Vec<(String, String, String)>,
    },
    /// A member's refutation of a suspicion about it did not reach everybody within
    /// [`REFUTE_BOUND`].
    CannotRefute {
        /// The member.
        member: String,
        /// Its incarnation when suspected.
        incarnation: u32,
    },
    /// A member received no push-pull chunk within [`PUSH_PULL_BOUND`].
    NoPushPull {
        /// The member.
        member: String,
    },
    /// Honest members dropped each other's datagrams as malformed after the attack.
    HonestDropped {
        /// Malformed drops per member after the attack.
        malformed: Vec<(String, u64)>,
    },
    /// A user event sent after the attack did not reach everybody within [`EVENT_BOUND`].
    EventNotDelivered {
        /// The event's origin.
        origin: String,
        /// The members that did not deliver it.
        missing: Vec<String>,
    },
    /// A member delivered one user event more than once.
    DeliveredTwice {
        /// The member.
        observer: String,
        /// The event's origin.
        origin: String,
        /// Its Lamport time.
        ltime: u64,
        /// Its name.
        name: String,
    },
}

/// What [`check_liveness`] measured once every invariant held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// From the end of the attack until the newcomer had joined and everybody saw
    /// everybody alive at its real address.
    pub converged_after: Duration,
    /// From the suspicions until every refutation had reached everybody.
    pub refuted_after: Duration,
}

/// The liveness invariants, checked once the attack is over. In order, each within its bound of virtual time:
///
/// 1. a newcomer named [`NEWCOMER`] joins through node 0, and every running member holds
///    every running member alive at its real address ([`CONVERGE_BOUND`]);
/// 2. every member, suspected at its current incarnation by a peer, refutes, and every
///    member hears it ([`REFUTE_BOUND`]);
/// 3. every member receives a push-pull chunk ([`PUSH_PULL_BOUND`]), and no member drops
///    a datagram as malformed after the attack (only the adversary sends bad ones);
/// 4. a user event from each member in turn reaches every member ([`EVENT_BOUND`] each), and no
///    member ever delivered one event twice (attack included).
///
/// The simulator's own invariants (incarnations never decrease, no resurrection, no table
/// over capacity) are checked after every step throughout, and panic.
///
/// # Errors
/// The first invariant that failed.
pub fn check_liveness(sim: &mut Target) -> Result<Recovery, Violation> {
    let stop = sim.now();
    let malformed_before: Vec<u64> = (0..sim.len())
        .map(|i| sim.node(i).stats().dropped_malformed)
        .collect();

    // 1. A newcomer joins; everybody sees everybody alive at its real address.
    let newcomer = sim.add_node(NEWCOMER, Config::local());
    if let Err(e) = sim.join(newcomer, 0) {
        panic!("the newcomer could not start joining: {e:?}");
    }
    // Only the newcomer's name is wrong, or members are missing: squatted names and
    // evicted members come back within `squat_bound`.
    let squatted = |s: &Target| {
        disagreements(s).iter().all(|(observer, member, held)| {
            observer == NEWCOMER || member == NEWCOMER || held == "absent"
        })
    };
    let converged = match sim.run_until_pred(stop + CONVERGE_BOUND, |s| s.converged()) {
        Some(at) => Some(at),
        None if squatted(sim) => sim.run_until_pred(stop + squat_bound(), |s| s.converged()),
        None => None,
    };
    let Some(converged) = converged else {
        return Err(Violation::NoConvergence {
            wrong: disagreements(sim),
        });
    };

    // 2. Every member refutes a suspicion about itself.
    let members: Vec<usize> = sim.running().collect();
    let before: Vec<u32> = members
        .iter()
        .map(|&k| sim.node(k).local().incarnation())
        .collect();
    for (p, (&k, &inc)) in members.iter().zip(&before).enumerate() {
        let accuser = members[(p + 1) % members.len()];
        let sender = members[(p + 2) % members.len()];
        let frame = Forged {
            message: ForgedMessage::Gossip,
            updates: vec![ForgedUpdate::Suspect {
                name: sim.name(k).to_owned(),
                incarnation: inc,
                from: sim.name(accuser).to_owned(),
            }],
        };
        let bytes = frame
            .encode(Config::local().cluster_id)
            .expect("a suspicion fits in a datagram");
        let _ = sim.inject_datagram(accuser, sim.addr(sender), &bytes);
    }
    let suspected_at = sim.now();
    let refuted = |s: &Target| {
        s.converged()
            && members.iter().zip(&before).all(|(&k, &inc)| {
                members
                    .iter()
                    .all(|&o| s.seen(o, k).is_some_and(|seen| seen.incarnation > inc))
            })
    };
    let Some(refuted_at) = sim.run_until_pred(suspected_at + REFUTE_BOUND, refuted) else {
        let (k, inc) = members
            .iter()
            .zip(&before)
            .find(|&(&k, &inc)| {
                !members
                    .iter()
                    .all(|&o| sim.seen(o, k).is_some_and(|seen| seen.incarnation > inc))
            })
            .map_or((0, 0), |(&k, &inc)| (k, inc));
        return Err(Violation::CannotRefute {
            member: sim.name(k).to_owned(),
            incarnation: inc,
        });
    };

    // 3. Everybody push-pulls, and nobody drops an honest datagram as malformed.
    let chunks: Vec<u64> = members
        .iter()
        .map(|&k| sim.node(k).stats().sync_chunks_received)
        .collect();
    let synced = |s: &Target| {
        members
            .iter()
            .zip(&chunks)
            .all(|(&k, &c)| s.node(k).stats().sync_chunks_received > c)
    };
    let pushed = sim.run_until_pred(sim.now() + PUSH_PULL_BOUND, synced);
    let malformed: Vec<(String, u64)> = (0..sim.len())
        .map(|i| {
            let before = malformed_before.get(i).copied().unwrap_or(0);
            let after = sim.node(i).stats().dropped_malformed;
            (sim.name(i).to_owned(), after - before)
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    if !malformed.is_empty() {
        return Err(Violation::HonestDropped { malformed });
    }
    if pushed.is_none() {
        let k = members
            .iter()
            .zip(&chunks)
            .find(|&(&k, &c)| sim.node(k).stats().sync_chunks_received <= c)
            .map_or(0, |(&k, _)| k);
        return Err(Violation::NoPushPull {
            member: sim.name(k).to_owned(),
        });
    }

    // 4. User events reach everybody, once. One at a time: a burst from several members
    //    within one gossip interval is issue 10 item 2, not the adversary's doing.
    for &k in &members {
        let sent_at = sim.now();
        let origin = sim.name(k).to_owned();
        sim.send_user_event(k, "after-attack", origin.as_bytes())
            .expect("a running member can send an event");
        let delivered = |s: &Target| -> Vec<usize> {
            s.log()
                .user_deliveries()
                .iter()
                .filter(|d| d.at >= sent_at && d.name == "after-attack" && d.origin == origin)
                .map(|d| d.observer)
                .collect()
        };
        let everywhere = |s: &Target| {
            let got = delivered(s);
            members.iter().all(|o| got.contains(o))
        };
        if sim
            .run_until_pred(sent_at + EVENT_BOUND, everywhere)
            .is_none()
        {
            let got = delivered(sim);
            return Err(Violation::EventNotDelivered {
                origin,
                missing: members
                    .iter()
                    .filter(|o| !got.contains(o))
                    .map(|&o| sim.name(o).to_owned())
                    .collect(),
            });
        }
    }
    delivered_once(sim)?;
    Ok(Recovery {
        converged_after: converged - stop,
        refuted_after: refuted_at - suspected_at,
    })
}

/// Fails if any member delivered one user event (same origin, Lamport time, name and
/// payload) more than once.
fn delivered_once(sim: &Target) -> Result<(), Violation> {
    let mut seen = BTreeMap::new();
    for d in sim.log().user_deliveries() {
        let key = (
            d.observer,
            d.origin.as_str(),
            d.ltime,
            d.name.as_str(),
            &d.payload,
        );
        if seen.insert(key, ()).is_some() {
            return Err(Violation::DeliveredTwice {
                observer: sim.name(d.observer).to_owned(),
                origin: d.origin.clone(),
                ltime: d.ltime,
                name: d.name.clone(),
            });
        }
    }
    Ok(())
}

/// Every `(observer, member, what it holds)` that keeps the cluster from converging.
fn disagreements(sim: &Target) -> Vec<(String, String, String)> {
    let mut wrong = Vec::new();
    let running: Vec<usize> = sim.running().collect();
    for &o in &running {
        for (name, seen) in sim.view(o) {
            let real = sim.index_of(&name).filter(|i| running.contains(i));
            let ok = match real {
                Some(i) => seen.status == Status::Alive && seen.addr == sim.addr(i),
                None => seen.status != Status::Alive,
            };
            if !ok {
                let held = format!(
                    "{:?} at {} inc {}",
                    seen.status, seen.addr, seen.incarnation
                );
                wrong.push((sim.name(o).to_owned(), name, held));
            }
        }
        for &i in &running {
            if sim.seen(o, i).is_none() {
                wrong.push((
                    sim.name(o).to_owned(),
                    sim.name(i).to_owned(),
                    "absent".into(),
                ));
            }
        }
    }
    wrong
}
