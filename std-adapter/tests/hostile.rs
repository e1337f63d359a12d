//! Hostile input: garbage datagrams are dropped, counted in `rumor info` and change no
//! membership; malformed RPC requests get an error reply and the agent keeps running; a
//! token, when set, is required.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::garbage::{filler, invalid_drops, kernel_drops};
use common::{Agent, agree, args, join_args, loopback_ip, views, wait_for};
use serde_json::Value;

/// Datagrams a node must refuse: every kind of bad header, and a body that is not a message.
fn garbage(rounds: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491;
    let mut out = Vec::new();
    for _ in 0..rounds {
        out.push(Vec::new());
        out.push(filler(&mut seed, 3));
        out.push(filler(&mut seed, 2000));
        let mut v = vec![9, 0, 0, 0, 0, 0];
        v.extend(filler(&mut seed, 40));
        out.push(v);
        let mut e = vec![1, 0x7e, 0, 0, 0, 0];
        e.extend(filler(&mut seed, 40));
        out.push(e);
        let mut c = vec![1, 0, 0xde, 0xad, 0xbe, 0xef];
        c.extend(filler(&mut seed, 40));
        out.push(c);
        // Right header, then an unknown message type and noise.
        let mut m = vec![1, 0, 0, 0, 0, 0, 0x7f];
        m.extend(filler(&mut seed, 100));
        out.push(m);
    }
    out
}

#[test]
fn garbage_datagrams_are_counted_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);
    let b = Agent::on_loopback(dir.path(), "b", &join_args(&[&a]));
    let both = [&a, &b];
    let before = agree(&both, Duration::from_secs(30));
    let dropped_before = invalid_drops(&a.info());
    let kernel_before = kernel_drops(a.gossip);

    let attacker = UdpSocket::bind((loopback_ip(), 0)).unwrap();
    let datagrams = garbage(40);
    for d in &datagrams {
        attacker.send_to(d, a.gossip).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    // Every datagram is counted by the agent, or was dropped by the kernel because the
    // socket's receive buffer was full (on a loaded machine the agent can fall behind).
    let sent = datagrams.len() as u64;
    let settled = wait_for(Duration::from_secs(15), || {
        let counted = invalid_drops(&a.info()) - dropped_before;
        let kernel = kernel_drops(a.gossip) - kernel_before;
        (counted + kernel >= sent).then_some(())
    });
    let info = a.info();
    let counted = invalid_drops(&info) - dropped_before;
    let kernel = kernel_drops(a.gossip) - kernel_before;
    // The kernel's count also covers b's gossip, so the agent is wrong only if it counted
    // more than was sent; with no kernel drops, that is exactly one count per datagram.
    assert!(
        settled.is_some() && counted <= sent,
        "{sent} sent, {counted} counted by the agent, {kernel} dropped by the kernel: {}",
        info["agent"]["protocol"]
    );
    // Each kind of bad header was sent 40 times; kernel drops may have taken some of them.
    for k in [
        "dropped_truncated",
        "dropped_oversized",
        "dropped_version",
        "dropped_cluster",
    ] {
        assert!(
            info["agent"]["protocol"][k].as_u64().unwrap() >= 40u64.saturating_sub(kernel),
            "{k} ({kernel} dropped by the kernel): {}",
            info["agent"]["protocol"]
        );
    }
    // The text form of `info` shows the same counters.
    let text = String::from_utf8(a.client(&["info"]).stdout).unwrap();
    assert!(
        text.contains("protocol:")
            && text.contains(&format!(
                "dropped_oversized = {}",
                info["agent"]["protocol"]["dropped_oversized"]
            )),
        "{text}"
    );

    // Nothing changed, and the cluster still works.
    assert_eq!(views(&both), vec![Some(before.clone()), Some(before)]);
    let out = b.client(&["event", "after-garbage", "still-here"]);
    assert!(out.status.success());
}

/// Sends one line and reads the one-line answer.
fn ask(conn: &mut BufReader<TcpStream>, line: &[u8]) -> Value {
    conn.get_mut().write_all(line).unwrap();
    let mut answer = String::new();
    conn.read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?} is not JSON: {e}"))
}

fn connect(agent: &Agent) -> BufReader<TcpStream> {
    let s = TcpStream::connect(agent.rpc).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

#[test]
fn malformed_rpc_gets_an_error_and_the_agent_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &[]);

    let mut conn = connect(&a);
    for bad in [
        &b"this is not json\n"[..],
        b"{\"cmd\":\"explode\"}\n",
        b"\xff\xfe\x00garbage\n",
        b"[1,2,3]\n",
    ] {
        let r = ask(&mut conn, bad);
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .starts_with("malformed request"),
            "{r}"
        );
    }
    // Valid JSON the agent refuses: an error, not a crash.
    let r = ask(&mut conn, b"{\"cmd\":\"event\",\"name\":\"\"}\n");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("event name"), "{r}");
    let r = ask(
        &mut conn,
        b"{\"cmd\":\"tags\",\"set\":{\"bad key\":\"x\"}}\n",
    );
    assert_eq!(r["ok"], false, "{r}");
    // The same connection still serves good requests.
    let r = ask(&mut conn, b"{\"cmd\":\"members\"}\n");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["members"][0]["name"], "a");

    // An endless line is cut off with an error, and the connection closed.
    let mut long = connect(&a);
    let big = vec![b'x'; 100 * 1024];
    let _ = long.get_mut().write_all(&big);
    let mut answer = String::new();
    long.read_line(&mut answer).unwrap();
    assert!(answer.contains("longer than"), "{answer}");
    let mut rest = Vec::new();
    assert_eq!(
        long.read_to_end(&mut rest).unwrap_or(0),
        0,
        "connection left open"
    );

    // Connect-and-hang-up does no harm either.
    drop(TcpStream::connect(a.rpc).unwrap());

    let info = a.info();
    assert_eq!(info["rpc"]["malformed"], 5, "{}", info["rpc"]);
    let out = a.client(&["members"]);
    assert!(out.status.success());
}

#[test]
fn rpc_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let a = Agent::on_loopback(dir.path(), "a", &args(&["--rpc-token", "s3cret"]));
    let unauthorized = || {
        let info = a.client(&["info", "--format", "json", "--rpc-token", "s3cret"]);
        assert!(
            info.status.success(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        serde_json::from_slice::<Value>(&info.stdout).unwrap()["rpc"]["unauthorized"]
            .as_u64()
            .unwrap()
    };
    let refused_before = unauthorized();
    let out = a.client(&["members", "--rpc-token", "s3cret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.client(&["members"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    let out = a.client(&["members", "--rpc-token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(unauthorized(), refused_before + 2);
}
