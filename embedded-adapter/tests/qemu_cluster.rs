//! Emulated boards on one Ethernet segment: QEMU mps2-an386 machines running the firmware
//! in `firmware/` (smoltcp and embassy-net builds mixed), their LAN9118s joined by a hub
//! that this test runs on loopback UDP. Needs `qemu-system-arm` and the
//! `thumbv7em-none-eabihf` target (`scripts/test` installs both); no root, no tap devices.
//! (`mixed_cluster.rs` adds `rumor agent`s, on a bridge in a network namespace.)
//!
//! Ignored by plain `cargo test` because it builds firmware and boots QEMU; `scripts/test`
//! runs it with `--ignored`.

mod support;

use std::time::{Duration, Instant};

use support::board::Flavor;
use support::segment::Segment;

#[test]
#[ignore = "boots QEMU boards; run by scripts/test with --ignored"]
fn boards_converge_detect_a_stopped_board_and_see_a_leave() {
    let mut net = Segment::hub();
    let b1 = net.board(Flavor::Smoltcp, &[]);
    let b2 = net.board(Flavor::Embassy, &[b1]);
    let b3 = net.board(Flavor::Smoltcp, &[b1]);
    let b4 = net.board(Flavor::Embassy, &[b2]);
    let all = [b1, b2, b3, b4];

    let t = net.wait_until(Duration::from_secs(30), "4 boards alive", |net| {
        all.iter().all(|&b| net.sees_all_alive(b, &all))
    });
    println!("4 boards converged in {t:?}");

    // Stop board 3's QEMU outright: the others must declare it failed.
    net.stop(b3);
    let stopped = Instant::now();
    net.wait_until(Duration::from_secs(60), "board-3 failed", |net| {
        [b1, b2, b4]
            .iter()
            .all(|&b| net.status(b, b3).as_deref() == Some("failed"))
    });
    println!(
        "stopped board detected as failed by all in {:?}",
        stopped.elapsed()
    );

    // Board 4 leaves gracefully: it exits 0 once the news is out, the others see it left.
    net.board_mut(b4).command("leave");
    let code = net.board_mut(b4).wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "board-4 did not finish its leave cleanly");
    assert!(net.board_mut(b4).printed("event leave-complete").is_some());
    net.wait_until(Duration::from_secs(20), "board-4 left", |net| {
        [b1, b2]
            .iter()
            .all(|&b| net.status(b, b4).as_deref() == Some("left"))
    });

    // Every board still running stayed within its stack.
    for b in [b1, b2] {
        let (peak, size) = net.board_mut(b).stack();
        println!("{}: stack peak {peak} of {size} bytes", net.name(b));
        assert!(peak < size);
    }
}
