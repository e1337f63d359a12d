//! Protocol timing and sizing, with presets modelled on HashiCorp memberlist's profiles.

use core::net::SocketAddr;

use crate::time::Duration;
use crate::wire::MIN_DATAGRAM;

/// Largest `Config::max_datagram`: the UDP payload of a 1500-byte Ethernet frame over IPv4
/// (1500 − 20 bytes of IPv4 header − 8 of UDP header), so no datagram is fragmented.
pub const MAX_DATAGRAM_V4: usize = 1472;
/// Largest datagram sent to an IPv6 address (1500 − 40 bytes of IPv6 header − 8 of UDP
/// header): `poll_transmit` caps `Config::max_datagram` at this for IPv6 destinations.
pub const MAX_DATAGRAM_V6: usize = 1452;

/// Every knob of the protocol. Start from a preset ([`Config::lan`], [`Config::wan`],
/// [`Config::local`], [`Config::small_mtu`]) and adjust fields; [`Node::new`](crate::Node::new)
/// validates the result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// Carried in every datagram; datagrams of another cluster are dropped. Lets several
    /// clusters share a network by accident without merging.
    ///
    /// *Tuning*: give each cluster on a shared network its own. It costs nothing; it is not a
    /// secret (use a keyring for that).
    pub cluster_id: u32,
    /// Time between two probes of the failure detector (scaled up by local health).
    ///
    /// *Tuning*: the main knob of detection time, which is about one `probe_interval` plus
    /// the suspicion timeout (itself a multiple of it). Lower it for faster detection; each member
    /// then sends `1 / probe_interval` pings a second, and a slow or paused peer is
    /// suspected sooner. Raise it on slow links or battery-powered nodes.
    pub probe_interval: Duration,
    /// How long a direct ping waits for its ack before indirect probes start (scaled up by
    /// local health). At most half of `probe_interval`: a helper nacks 4/5 of it after
    /// being asked, and its nack must arrive before the probe period ends.
    ///
    /// *Tuning*: a few round-trip times of the network (the 99th percentile). Too low and
    /// every jitter spike costs `indirect_checks` extra pings; too high and a dead member is
    /// noticed later.
    pub probe_timeout: Duration,
    /// How many helpers are asked to probe a silent member indirectly (the SWIM `k`).
    ///
    /// *Tuning*: more helpers make a false suspicion from one lossy path less likely, at
    /// `2 * indirect_checks` extra datagrams per missed ack. 3 suits most networks; 1 is
    /// enough on loopback.
    pub indirect_checks: u8,
    /// Scales the suspicion timeout: `suspicion_mult * max(1, log10(n)) * probe_interval`
    /// is the shortest time a suspect gets to refute.
    ///
    /// *Tuning*: raise it if members with long pauses (garbage collection, overloaded
    /// hosts) are declared failed while alive; every step adds about one `probe_interval`
    /// to the detection time of a real crash.
    pub suspicion_mult: u8,
    /// The longest suspicion timeout, as a multiple of the shortest (Lifeguard). A fresh
    /// suspicion starts at the longest and shrinks as independent confirmations arrive.
    ///
    /// *Tuning*: higher values protect a suspect that only one slow member accuses, and
    /// delay detection when few members confirm (small clusters). Lower it in clusters of a
    /// handful of members if detection is too slow.
    pub suspicion_max_timeout_mult: u8,
    /// Upper bound of the local health score (Lifeguard); probe interval and timeout are
    /// multiplied by `score + 1`, so at most by this value.
    ///
    /// *Tuning*: the highest factor by which an overloaded node slows its own probing
    /// rather than accuse healthy peers. 1 turns the mechanism off; higher values make a
    /// struggling node quieter, and its own detections slower.
    pub awareness_max: u8,
    /// Time between dedicated gossip rounds.
    ///
    /// *Tuning*: lower it to spread updates faster (convergence grows with it), at
    /// `gossip_nodes / gossip_interval` datagrams a second per member while updates are
    /// pending; rounds with nothing to say send nothing.
    pub gossip_interval: Duration,
    /// Peers contacted per gossip round.
    ///
    /// *Tuning*: more peers per round spread an update in fewer rounds, at one datagram
    /// each. 3 or 4 suit clusters up to a few hundred members.
    pub gossip_nodes: u8,
    /// Each update is piggybacked about `retransmit_mult * ceil(log10(n + 1))` times.
    ///
    /// *Tuning*: raise it on lossy networks so updates still reach everyone; it costs room
    /// in every datagram for longer, and a full update queue evicts sooner.
    pub retransmit_mult: u8,
    /// Time between two push-pull anti-entropy exchanges (scaled up beyond 32 members,
    /// as memberlist does).
    ///
    /// *Tuning*: the bound on how long a missed update or a healed partition takes to
    /// repair. Each exchange sends the whole member table both ways, so lower it only for
    /// small clusters.
    pub push_pull_interval: Duration,
    /// How long a failed or left member stays in the table (and keeps being gossiped as
    /// such) before it is forgotten.
    ///
    /// *Tuning*: longer than any partition you expect to heal by itself, so both sides
    /// still know each other's fate; a failed member holds its table slot this long.
    pub reap_timeout: Duration,
    /// First retry delay for an unanswered join; doubles up to `join_retry_max`.
    ///
    /// *Tuning*: about the time a seed takes to start; lower values only send more
    /// datagrams to a seed that is not there.
    pub join_retry_initial: Duration,
    /// Longest delay between join attempts.
    ///
    /// *Tuning*: the longest a node waits alone after its seeds come back; lower it if
    /// nodes routinely boot before their seeds.
    pub join_retry_max: Duration,
    /// Largest datagram this node sends, in bytes (IP and UDP headers excluded): at most
    /// [`MAX_DATAGRAM_V4`], and capped at [`MAX_DATAGRAM_V6`] for IPv6 destinations.
    ///
    /// *Tuning*: the path MTU minus 28 (IPv4) or 48 (IPv6) bytes, so nothing is
    /// fragmented. Smaller datagrams carry fewer piggybacked updates and cut push-pull into
    /// more chunks; encryption takes 40 bytes of each.
    pub max_datagram: usize,
    /// Serf's `-replay`: a joining node takes in the user events its seed's push-pull
    /// replays (the seed's newest buffered ones, at most 8, within its de-duplication
    /// window) and delivers them, instead of treating everything older than the seed's
    /// clock as history. Off in every preset.
    ///
    /// *Tuning*: on only for applications whose handlers must see the few most recent
    /// events they missed, and are idempotent (a restarted node sees them again).
    pub replay_user_events: bool,
}

