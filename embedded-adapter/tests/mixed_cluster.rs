//! A mixed cluster on one Ethernet segment: four emulated boards (QEMU mps2-an386, two
//! smoltcp and two embassy-net firmwares) and two `rumor agent` processes on the kernel's
//! network stack. The test builds the segment itself: a network namespace with a bridge,
//! one tap port per board (QEMU runs in the namespace) and the agents' addresses on the
//! bridge; everything is deleted afterwards, even on failure. `RUMOR_TEST_DUMP=1` prints
//! every console and agent log at the end.
//!
//! Needs root and `/dev/net/tun` (skipped, saying so, where either is missing; CI has
//! both), `qemu-system-arm`, the `thumbv7em-none-eabihf` target and `ip` (`scripts/test`
//! installs them). The agents are the workspace's `rumor` binary (`$RUMOR_BIN`, or built
//! by cargo). Ignored by plain `cargo test`; `scripts/test` runs it with `--ignored`.

mod support;

use std::time::{Duration, Instant};

use support::board::Flavor;
use support::segment::{Report, Segment};

#[test]
#[ignore = "boots QEMU boards in a network namespace; run by scripts/test with --ignored"]
fn boards_and_agents_converge_detect_a_stopped_board_and_see_a_leave() {
    let mut net = match Segment::bridge("mixed") {
        Ok(net) => net,
        Err(why) => {
            println!(
                "SKIPPED boards_and_agents_converge_detect_a_stopped_board_and_see_a_leave: {why}"
            );
            return;
        }
    };
    // Joins cross both ways: agents through boards, boards through agents.
    let b1 = net.board(Flavor::Smoltcp, &[]);
    let a1 = net.agent(&[b1]);
    let b2 = net.board(Flavor::Embassy, &[a1]);
    let a2 = net.agent(&[b2]);
    let b3 = net.board(Flavor::Smoltcp, &[a2]);
    let b4 = net.board(Flavor::Embassy, &[b1]);
    let all = [b1, b2, b3, b4, a1, a2];

    let t = net.wait_until(Duration::from_secs(60), "all six alive everywhere", |net| {
        all.iter().all(|&p| net.sees_all_alive(p, &all))
    });
    println!("4 boards and 2 agents converged in {t:?}");
    // The agents know every member at the address it advertises.
    for a in [a1, a2] {
        let members = net.agent_members(a).expect("the agent answers");
        for p in all {
            let m = members.iter().find(|m| m.name == net.name(p));
            assert_eq!(
                m.map(|m| m.addr.clone()),
                Some(net.addr(p)),
                "{p:?} at {a:?}"
            );
        }
    }

    // User events from the agents reach the boards. (Delivery to every member is not
    // asserted: user events spread by gossip alone, and a member that lost them while
    // smoltcp was still resolving its neighbours does not get them again.) Sending them also
    // proves the agents' event monitors live, for the timings below.
    let events = net.watch_agents();
    let boards = [b1, b2, b3, b4];
    net.wait_until(
        Duration::from_secs(20),
        "agents' user events at a board",
        |net| {
            events.iter().all(|e| {
                boards
                    .iter()
                    .any(|&b| net.reported(b, Report::User(e)).is_some())
            })
        },
    );
    for e in &events {
        let got: Vec<String> = all
            .iter()
            .filter(|&&p| net.reported(p, Report::User(e)).is_some())
            .map(|&p| net.name(p))
            .collect();
        println!("user event {e} reported by {}", got.join(", "));
    }

    // Stop board 3's QEMU outright: every other member, boards and agents, must declare it
    // failed. Their member lists say whether they did; their events say when. An agent's
    // event reaches its monitor by a path of its own, so it may come a little after the
    // list changed: both are waited for.
    net.stop(b3);
    let stopped = Instant::now();
    let observers = [b1, b2, b4, a1, a2];
    net.wait_until(
        Duration::from_secs(60),
        "board-3 failed everywhere, and reported",
        |net| {
            observers.iter().all(|&o| {
                net.status(o, b3).as_deref() == Some("failed")
                    && net.reported(o, Report::Failed(b3)).is_some()
            })
        },
    );
    let mut times: Vec<(Duration, String)> = observers
        .iter()
        .map(|&o| {
            let at = net
                .reported(o, Report::Failed(b3))
                .expect("waited for above");
            (at.saturating_duration_since(stopped), net.name(o))
        })
        .collect();
    times.sort();
    for (t, name) in &times {
        println!("board-3 reported failed by {name} after {t:?}");
    }
    let ((first, by_first), (last, by_last)) = (&times[0], &times[times.len() - 1]);
    println!(
        "stopped board detected: first by {by_first} after {first:?}, last by {by_last} after {last:?}"
    );

    // Board 4 leaves gracefully: it exits 0 once the news is out, and every member still
    // running sees it left.
    net.board_mut(b4).command("leave");
    let code = net.board_mut(b4).wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "board-4 did not finish its leave cleanly");
    let t = net.wait_until(
        Duration::from_secs(30),
        "board-4 left everywhere, and reported",
        |net| {
            [b1, b2, a1, a2].iter().all(|&p| {
                net.status(p, b4).as_deref() == Some("left")
                    && net.reported(p, Report::Left(b4)).is_some()
            })
        },
    );
    println!("board-4's leave seen and reported by all in {t:?}");

    // The boards still running stayed within their stacks.
    for b in [b1, b2] {
        let (peak, size) = net.board_mut(b).stack();
        println!("{}: stack peak {peak} of {size} bytes", net.name(b));
        assert!(peak < size);
    }
}
