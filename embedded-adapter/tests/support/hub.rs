//! An Ethernet hub on loopback UDP for QEMU's `-nic socket,udp=...` boards: every frame a
//! board sends reaches every other board. No root needed; the frames (and the addresses in
//! them) never leave the test's loopback sockets.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The hub: a thread forwarding frames between the boards' loopback ports.
pub(crate) struct Hub {
    port: u16,
    ports: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Starts the hub on a free loopback port.
    pub(crate) fn start() -> Hub {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the hub");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("hub timeout");
        let port = socket.local_addr().expect("hub addr").port();
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (ports, stop) = (ports.clone(), stop.clone());
            thread::spawn(move || {
                let mut frame = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut frame) else {
                        continue;
                    };
                    for &p in ports.lock().unwrap().iter().filter(|&&p| p != from.port()) {
                        let _ = socket.send_to(&frame[..n], ("127.0.0.1", p));
                    }
                }
            })
        };
        Hub {
            port,
            ports,
            stop,
            thread: Some(thread),
        }
    }

    /// A new port on the hub: `(hub port, board port)` for
    /// `-nic socket,udp=127.0.0.1:HUB,localaddr=127.0.0.1:BOARD`.
    pub(crate) fn plug(&self) -> (u16, u16) {
        // A free loopback port, released for QEMU to take.
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
        let board = probe.local_addr().expect("local addr").port();
        self.ports.lock().unwrap().push(board);
        (self.port, board)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