/// Why a [`Config`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `probe_interval` is zero.
    ZeroProbeInterval,
    /// `probe_timeout` is zero or not shorter than `probe_interval`.
    ProbeTimeoutNotBelowInterval,
    /// `gossip_interval` is zero.
    ZeroGossipInterval,
    /// `push_pull_interval` is zero.
    ZeroPushPullInterval,
    /// `suspicion_mult` is zero or `suspicion_max_timeout_mult` is below 1.
    BadSuspicionMultipliers,
    /// `awareness_max` is zero.
    ZeroAwarenessMax,
    /// `retransmit_mult` is zero, so updates would never be sent.
    ZeroRetransmitMult,
    /// `max_datagram` is outside `MIN_DATAGRAM..=MAX_DATAGRAM_V4`.
    DatagramSizeOutOfRange,
    /// A join retry delay is zero or the initial one exceeds the maximum.
    BadJoinRetry,
    /// The member table cannot hold even the local node and one peer (`MEMBERS < 2`), or
    /// the update queue has no room (`UPDATES < 1`), or `MEMBERS` exceeds 65,535.
    BadCapacity,
    /// `probe_timeout` is more than half of `probe_interval`: a helper's nack (sent 4/5 of
    /// `probe_timeout` after the indirect probe request) could not arrive before the probe
    /// period ends, so every failed probe would count against this node's own health.
    NackAfterProbeInterval,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            ConfigError::ZeroProbeInterval => "probe_interval must be above zero",
            ConfigError::ProbeTimeoutNotBelowInterval => {
                "probe_timeout must be above zero and below probe_interval"
            }
            ConfigError::ZeroGossipInterval => "gossip_interval must be above zero",
            ConfigError::ZeroPushPullInterval => "push_pull_interval must be above zero",
            ConfigError::BadSuspicionMultipliers => {
                "suspicion_mult and suspicion_max_timeout_mult must be at least 1"
            }
            ConfigError::ZeroAwarenessMax => "awareness_max must be at least 1",
            ConfigError::ZeroRetransmitMult => "retransmit_mult must be at least 1",
            ConfigError::DatagramSizeOutOfRange => {
                return write!(
                    f,
                    "max_datagram must be within {MIN_DATAGRAM}..={MAX_DATAGRAM_V4} bytes"
                );
            }
            ConfigError::BadJoinRetry => {
                "join retry delays must be above zero, initial not above max"
            }
            ConfigError::BadCapacity => {
                return write!(
                    f,
                    "MEMBERS must be within 2..={} and UPDATES at least 1",
                    u16::MAX
                );
            }
            ConfigError::NackAfterProbeInterval => {
                "probe_timeout must be at most half of probe_interval, so nacks arrive in time"
            }
        };
        f.write_str(s)
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// All zero, and invalid: the config of a node not configured yet, which never uses it.
    pub(crate) const UNSET: Config = Config {
        cluster_id: 0,
        probe_interval: Duration::ZERO,
        probe_timeout: Duration::ZERO,
        indirect_checks: 0,
        suspicion_mult: 0,
        suspicion_max_timeout_mult: 0,
        awareness_max: 0,
        gossip_interval: Duration::ZERO,
        gossip_nodes: 0,
        retransmit_mult: 0,
        push_pull_interval: Duration::ZERO,
        reap_timeout: Duration::ZERO,
        join_retry_initial: Duration::ZERO,
        join_retry_max: Duration::ZERO,
        max_datagram: 0,
        replay_user_events: false,
    };

    /// Memberlist's LAN profile (Serf's default): probe every 1 s with a 500 ms timeout,
    /// 3 indirect checks, suspicion multipliers 4 and 6, gossip every 200 ms to 3 peers,
    /// retransmit multiplier 4, push-pull every 30 s, 1400-byte datagrams.
    pub const fn lan() -> Self {
        Config {
            cluster_id: 0,
            probe_interval: Duration::from_millis(1000),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            awareness_max: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            retransmit_mult: 4,
            push_pull_interval: Duration::from_secs(30),
            reap_timeout: Duration::from_secs(15 * 60),
            join_retry_initial: Duration::from_millis(500),
            join_retry_max: Duration::from_secs(30),
            max_datagram: 1400,
            replay_user_events: false,
        }
    }

    /// Memberlist's WAN profile: probe every 5 s, suspicion multiplier 6, gossip every
    /// 500 ms to 4 peers, push-pull every 60 s; with a 2.5 s probe timeout rather than
    /// memberlist's 3 s, so that helpers' nacks (2 s after they are asked) arrive within
    /// the period, with 500 ms for their trip.
    pub const fn wan() -> Self {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_millis(2500),
            suspicion_mult: 6,
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            push_pull_interval: Duration::from_secs(60),
            reap_timeout: Duration::from_secs(60 * 60),
            join_retry_initial: Duration::from_secs(1),
            join_retry_max: Duration::from_secs(60),
            ..Config::lan()
        }
    }

    /// Memberlist's local (loopback) profile: 200 ms probe timeout, 1 indirect check,
    /// suspicion multiplier 3, gossip every 100 ms, retransmit multiplier 2, push-pull
    /// every 15 s.
    pub const fn local() -> Self {
        Config {
            probe_timeout: Duration::from_millis(200),
            indirect_checks: 1,
            suspicion_mult: 3,
            gossip_interval: Duration::from_millis(100),
            retransmit_mult: 2,
            push_pull_interval: Duration::from_secs(15),
            reap_timeout: Duration::from_secs(5 * 60),
            join_retry_initial: Duration::from_millis(200),
            join_retry_max: Duration::from_secs(5),
            ..Config::lan()
        }
    }

    /// The LAN profile on 512-byte datagrams, for 6LoWPAN/Thread-class links and small
    /// boards: fewer updates ride on each packet, so gossip rounds carry the rest.
    pub const fn small_mtu() -> Self {
        Config {
            max_datagram: 512,
            ..Config::lan()
        }
    }

    /// This config with another cluster id.
    pub const fn with_cluster_id(mut self, cluster_id: u32) -> Self {
        self.cluster_id = cluster_id;
        self
    }

    /// How long a helper of an indirect probe waits for the target before it nacks: 4/5 of
    /// `probe_timeout`, a little before the asking node gives up (as Lifeguard proposes).
    pub(crate) fn nack_timeout(&self) -> Duration {
        self.probe_timeout.div(5).saturating_mul(4)
    }

    /// The largest datagram to send to `to`: `max_datagram`, within the IPv6 limit for an
    /// IPv6 destination.
    pub(crate) fn max_datagram_to(&self, to: SocketAddr) -> usize {
        match to {
            SocketAddr::V4(_) => self.max_datagram,
            SocketAddr::V6(_) => self.max_datagram.min(MAX_DATAGRAM_V6),
        }
    }

    /// Checks every field; [`Node::new`](crate::Node::new) calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.probe_interval == Duration::ZERO {
            return Err(ConfigError::ZeroProbeInterval);
        }
        if self.probe_timeout == Duration::ZERO || self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeoutNotBelowInterval);
        }
        if self.gossip_interval == Duration::ZERO {
            return Err(ConfigError::ZeroGossipInterval);
        }
        if self.push_pull_interval == Duration::ZERO {
            return Err(ConfigError::ZeroPushPullInterval);
        }
        if self.suspicion_mult == 0 || self.suspicion_max_timeout_mult == 0 {
            return Err(ConfigError::BadSuspicionMultipliers);
        }
        if self.awareness_max == 0 {
            return Err(ConfigError::ZeroAwarenessMax);
        }
        if self.retransmit_mult == 0 {
            return Err(ConfigError::ZeroRetransmitMult);
        }
        if self.probe_timeout.saturating_mul(2) > self.probe_interval {
            return Err(ConfigError::NackAfterProbeInterval);
        }
        if !(MIN_DATAGRAM..=MAX_DATAGRAM_V4).contains(&self.max_datagram) {
            return Err(ConfigError::DatagramSizeOutOfRange);
        }
        if self.join_retry_initial == Duration::ZERO
            || self.join_retry_initial > self.join_retry_max
        {
            return Err(ConfigError::BadJoinRetry);
        }
        Ok(())
    }
}

