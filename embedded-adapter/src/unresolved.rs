//! Keeping one unresolvable destination from holding up every datagram.
//!
//! smoltcp (0.13, and embassy-net on it) sends at most one ARP request per second for all
//! neighbours together, silences a UDP socket for a second when its next datagram's
//! neighbour is missing, and sends nothing else from that socket meanwhile. A member new to
//! this node (learnt from gossip, or one more address behind the same host) can therefore
//! hold up the socket for about a second, and a crashed one, whose address never resolves,
//! forever.
//!
//! Both drivers therefore keep one datagram in the socket at a time, and keep reading input
//! while it waits. A datagram that has not left within [`STALL`] (longer than smoltcp's
//! second, so that a live neighbour gets its second ARP request) is given up: the socket is
//! replaced, dropping it, and its destination is skipped for [`HOLD`], doubling while it
//! keeps stalling (up to 32 s) and forgotten once a datagram to it leaves. Dropping loses
//! only datagrams to that destination; the protocol treats them as lost.

use core::net::IpAddr;

use rumor_core::{Duration, Instant};

/// How long the datagram in the socket may wait to leave before the driver gives it up:
/// smoltcp's one-second silence for a missing neighbour, then its next ARP request and the
/// answer.
pub const STALL: Duration = Duration::from_millis(1_250);

/// How long a destination is skipped after its datagram stalled the first time; each
/// further stall in a row doubles it, up to 32 times.
pub const HOLD: Duration = Duration::from_millis(1_000);

/// Most doublings of [`HOLD`].
const MAX_DOUBLINGS: u32 = 5;

/// The datagram a driver handed to its socket last, until the socket is empty again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlight {
    /// Its destination.
    pub(crate) to: IpAddr,
    /// When it was handed to the socket.
    pub(crate) since: Instant,
}

impl InFlight {
    /// When it is given up if it is still in the socket.
    pub(crate) fn deadline(&self) -> Instant {
        self.since + STALL
    }
}

/// Destinations tracked at once; another replaces the one whose hold ends first.
const SLOTS: usize = 4;

/// One destination that stalled the socket.
#[derive(Clone, Copy, Debug)]
struct Held {
    ip: IpAddr,
    until: Instant,
    /// Stalls in a row, 1 and up.
    stalls: u32,
}

/// Destinations whose datagrams stalled the socket lately.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Unresolved {
    held: [Option<Held>; SLOTS],
}

impl Unresolved {
    /// Records that a datagram to `ip` stalled at `now`: skips `ip` for [`HOLD`], doubled
    /// for each stall in a row before.
    pub(crate) fn stalled(&mut self, ip: IpAddr, now: Instant) {
        let known = self.slot(ip);
        let stalls = known
            .and_then(|i| self.held[i])
            .map_or(1, |h| (h.stalls + 1).min(MAX_DOUBLINGS + 1));
        let hold = Duration::from_millis(HOLD.as_millis() << (stalls - 1));
        let i = known.unwrap_or_else(|| self.victim());
        self.held[i] = Some(Held {
            ip,
            until: now + hold,
            stalls,
        });
    }

    /// Records that a datagram to `ip` left: it is resolved, forget its stalls.
    pub(crate) fn resolved(&mut self, ip: IpAddr) {
        if let Some(i) = self.slot(ip) {
            self.held[i] = None;
        }
    }

    /// True while datagrams to `ip` are to be skipped.
    pub(crate) fn is_held(&self, ip: IpAddr, now: Instant) -> bool {
        self.slot(ip)
            .and_then(|i| self.held[i])
            .is_some_and(|h| now < h.until)
    }

    fn slot(&self, ip: IpAddr) -> Option<usize> {
        self.held.iter().position(|h| h.is_some_and(|h| h.ip == ip))
    }

    /// A free slot, else the one whose hold ends first.
    fn victim(&self) -> usize {
        (0..SLOTS)
            .min_by_key(|&i| self.held[i].map_or(Instant::ZERO, |h| h.until))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 42, 0, last])
    }

    fn ms(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn holds_then_lets_go() {
        let mut u = Unresolved::default();
        u.stalled(ip(1), ms(5_000));
        assert!(u.is_held(ip(1), ms(5_999)));
        assert!(!u.is_held(ip(2), ms(5_000)));
        assert!(!u.is_held(ip(1), ms(6_000)));
    }

    #[test]
    fn stalls_in_a_row_double_the_hold_up_to_32_s() {
        let mut u = Unresolved::default();
        let mut t = 0;
        for hold in [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 32_000] {
            u.stalled(ip(1), ms(t));
            assert!(u.is_held(ip(1), ms(t + hold - 1)), "{hold}");
            assert!(!u.is_held(ip(1), ms(t + hold)), "{hold}");
            t += hold;
        }
        u.resolved(ip(1));
        u.stalled(ip(1), ms(t));
        assert!(
            !u.is_held(ip(1), ms(t + 1_000)),
            "a resolved destination starts over"
        );
    }

    #[test]
    fn a_full_table_replaces_the_hold_that_ends_first() {
        let mut u = Unresolved::default();
        for k in 0..SLOTS as u8 {
            u.stalled(ip(k), ms(u64::from(k)));
        }
        u.stalled(ip(99), ms(10));
        assert!(u.is_held(ip(99), ms(10)));
        assert!(!u.is_held(ip(0), ms(10)), "the first to end went");
        assert!((1..SLOTS as u8).all(|k| u.is_held(ip(k), ms(10))));
    }
}
