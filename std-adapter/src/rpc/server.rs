//! The RPC server: one task per connection, bounded in number, line length and idle time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumor_core::Plaintext;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, broadcast};

use super::RpcAddr;
use super::listener::{Listener, Reader, Writer};
use super::protocol::{
    Info, KeyOp, KeyText, KeyringInfo, MAX_LINE, Request, Response, RpcCommand, RpcCounts,
    StreamItem,
};
use crate::agent::{AgentStats, Handle, HandleError, KeyChange};
use crate::event::AgentEvent;
use crate::handler::HandlerStats;
use crate::keyring;
use crate::logging::{self, LogFeed, LogLine};
use crate::render::RenderStatsList;
use crate::seeds;

/// Authenticated connections served at once; more are answered with an error and closed.
const MAX_CONNECTIONS: usize = 64;
/// Connections still to send their first request; more are closed at once.
const MAX_PENDING: usize = 128;
/// A new connection must send its first request (with the token, when one is set) within
/// this, before it may take one of the [`MAX_CONNECTIONS`] slots.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply or stream item not written within this drops the connection: a client that
/// stops reading cannot hold a slot.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request for this long is closed (monitors excepted).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for requests in flight at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Default wait for a seed to answer a `join`.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// RPC counters, shared with `info`.
#[derive(Debug, Default)]
pub struct RpcStats {
    connections: AtomicU64,
    requests: AtomicU64,
    malformed: AtomicU64,
    unauthorized: AtomicU64,
}

impl RpcStats {
    /// The counters now.
    pub fn counts(&self) -> RpcCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RpcCounts {
            connections: get(&self.connections),
            requests: get(&self.requests),
            malformed: get(&self.malformed),
            unauthorized: get(&self.unauthorized),
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The RPC endpoint of one agent.
#[derive(Debug)]
pub struct RpcServer {
    listener: Listener,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    handle: Handle,
    token: Option<String>,
    logs: Option<LogFeed>,
    handlers: Arc<HandlerStats>,
    render: RenderStatsList,
    stats: RpcStats,
    slots: Semaphore,
    pending: Semaphore,
}

/// One request line, or why there is none.
enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

impl RpcServer {
    /// Listens on `addr` (TCP or a Unix socket) for `handle`'s agent. With a `token`,
    /// every request must carry it.
    pub async fn bind(
        addr: &RpcAddr,
        handle: Handle,
        token: Option<String>,
        logs: Option<LogFeed>,
        handlers: Arc<HandlerStats>,
    ) -> std::io::Result<Self> {
        let listener = Listener::bind(addr).await?;
        Ok(RpcServer {
            listener,
            shared: Arc::new(Shared {
                handle,
                token,
                logs,
                handlers,
                render: RenderStatsList::default(),
                stats: RpcStats::default(),
                slots: Semaphore::new(MAX_CONNECTIONS),
                pending: Semaphore::new(MAX_PENDING),
            }),
        })
    }

    /// Reports these render targets' counters in `info` (call before serving); the list
    /// may change while serving ([`RenderTargets::shared_stats`](crate::render::RenderTargets::shared_stats)).
    pub fn with_render_stats(mut self, render: RenderStatsList) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.render = render;
        }
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<RpcAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then gives requests in flight up to
    /// [`DRAIN_TIMEOUT`] to be answered (a `leave` answers just as its agent stops).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                () = &mut shutdown => break,
            };
            let (rd, wr) = match accepted {
                Ok((rd, wr, peer)) => {
                    tracing::debug!(%peer, "RPC connection");
                    (rd, wr)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "RPC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            RpcStats::bump(&self.shared.stats.connections);
            let shared = self.shared.clone();
            tokio::spawn(async move { shared.accept(rd, wr).await });
        }
        drop(self.listener);
        let all = MAX_CONNECTIONS as u32;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.shared.slots.acquire_many(all)).await;
    }
}

impl Shared {
    /// A new connection: its first request must come within [`FIRST_REQUEST_TIMEOUT`] and
    /// be authorised before the connection takes a slot; otherwise it is closed.
    async fn accept(&self, mut rd: Reader, mut wr: Writer) {
        let Ok(pending) = self.pending.try_acquire() else {
            return;
        };
        let first =
            tokio::time::timeout(FIRST_REQUEST_TIMEOUT, self.next_request(&mut rd, &mut wr));
        let Ok(Some(first)) = first.await else {
            return;
        };
        if !self.admit(&first, &mut wr).await {
            return;
        }
        drop(pending);
        let Ok(_slot) = self.slots.try_acquire() else {
            let _ = reply(&mut wr, &Response::error("too many RPC connections")).await;
            return;
        };
        self.connection(rd, wr, first).await;
    }