impl Default for Config {
    /// The LAN profile.
    fn default() -> Self {
        Config::lan()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_bad_fields_are_named() {
        for c in [
            Config::lan(),
            Config::wan(),
            Config::local(),
            Config::small_mtu(),
        ] {
            assert_eq!(c.validate(), Ok(()));
        }
        let mut c = Config::lan();
        c.probe_timeout = c.probe_interval;
        assert_eq!(c.validate(), Err(ConfigError::ProbeTimeoutNotBelowInterval));
        let mut c = Config::lan();
        c.max_datagram = 100;
        assert_eq!(c.validate(), Err(ConfigError::DatagramSizeOutOfRange));
        let mut c = Config::lan();
        c.retransmit_mult = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroRetransmitMult));
    }

    #[test]
    fn nacks_must_fit_in_the_probe_period() {
        // Memberlist's WAN timing: nacks come 3 s + 2.4 s after the probe starts, past 5 s.
        let mut c = Config::wan();
        c.probe_timeout = Duration::from_secs(3);
        assert_eq!(c.validate(), Err(ConfigError::NackAfterProbeInterval));
        let wan = Config::wan();
        assert!(wan.probe_timeout + wan.nack_timeout() < wan.probe_interval);
        // The boundary: exactly half is accepted, a millisecond more is not.
        c.probe_timeout = Duration::from_millis(2500);
        assert_eq!(c.validate(), Ok(()));
        c.probe_timeout = Duration::from_millis(2501);
        assert_eq!(c.validate(), Err(ConfigError::NackAfterProbeInterval));
        for p in [Config::lan(), Config::local(), Config::small_mtu(), wan] {
            assert!(
                p.probe_timeout + p.nack_timeout() < p.probe_interval,
                "{p:?}"
            );
        }
    }

    #[test]
    fn the_nack_timeout_of_a_huge_probe_timeout_does_not_wrap() {
        let mut c = Config::lan();
        c.probe_timeout = Duration::from_millis((1 << 62) + 10);
        c.probe_interval = Duration::from_millis(u64::MAX);
        assert_eq!(c.validate(), Ok(()));
        assert!(c.nack_timeout() > Duration::from_millis(1 << 61));
    }

    #[test]
    fn max_datagram_fits_an_ethernet_frame() {
        let mut c = Config::lan();
        for (size, ok) in [
            (MIN_DATAGRAM - 1, false),
            (MIN_DATAGRAM, true),
            (MAX_DATAGRAM_V6, true),
            (MAX_DATAGRAM_V4 - 1, true),
            (MAX_DATAGRAM_V4, true),
            (MAX_DATAGRAM_V4 + 1, false),
            (1500, false),
        ] {
            c.max_datagram = size;
            let want = if ok {
                Ok(())
            } else {
                Err(ConfigError::DatagramSizeOutOfRange)
            };
            assert_eq!(c.validate(), want, "{size}");
        }
        c.max_datagram = MAX_DATAGRAM_V4;
        let v4 = SocketAddr::from(([10, 0, 0, 1], 1));
        let v6 = SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 1], 1));
        assert_eq!(c.max_datagram_to(v4), MAX_DATAGRAM_V4);
        assert_eq!(c.max_datagram_to(v6), MAX_DATAGRAM_V6);
        c.max_datagram = 1400;
        assert_eq!(c.max_datagram_to(v6), 1400);
    }
}
