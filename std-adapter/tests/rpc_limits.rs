//! The RPC endpoint against local clients that misbehave, with a real agent process:
//! connections that never send a request cannot take the slots of real clients, and a
//! connection without the token is answered once and closed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Agent, args};

/// More idle connections than the agent serves at once (64): before, each held a slot
/// for the 60 s idle timeout and `rumor members` got "too many RPC connections".
#[test]
fn idle_connections_do_not_lock_out_clients() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::on_loopback(dir.path(), "a1", &[]);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(agent.rpc).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out = agent.client(&["members"]);
    assert!(
        out.status.success(),
        "members refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(idle);
}

/// Without the token, the first request gets one error line and the connection ends, so
/// it holds nothing; with it, requests are served.
#[test]
fn a_connection_without_the_token_is_answered_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::on_loopback_with_env(
        dir.path(),
        "a1",
        &args(&[]),
        &[("RUMOR_RPC_TOKEN", "s3cret")],
    );
    let stream = TcpStream::connect(agent.rpc).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    writeln!(w, r#"{{"cmd":"members"}}"#).unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("unauthorized"), "{line}");
    line.clear();
    // The server closed it: end of stream, not a timeout.
    assert_eq!(r.read_line(&mut line).unwrap(), 0, "still open: {line}");
    let out = agent.client(&["info", "--format", "json", "--rpc-token", "s3cret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Ours, and the harness's start-up probe (which takes "unauthorized" for "up").
    assert_eq!(info["rpc"]["unauthorized"], 2, "{info}");
}
