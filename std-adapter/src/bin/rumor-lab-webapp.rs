//! The lab's web application (`examples/haproxy-lab`), in a few lines of std: answers every `GET` with the node's
//! name and address as JSON (and `HEAD` for HAProxy's health checks).
//!
//! ```text
//! rumor-lab-webapp [BIND_ADDR] [NAME]      # default 0.0.0.0:3000 and $HOSTNAME
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "0.0.0.0:3000".to_owned());
    let name = args
        .next()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "webapp".to_owned());
    let listener = match TcpListener::bind(&bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("webapp: cannot listen on {bind}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("webapp {name} listening on {bind}");
    for conn in listener.incoming().flatten() {
        let name = name.clone();
        thread::spawn(move || answer(conn, &name));
    }
}

fn answer(mut conn: TcpStream, name: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let ip = conn.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let body = format!("{{\"hello\":\"rumor lab\",\"host\":\"{name}\",\"ip\":\"{ip}\"}}\n");
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !request.starts_with(b"HEAD ") {
        out.push_str(&body);
    }
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}