    /// Serves `first`, then every request that follows, until the client hangs up, goes
    /// idle for [`IDLE_TIMEOUT`], stops reading, or sends an unauthorised request.
    async fn connection(&self, mut rd: Reader, mut wr: Writer, first: Request) {
        let mut request = first;
        loop {
            if let RpcCommand::Monitor { log_level } = request.command {
                self.monitor(rd, wr, log_level).await;
                return;
            }
            let response = self.execute(request.command).await;
            if reply(&mut wr, &response).await.is_err() {
                return;
            }
            let next = tokio::time::timeout(IDLE_TIMEOUT, self.next_request(&mut rd, &mut wr));
            request = match next.await {
                Ok(Some(r)) => r,
                _ => return,
            };
            if !self.admit(&request, &mut wr).await {
                return;
            }
        }
    }

    /// The next request, skipping blank lines and answering malformed ones; `None` when
    /// the connection should close (end, error, overlong line).
    async fn next_request(&self, rd: &mut Reader, wr: &mut Writer) -> Option<Request> {
        loop {
            let line = match read_line(rd).await {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    RpcStats::bump(&self.stats.malformed);
                    let msg = format!("request longer than {MAX_LINE} bytes");
                    let _ = reply(wr, &Response::error(msg)).await;
                    return None;
                }
                Ok(Line::Eof) | Err(_) => return None,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            RpcStats::bump(&self.stats.requests);
            match serde_json::from_slice(&line) {
                Ok(r) => return Some(r),
                Err(e) => {
                    RpcStats::bump(&self.stats.malformed);
                    tracing::debug!(error = %e, "malformed RPC request");
                    reply(wr, &Response::error(format!("malformed request: {e}")))
                        .await
                        .ok()?;
                }
            }
        }
    }

    /// Whether `request` carries the token; an unauthorised one is answered, counted and
    /// closes the connection.
    async fn admit(&self, request: &Request, wr: &mut Writer) -> bool {
        if self.authorised(request) {
            return true;
        }
        RpcStats::bump(&self.stats.unauthorized);
        let _ = reply(
            wr,
            &Response::error("unauthorized: missing or wrong RPC token"),
        )
        .await;
        false
    }

    fn authorised(&self, request: &Request) -> bool {
        match &self.token {
            None => true,
            Some(want) => request
                .token
                .as_deref()
                .is_some_and(|got| constant_time_eq(got.as_bytes(), want.as_bytes())),
        }
    }

