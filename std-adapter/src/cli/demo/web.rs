//! The backends' web servers: one per backend node, on a free loopback port, answering
//! every request with the node's name (HTTP/1.0, one request per connection).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::CliError;

/// Longest wait for a client's request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read.
const MAX_REQUEST: usize = 4096;
/// Most connections one server accepts in its life (the demo makes a few thousand).
const MAX_CONNECTIONS: u64 = 100_000;
/// Most connections served at once; more wait in the listen queue.
const MAX_OPEN: usize = 64;

/// A running web server; dropping it (or [`stop`](Self::stop)) closes its socket and
/// its open connections, as a crashed container's would be.
#[derive(Debug)]
pub(super) struct WebServer {
    /// Where it listens.
    pub(super) addr: SocketAddr,
    /// Accepts and serves; its connections die with it.
    task: JoinHandle<()>,
}

impl WebServer {
    /// Starts serving `name` on a free port of 127.0.0.1.
    pub(super) async fn start(name: &str) -> Result<WebServer, CliError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CliError(format!("cannot start {name}'s web server: {e}")))?;
        let addr = listener.local_addr()?;
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let mut open = JoinSet::new();
            for _ in 0..MAX_CONNECTIONS {
                while open.len() >= MAX_OPEN {
                    open.join_next().await;
                }
                while open.try_join_next().is_some() {}
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                open.spawn(serve(conn, name.clone()));
            }
        });
        Ok(WebServer { addr, task })
    }

    /// Stops at once: new connections are refused, open ones are closed.
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers one request with `name` (headers only for `HEAD`); a silent client (HAProxy's
/// TCP health check) gets nothing.
async fn serve(mut conn: TcpStream, name: String) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let mut answer = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        name.len()
    );
    if !head.starts_with(b"HEAD ") {
        answer.push_str(&name);
    }
    let _ = conn.write_all(answer.as_bytes()).await;
    let _ = conn.shutdown().await;
}
