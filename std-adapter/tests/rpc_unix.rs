//! The RPC endpoint on a Unix socket, with a real agent process: the socket is created
//! with mode 0600, the verbs reach the agent through `unix:PATH`, a second agent cannot
//! take a socket that is in use, and the socket file is gone once the agent stopped.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{RUMOR, free_ports, loopback_ip, wait_for};

fn agent(name: &str, socket: &Path, log: &Path) -> Child {
    let ip = loopback_ip();
    let (gossip, _) = free_ports(ip);
    let log = std::fs::File::create(log).unwrap();
    Command::new(RUMOR)
        .args(["agent", "--node", name, "--bind", &format!("{ip}:{gossip}")])
        .args(["--rpc-addr", &format!("unix:{}", socket.display())])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn rumor agent")
}

fn verb(socket: &Path, args: &[&str]) -> Output {
    Command::new(RUMOR)
        .args(args)
        .args(["--rpc-addr", &format!("unix:{}", socket.display())])
        .stdin(Stdio::null())
        .output()
        .expect("run rumor")
}

#[test]
fn the_rpc_listens_on_a_private_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rumor.sock");
    let mut a = agent("a1", &socket, &dir.path().join("a1.log"));
    let up = wait_for(Duration::from_secs(20), || {
        verb(&socket, &["members"]).status.success().then_some(())
    });
    assert!(
        up.is_some(),
        "no answer on the socket:\n{}",
        std::fs::read_to_string(dir.path().join("a1.log")).unwrap()
    );
    let out = verb(&socket, &["members"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("a1"));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    // A second agent on the same socket refuses to start; the first keeps it.
    let mut b = agent("b1", &socket, &dir.path().join("b1.log"));
    let exited = wait_for(Duration::from_secs(20), || b.try_wait().ok().flatten());
    let Some(status) = exited else {
        let _ = b.kill();
        panic!("the second agent took the socket");
    };
    assert_eq!(status.code(), Some(1));
    let b_log = std::fs::read_to_string(dir.path().join("b1.log")).unwrap();
    assert!(
        b_log.contains("another agent listens on this socket"),
        "{b_log}"
    );
    assert!(verb(&socket, &["members"]).status.success());

    // `leave` through the socket: the agent exits 0 and removes it.
    assert!(verb(&socket, &["leave"]).status.success());
    let status = wait_for(Duration::from_secs(20), || a.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = a.kill();
        panic!("the agent did not stop");
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket file was left behind");
}