    async fn execute(&self, command: RpcCommand) -> Response {
        let h = &self.handle;
        let result = match command {
            RpcCommand::Members => h.members().await.map(|members| Response {
                members: Some(members),
                ..Response::ok()
            }),
            RpcCommand::Join { addrs, wait_ms } => {
                let wait = wait_ms.map_or(JOIN_WAIT, Duration::from_millis);
                return self.join(addrs, wait).await;
            }
            RpcCommand::Leave => h.leave().await.map(|outcome| Response {
                leave: Some(outcome),
                ..Response::ok()
            }),
            RpcCommand::ForceLeave { name } => {
                return match h.force_leave(&name).await {
                    Ok(()) => Response::ok(),
                    Err(HandleError::ForceLeave(e)) => {
                        Response::error(format!("cannot force {name} out: {e}"))
                    }
                    Err(e) => Response::error(e.to_string()),
                };
            }
            RpcCommand::Event { name, payload } => h
                .user_event(&name, payload.as_bytes())
                .await
                .map(|()| Response::ok()),
            RpcCommand::Tags { set, delete } => h
                .update_tags(set.into_iter().collect(), delete)
                .await
                .map(|tags| Response {
                    tags: Some(crate::member::tags_to_map(&tags)),
                    ..Response::ok()
                }),
            RpcCommand::Info => h.stats().await.map(|agent: AgentStats| Response {
                info: Some(Info {
                    agent,
                    handlers: self.handlers.counts(),
                    render: self
                        .render
                        .read()
                        .map(|list| {
                            list.iter()
                                .map(|(dest, s)| (dest.display().to_string(), s.counts()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    rpc: self.stats.counts(),
                }),
                ..Response::ok()
            }),
            RpcCommand::Keys { op, key, plaintext } => return self.keys(op, key, plaintext).await,
            RpcCommand::Monitor { .. } => unreachable!("handled by the connection"),
        };
        result.unwrap_or_else(|e| Response::error(e.to_string()))
    }

    async fn keys(
        &self,
        op: KeyOp,
        key: Option<KeyText>,
        plaintext: Option<Plaintext>,
    ) -> Response {
        let change = match key_change(op, key, plaintext) {
            Ok(c) => c,
            Err(e) => return Response::error(e),
        };
        match self.handle.keyring(change).await {
            Ok(view) => {
                let keys: Vec<String> = view.keys.iter().map(keyring::encode_key).collect();
                Response {
                    keyring: Some(KeyringInfo {
                        primary: keys.first().cloned().unwrap_or_default(),
                        keys,
                        file: view.file.map(|p| p.display().to_string()),
                        plaintext: view.plaintext,
                    }),
                    ..Response::ok()
                }
            }
            Err(e) => Response::error(e.to_string()),
        }
    }

    async fn join(&self, addrs: Vec<String>, wait: Duration) -> Response {
        if addrs.is_empty() {
            return Response::error("join needs at least one address");
        }
        let mut resolved = Vec::new();
        for a in &addrs {
            match seeds::resolve(a).await {
                Ok(list) => resolved.extend(list.into_iter().take(1)),
                Err(e) => return Response::error(e),
            }
        }
        let mut events = self.handle.events();
        if let Err(e) = self.handle.join(resolved).await {
            return Response::error(e.to_string());
        }
        if wait.is_zero() {
            return Response::ok();
        }
        let answered = tokio::time::timeout(wait, async {
            while let Some(e) = events.next().await {
                if let AgentEvent::Joined { via } = e {
                    return Some(via);
                }
            }
            None
        })
        .await;
        match answered {
            Ok(Some(via)) => Response {
                joined_via: Some(via.to_string()),
                ..Response::ok()
            },
            Ok(None) => Response::error("the agent stopped"),
            Err(_) => Response::error(format!(
                "no seed answered within {}; the agent keeps retrying in the background",
                humantime::format_duration(wait)
            )),
        }
    }

    async fn monitor(&self, mut rd: Reader, mut wr: Writer, level: Option<String>) {
        let filter = match logging::parse_level(level.as_deref().unwrap_or("info")) {
            Ok(f) => f,
            Err(e) => {
                let _ = reply(&mut wr, &Response::error(e)).await;
                return;
            }
        };
        if reply(&mut wr, &Response::ok()).await.is_err() {
            return;
        }
        let mut events = self.handle.events();
        let mut logs = self.logs.as_ref().map(LogFeed::subscribe);
        let mut scratch = [0u8; 256];
        loop {
            let item = tokio::select! {
                e = events.next() => match e {
                    Some(e) => StreamItem::Event(e),
                    None => {
                        // The agent stopped: pass on the log lines it wrote while stopping.
                        if let Some(rx) = logs.as_mut() {
                            while let Ok(l) = rx.try_recv() {
                                if logging::passes(&l.level, filter)
                                    && write_json(&mut wr, &StreamItem::Log(l)).await.is_err()
                                {
                                    return;
                                }
                            }
                        }
                        return;
                    }
                },
                l = next_log(&mut logs) => match l {
                    Some(l) if logging::passes(&l.level, filter) => StreamItem::Log(l),
                    Some(_) => continue,
                    None => { logs = None; continue }
                },
                // The client hung up (or sent something, which a monitor ignores).
                n = rd.read(&mut scratch) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
            };
            if write_json(&mut wr, &item).await.is_err() {
                return;
            }
        }
    }
}

async fn next_log(logs: &mut Option<broadcast::Receiver<LogLine>>) -> Option<LogLine> {
    let Some(rx) = logs.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(l) => return Some(l),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// The change a `keys` request asks for, or why it is invalid.
fn key_change(
    op: KeyOp,
    key: Option<KeyText>,
    plaintext: Option<Plaintext>,
) -> Result<KeyChange, String> {
    let parse = |key: Option<KeyText>| {
        let text = key.ok_or_else(|| format!("keys {} needs a key", op.as_str()))?;
        keyring::parse_key(&text.0).map_err(|e| format!("invalid key: {e}"))
    };
    Ok(match op {
        KeyOp::List => KeyChange::List,
        KeyOp::Install => KeyChange::Install(parse(key)?),
        KeyOp::Use => KeyChange::Use(parse(key)?),
        KeyOp::Remove => KeyChange::Remove(parse(key)?),
        KeyOp::Plaintext => KeyChange::Plaintext(
            plaintext.ok_or("keys plaintext needs a plaintext policy: refuse, accept or send")?,
        ),
    })
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its newline).
async fn read_line(r: &mut Reader) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Text(line)
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > MAX_LINE {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Line::Text(line));
        }
    }
}

async fn reply(wr: &mut Writer, response: &Response) -> std::io::Result<()> {
    write_json(wr, response).await
}

/// Writes `value` as one JSON line, within [`WRITE_TIMEOUT`].
async fn write_json<T: serde::Serialize>(
    wr: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the RPC client stopped reading",
            )
        })?
}

/// Compares secrets without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that stops reading cannot hold its connection: the write gives up.
    #[tokio::test(start_paused = true)]
    async fn a_write_to_a_client_that_stopped_reading_times_out() {
        let (mut server, _client) = tokio::io::duplex(64);
        let big = "x".repeat(1024);
        let t0 = tokio::time::Instant::now();
        let e = write_json(&mut server, &big).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), WRITE_TIMEOUT);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }

    #[test]
    fn encrypt_plaintext_op_needs_a_policy() {
        assert_eq!(
            key_change(KeyOp::Plaintext, None, Some(Plaintext::Accept)),
            Ok(KeyChange::Plaintext(Plaintext::Accept))
        );
        let e = key_change(KeyOp::Plaintext, None, None).unwrap_err();
        assert!(e.contains("refuse, accept or send"), "{e}");
        assert_eq!(
            key_change(KeyOp::List, None, Some(Plaintext::Send)),
            Ok(KeyChange::List)
        );
    }
}
