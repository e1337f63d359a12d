//! An arbitrary sequence of commands, datagrams (crafted by honest peers or raw) and time
//! steps against one node, with the core's invariants checked after every step.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rumor_core::{Config, Duration, Identity, Instant, Node, Status, Tags};

type N = Node<6, 8>;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw bytes from peer `from`.
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// Whatever peer `peer` (a real node) has to send, delivered to the victim.
    Peer {
        peer: u8,
    },
    /// Advance time.
    Wait {
        ms: u16,
    },
    /// Jump time far ahead (reap timeouts, suspicion expiry).
    Jump {
        minutes: u8,
    },
    Join {
        seed: u8,
    },
    Leave,
    Tags {
        key: u8,
        value: String,
    },
    Event {
        name: String,
        payload: Vec<u8>,
    },
    /// Let the victim's own traffic reach the peers.
    Deliver,
}

fn addr(i: u8) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([10, 0, 0, i % 5 + 1], 7946))
}

fn new_node(i: u8, seed: u64) -> N {
    let name = format!("n{i}");
    Node::new(
        Identity::new(&name, addr(i)).unwrap(),
        Config::local(),
        seed,
    )
    .unwrap()
}

fuzz_target!(|ops: Vec<Op>| {
    let mut victim = new_node(0, 1);
    let mut peers: Vec<N> = (1..4).map(|i| new_node(i, u64::from(i) + 10)).collect();
    for p in &mut peers {
        p.join(Instant::ZERO, addr(0)).unwrap();
    }
    let mut now = Instant::ZERO;
    let mut buf = [0u8; 1500];
    let mut outbox: Vec<(std::net::SocketAddr, Vec<u8>)> = Vec::new();
    let mut last_incarnation = 0;
    let mut seen: std::collections::HashMap<String, (u32, Status)> = Default::default();
    for op in ops.into_iter().take(256) {
        match op {
            Op::Raw { from, bytes } => {
                let _ = victim.handle_datagram(now, addr(from), &bytes);
            }
            Op::Peer { peer } => {
                let p = &mut peers[usize::from(peer) % 3];
                p.handle_timeout(now);
                while let Some(t) = p.poll_transmit(now, &mut buf) {
                    if t.to == addr(0) {
                        let from = p.local().addr();
                        let _ = victim.handle_datagram(now, from, &buf[..t.len]);
                    }
                }
                while p.poll_event().is_some() {}
            }
            Op::Wait { ms } => now = now + Duration::from_millis(u64::from(ms)),
            Op::Jump { minutes } => now = now + Duration::from_secs(u64::from(minutes) * 60),
            Op::Join { seed } => {
                let _ = victim.join(now, addr(seed));
            }
            Op::Leave => victim.leave(now),
            Op::Tags { key, value } => {
                if let Ok(tags) = Tags::new().with(&format!("k{}", key % 4), &value) {
                    victim.set_tags(now, tags);
                }
            }
            Op::Event { name, payload } => {
                let _ = victim.send_user_event(now, &name, &payload);
            }
            Op::Deliver => {
                for (to, bytes) in outbox.drain(..) {
                    if let Some(p) = peers.iter_mut().find(|p| p.local().addr() == to) {
                        let _ = p.handle_datagram(now, addr(0), &bytes);
                    }
                }
            }
        }
        // The driving contract: after any input, drain, then honour poll_timeout.
        if victim.poll_timeout().is_some_and(|t| t <= now) {
            victim.handle_timeout(now);
        }
        while let Some(t) = victim.poll_transmit(now, &mut buf) {
            assert!(t.len <= victim.config().max_datagram);
            if outbox.len() < 64 {
                outbox.push((t.to, buf[..t.len].to_vec()));
            }
        }
        while victim.poll_event().is_some() {}

        // Invariants.
        assert!(victim.members().count() <= N::capacity());
        let local = victim.local();
        assert!(
            local.incarnation() >= last_incarnation,
            "local incarnation went down"
        );
        last_incarnation = local.incarnation();
        assert!(local.is_local() && victim.members().next().is_some_and(|m| m.is_local()));
        let mut names = std::collections::HashSet::new();
        for m in victim.members() {
            assert!(
                names.insert(m.name().to_owned()),
                "duplicate member {}",
                m.name()
            );
            if let Some(&(inc, status)) = seen.get(m.name()) {
                assert!(
                    m.incarnation() >= inc,
                    "incarnation of {} went down",
                    m.name()
                );
                let resurrected = matches!(status, Status::Failed | Status::Left)
                    && m.status().is_live()
                    && m.incarnation() == inc;
                assert!(
                    !resurrected,
                    "{} came back without a newer incarnation",
                    m.name()
                );
            }
        }
        seen = victim
            .members()
            .map(|m| (m.name().to_owned(), (m.incarnation(), m.status())))
            .collect();
        if let Some(t) = victim.poll_timeout() {
            assert!(t >= Instant::ZERO);
        }
    }
});
