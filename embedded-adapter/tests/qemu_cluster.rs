//! Emulated boards on one Ethernet segment: QEMU mps2-an386 machines running the firmware
//! in `firmware/` (smoltcp and embassy-net builds mixed), their LAN9118s joined by a hub
//! that this test runs on loopback UDP. Needs `qemu-system-arm` and the
//! `thumbv7em-none-eabihf` target (`scripts/test` installs both); no root, no tap devices.
//!
//! Ignored by plain `cargo test` because it builds firmware and boots QEMU; `scripts/test`
//! runs it with `--ignored`.

mod qemu;

use std::time::{Duration, Instant};

use qemu::{Flavor, Segment};

#[test]
#[ignore = "boots QEMU boards; run by scripts/test with --ignored"]
fn boards_converge_detect_a_stopped_board_and_see_a_leave() {
    let mut net = Segment::new();
    let b1 = net.board("board-1", Flavor::Smoltcp, &[]);
    let b2 = net.board("board-2", Flavor::Embassy, &[1]);
    let b3 = net.board("board-3", Flavor::Smoltcp, &[1]);
    let b4 = net.board("board-4", Flavor::Embassy, &[2]);
    let names = ["board-1", "board-2", "board-3", "board-4"];

    let t = net.wait_until(Duration::from_secs(30), |net| {
        [b1, b2, b3, b4].iter().all(|&b| {
            names
                .iter()
                .all(|n| net.status(b, n).as_deref() == Some("alive"))
        })
    });
    println!("4 boards converged in {t:?}");

    // Stop board 3's QEMU outright: the others must declare it failed.
    net.stop(b3);
    let stopped = Instant::now();
    net.wait_until(Duration::from_secs(60), |net| {
        [b1, b2, b4]
            .iter()
            .all(|&b| net.status(b, "board-3").as_deref() == Some("failed"))
    });
    println!(
        "stopped board detected as failed by all in {:?}",
        stopped.elapsed()
    );

    // Board 4 leaves gracefully: it exits 0 once the news is out, the others see it left.
    net.command(b4, "leave");
    let code = net.wait_exit(b4, Duration::from_secs(20));
    assert_eq!(code, Some(0), "board-4 did not finish its leave cleanly");
    assert!(net.saw_line(b4, "event leave-complete"));
    net.wait_until(Duration::from_secs(20), |net| {
        [b1, b2]
            .iter()
            .all(|&b| net.status(b, "board-4").as_deref() == Some("left"))
    });

    // Every board still running reports its stack peak within its stack.
    for b in [b1, b2] {
        let (peak, size) = net.stack(b);
        println!("{}: stack peak {peak} of {size} bytes", net.name(b));
        assert!(peak < size);
    }
}
