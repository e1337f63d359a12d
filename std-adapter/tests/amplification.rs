//! Anti-amplification on running agents: a push-pull request from a socket that is not a
//! member gets back at most three times its bytes, however large the cluster's table.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Agent, agree, join_args, loopback_ip};

/// Agents in the cluster (more would not fit the test machine's two cores comfortably).
const AGENTS: usize = 8;

/// The smallest plaintext push-pull request: header (version 1, plaintext, cluster 0),
/// `Sync`, `Request { first: true, join: false }`, Lamport time 0.
const BARE_SYNC: [u8; 11] = [1, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0];

/// A join request as a fresh node sends it: the 11 bytes above (with `join: true`), then
/// the requester's own state, `x` alive at `at`.
fn join_request(at: SocketAddr) -> Vec<u8> {
    let mut v = BARE_SYNC.to_vec();
    v[9] = 1;
    let SocketAddr::V4(at) = at else {
        panic!("loopback is IPv4");
    };
    // State, name "x", incarnation 0, V4 address, port (varint), no tags, Alive.
    v.extend([5, 1, b'x', 0, 0]);
    v.extend(at.ip().octets());
    let mut port = at.port();
    while port >= 0x80 {
        v.push((port as u8 & 0x7f) | 0x80);
        port >>= 7;
    }
    v.push(port as u8);
    v.extend([0, 0]);
    v
}

/// Sends `request` from `socket` to `to`, then counts every byte `to` sends back within a
/// second: (datagrams, bytes).
fn bytes_back(socket: &UdpSocket, to: SocketAddr, request: &[u8]) -> (usize, usize) {
    socket.send_to(request, to).unwrap();
    let end = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 2048];
    let (mut datagrams, mut bytes) = (0, 0);
    for _ in 0..10_000 {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == to => {
                datagrams += 1;
                bytes += n;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (datagrams, bytes)
}

#[test]
fn an_unverified_sync_request_gets_at_most_three_times_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Agent::on_loopback(dir.path(), "a0", &[]);
    let mut agents = vec![seed];
    for i in 1..AGENTS {
        let args = join_args(&[&agents[0]]);
        agents.push(Agent::on_loopback(dir.path(), &format!("a{i}"), &args));
    }
    let all: Vec<&Agent> = agents.iter().collect();
    agree(&all, Duration::from_secs(60));
    let target = agents[0].gossip;

    let attacker = UdpSocket::bind((loopback_ip(), 0)).unwrap();
    let (datagrams, bytes) = bytes_back(&attacker, target, &BARE_SYNC);
    eprintln!(
        "{AGENTS} agents, bare Sync: {} bytes in, {bytes} bytes in {datagrams} datagrams out \
         ({:.1}x)",
        BARE_SYNC.len(),
        bytes as f64 / BARE_SYNC.len() as f64
    );
    assert!(bytes <= 3 * BARE_SYNC.len(), "{bytes} bytes back");

    let request = join_request(attacker.local_addr().unwrap());
    let (datagrams, bytes) = bytes_back(&attacker, target, &request);
    eprintln!(
        "{AGENTS} agents, join request: {} bytes in, {bytes} bytes in {datagrams} datagrams \
         out ({:.1}x)",
        request.len(),
        bytes as f64 / request.len() as f64
    );
    assert!(bytes <= 3 * request.len(), "{bytes} bytes back");
}
