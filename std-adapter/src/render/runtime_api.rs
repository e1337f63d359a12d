//! The HAProxy runtime API over its stats socket: reading a backend's servers and bringing
//! them in line with the membership without a reload (`add server`, `enable server`,
//! `set server ... state drain|maint|ready`, `del server`; HAProxy 2.4+, not experimental
//! since 2.6).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::backend::ServerLine;

/// Admin-state bits of `show servers state` that mean maintenance (forced, inherited,
/// from the config, from a resolver, from a hostname).
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
/// Admin-state bits that mean draining (forced, inherited).
const ADMIN_DRAIN: u32 = 0x08 | 0x10;
/// How often a draining server's sessions are polled.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// Where the stats socket listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (`stats socket /run/haproxy/admin.sock level admin`).
    Unix(PathBuf),
    /// A TCP socket (`stats socket ipv4@127.0.0.1:9999 level admin`).
    Tcp(String),
}

impl Endpoint {
    /// A path (anything with a `/`) or `host:port`, with an optional `unix@`/`ipv4@`/`ipv6@`
    /// prefix as in HAProxy's own syntax.
    pub fn parse(s: &str) -> Self {
        if let Some(path) = s.strip_prefix("unix@") {
            return Endpoint::Unix(path.into());
        }
        if let Some(addr) = s.strip_prefix("ipv4@").or_else(|| s.strip_prefix("ipv6@")) {
            return Endpoint::Tcp(addr.to_owned());
        }
        if s.contains('/') {
            Endpoint::Unix(s.into())
        } else {
            Endpoint::Tcp(s.to_owned())
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => f.write_str(a),
        }
    }
}

/// A connection factory for the runtime API: one connection per command, as HAProxy's
/// non-interactive mode expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeApi {
    /// The stats socket (it must be `level admin`).
    pub endpoint: Endpoint,
    /// Longest wait for one answer.
    pub timeout: Duration,
}

/// A server as `show servers state` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveServer {
    /// Its name.
    pub name: String,
    /// Its address (IP).
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// In maintenance: out of rotation.
    pub maint: bool,
    /// Draining: no new sessions.
    pub drain: bool,
    /// Up as far as its health checks tell (`srv_op_state` running).
    pub up: bool,
}

/// What one [`RuntimeApi::sync_servers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Servers added.
    pub added: Vec<String>,
    /// Servers taken out of maintenance or drain, or given a new address.
    pub enabled: Vec<String>,
    /// Servers drained and put in maintenance.
    pub removed: Vec<String>,
    /// Servers deleted.
    pub deleted: Vec<String>,
}

impl SyncReport {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.enabled.is_empty()
            && self.removed.is_empty()
            && self.deleted.is_empty()
    }
}

impl RuntimeApi {
    /// Sends one command and returns the answer.
    pub fn command(&self, cmd: &str) -> Result<String, String> {
        let io = |e: std::io::Error| format!("runtime API {}: `{cmd}`: {e}", self.endpoint);
        let mut answer = String::new();
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let mut s = UnixStream::connect(path).map_err(io)?;
                s.set_read_timeout(Some(self.timeout)).map_err(io)?;
                s.set_write_timeout(Some(self.timeout)).map_err(io)?;
                s.write_all(format!("{cmd}\n").as_bytes()).map_err(io)?;
                s.read_to_string(&mut answer).map_err(io)?;
            }
            Endpoint::Tcp(addr) => {
                let mut s = TcpStream::connect(addr).map_err(io)?;
                s.set_read_timeout(Some(self.timeout)).map_err(io)?;
                s.set_write_timeout(Some(self.timeout)).map_err(io)?;
                s.write_all(format!("{cmd}\n").as_bytes()).map_err(io)?;
                s.read_to_string(&mut answer).map_err(io)?;
            }
        }
        Ok(answer)
    }

    /// Sends a command that answers nothing, or one of `ok` answers, on success.
    fn expect(&self, cmd: &str, ok: &str) -> Result<(), String> {
        let answer = self.command(cmd)?;
        let answer = answer.trim();
        if answer.is_empty() || (!ok.is_empty() && answer.contains(ok)) {
            Ok(())
        } else {
            Err(format!("HAProxy refused `{cmd}`: {answer}"))
        }
    }

    /// The pid of the worker answering (`show info`), to see a reload take effect.
    pub fn worker_pid(&self) -> Result<u32, String> {
        let info = self.command("show info")?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("no Pid in `show info` from {}", self.endpoint))
    }

    /// The servers of `backend`.
    pub fn servers(&self, backend: &str) -> Result<Vec<LiveServer>, String> {
        let answer = self.command(&format!("show servers state {backend}"))?;
        parse_servers_state(&answer)
            .ok_or_else(|| format!("unexpected `show servers state {backend}` answer: {answer}"))
    }

    /// Current sessions per server of `backend` (`show stat`, column `scur`).
    pub fn sessions(&self, backend: &str) -> Result<BTreeMap<String, u64>, String> {
        let answer = self.command("show stat")?;
        parse_sessions(&answer, backend).ok_or_else(|| "unexpected `show stat` answer".to_owned())
    }

    /// Brings `backend` in line with `desired`: adds and enables the missing servers (with
    /// their line's options, or `default_options` when it has none), re-enables or re-addresses known ones, and drains (up to
    /// `drain_timeout`), puts in maintenance and deletes the others once no stream is
    /// bound to them (within the same `drain_timeout`). A server that cannot be deleted
    /// yet (connections or streams still attached) stays in maintenance, out of rotation,
    /// and the next sync tries again.
    pub fn sync_servers(
        &self,
        backend: &str,
        desired: &[ServerLine],
        default_options: &str,
        drain_timeout: Duration,
    ) -> Result<SyncReport, String> {
        let live = self.servers(backend)?;
        let mut report = SyncReport::default();
        for line in desired {
            let d = &line.server;
            let options = match line.options.as_str() {
                "" => default_options,
                own => own,
            };
            let id = format!("{backend}/{}", d.name);
            match live.iter().find(|l| l.name == d.name) {
                None => {
                    self.expect(
                        format!("add server {id} {} {options}", d.address()).trim_end(),
                        "New server registered",
                    )?;
                    let words: Vec<&str> = options.split_whitespace().collect();
                    if words.contains(&"check") {
                        self.expect(&format!("enable health {id}"), "")?;
                    }
                    if words.contains(&"agent-check") {
                        self.expect(&format!("enable agent {id}"), "")?;
                    }
                    self.expect(&format!("enable server {id}"), "")?;
                    report.added.push(d.name.clone());
                }
                Some(l) => {
                    let moved = l.addr != d.ip.to_string() || l.port != d.port;
                    if moved {
                        self.expect(&format!("set server {id} state maint"), "")?;
                        self.expect(
                            &format!("set server {id} addr {} port {}", d.ip, d.port),
                            "",
                        )?;
                    }
                    if moved || l.maint || l.drain {
                        self.expect(&format!("set server {id} state ready"), "")?;
                        report.enabled.push(d.name.clone());
                    }
                }
            }
        }
        let gone: Vec<&LiveServer> = live
            .iter()
            .filter(|l| !desired.iter().any(|d| d.server.name == l.name))
            .collect();
        let draining: Vec<&str> = gone
            .iter()
            .filter(|l| !l.maint)
            .map(|l| l.name.as_str())
            .collect();
        let deadline = Instant::now() + drain_timeout;
        for name in &draining {
            self.expect(&format!("set server {backend}/{name} state drain"), "")?;
        }
        let busy = self.wait_idle(&draining, deadline, |api| api.sessions(backend));
        if !busy.is_empty() {
            tracing::warn!(backend, servers = ?busy, ?drain_timeout, "servers still busy after the drain timeout");
        }
        for name in &draining {
            self.expect(&format!("set server {backend}/{name} state maint"), "")?;
            report.removed.push((*name).to_owned());
        }
        // In maintenance no new stream picks these servers, but one already bound to a
        // server (e.g. waiting to retry a refused connection) still points at it, and
        // HAProxy 2.6.12 (Debian 12's) frees the server under it on `del server`; the
        // stream then reads freed memory when it wakes and the worker may crash.
        // So a server is deleted only once no stream refers to it; until then it stays in
        // maintenance, out of rotation, and a later sync deletes it.
        let names: Vec<&str> = gone.iter().map(|l| l.name.as_str()).collect();
        let referenced = self.wait_idle(&names, deadline, |api| api.streams(backend));
        for name in names {
            if referenced.contains(&name) {
                tracing::debug!(
                    backend,
                    server = name,
                    "server kept in maintenance for now: streams still refer to it"
                );
                continue;
            }
            match self.expect(&format!("del server {backend}/{name}"), "Server deleted") {
                Ok(()) => report.deleted.push(name.to_owned()),
                Err(e) => tracing::debug!(error = %e, "server kept in maintenance for now"),
            }
        }
        Ok(report)
    }

    /// Streams of `backend` bound to each of its servers (`show sess`), including streams
    /// that hold no connection right now, such as one waiting to retry.
    pub fn streams(&self, backend: &str) -> Result<BTreeMap<String, u64>, String> {
        self.command("show sess")
            .map(|answer| parse_streams(&answer, backend))
    }

    /// Polls `count` (per server name) until none of `names` counts anything, or until
    /// `deadline`; returns the names still counting something. A failed poll counts as
    /// busy: it is never a reason to go ahead.
    fn wait_idle<'a>(
        &self,
        names: &[&'a str],
        deadline: Instant,
        count: impl Fn(&Self) -> Result<BTreeMap<String, u64>, String>,
    ) -> Vec<&'a str> {
        if names.is_empty() {
            return Vec::new();
        }
        loop {
            let busy: Vec<&str> = match count(self) {
                Ok(counts) => names
                    .iter()
                    .copied()
                    .filter(|n| counts.get(*n).copied().unwrap_or(0) > 0)
                    .collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the servers' load");
                    names.to_vec()
                }
            };
            if busy.is_empty() || Instant::now() >= deadline {
                return busy;
            }
            thread::sleep(DRAIN_POLL);
        }
    }
}

/// Parses `show servers state` (format version 1): name, address, port and admin state.
fn parse_servers_state(answer: &str) -> Option<Vec<LiveServer>> {
    let mut lines = answer.lines();
    if lines.next()?.trim() != "1" {
        return None;
    }
    let header: Vec<&str> = lines
        .next()?
        .trim_start_matches('#')
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (name, addr, op, admin, port) = (
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
        col("srv_port")?,
    );
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let admin: u32 = f.get(admin)?.parse().ok()?;
        out.push(LiveServer {
            name: (*f.get(name)?).to_owned(),
            addr: (*f.get(addr)?).to_owned(),
            port: f.get(port)?.parse().ok()?,
            maint: admin & ADMIN_MAINT != 0,
            drain: admin & ADMIN_DRAIN != 0,
            up: f.get(op)? == &"2",
        });
    }
    Some(out)
}

/// Parses `show sess`: how many streams of `backend` are bound to each server (the
/// `be=` and `srv=` fields of each line).
fn parse_streams(answer: &str, backend: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in answer.lines() {
        let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key));
        if field("be=") == Some(backend)
            && let Some(server) = field("srv=").filter(|s| *s != "<none>")
        {
            *out.entry(server.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Parses `show stat` CSV: `scur` per server of `backend`.
fn parse_sessions(answer: &str, backend: &str) -> Option<BTreeMap<String, u64>> {
    let mut lines = answer.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, scur) = (col("pxname")?, col("svname")?, col("scur")?);
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(px) == Some(&backend) && !matches!(f.get(sv), Some(&"BACKEND") | Some(&"FRONTEND"))
        {
            out.insert((*f.get(sv)?).to_owned(), f.get(scur)?.parse().unwrap_or(0));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("/run/haproxy.sock"),
            Endpoint::Unix("/run/haproxy.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix@rel.sock"),
            Endpoint::Unix("rel.sock".into())
        );
        assert_eq!(
            Endpoint::parse("ipv4@127.0.0.1:9999"),
            Endpoint::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            Endpoint::parse("127.0.0.1:9999"),
            Endpoint::Tcp("127.0.0.1:9999".into())
        );
    }

    #[test]
    fn parses_servers_state_of_haproxy_2_6() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
            3 nodes 1 s1 127.0.0.1 0 1 1 1 2 8 2 0 6 0 0 0 - 18081 - 0 0 - - 0\n\
            3 nodes 2 s2 127.0.0.1 2 8 1 1 0 1 0 2 6 0 0 0 - 18082 - 0 0 - - 0\n\n";
        let s = parse_servers_state(answer).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (
                s[0].name.as_str(),
                s[0].port,
                s[0].maint,
                s[0].drain,
                s[0].up
            ),
            ("s1", 18081, true, false, false)
        );
        assert_eq!(
            (
                s[1].name.as_str(),
                s[1].port,
                s[1].maint,
                s[1].drain,
                s[1].up
            ),
            ("s2", 18082, false, true, true)
        );
        assert_eq!(parse_servers_state("Can't find backend.\n"), None);
    }

    #[test]
    fn counts_streams_per_server_from_show_sess() {
        let answer = "0x55930cd823b0: proto=tcpv4 src=127.0.0.1:36298 fe=f be=nodes srv=web-3 ts=00 epoch=0 age=1s calls=2 rate=1 cpu=0 lat=0 rq[f=4dc00000h,i=16346,an=8000h,rx=,wx=,ax=] rp[f=80000000h,i=0,an=00h,rx=,wx=,ax=] scf=[8,280h,fd=13] scb=[3,1h,fd=-1] exp=0s rc=1 c_exp=0s\n\
            0x55930cd823b1: proto=tcpv4 src=127.0.0.1:36300 fe=f be=nodes srv=web-3 ts=00 age=0s\n\
            0x55930cd823b2: proto=tcpv4 src=127.0.0.1:36302 fe=f be=nodes srv=web-1 ts=00 age=0s\n\
            0x55930cd823b3: proto=tcpv4 src=127.0.0.1:36304 fe=f be=other srv=web-3 ts=00 age=0s\n\
            0x55930cd823b4: proto=tcpv4 src=127.0.0.1:36306 fe=f be=nodes srv=<none> ts=00 age=0s\n\
            0x55930cd823b5: proto=unix_stream src=unix:1 fe=GLOBAL be=<NONE> srv=<none> ts=00 age=0s\n";
        let s = parse_streams(answer, "nodes");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![("web-1".to_owned(), 1), ("web-3".to_owned(), 2)]
        );
    }

    #[test]
    fn parses_sessions_from_show_stat() {
        let answer = "# pxname,svname,qcur,qmax,scur,smax\nfe,FRONTEND,0,0,5,9\nnodes,s1,0,0,2,3\nnodes,BACKEND,0,0,2,3\nother,s1,0,0,7,7\n";
        let s = parse_sessions(answer, "nodes").unwrap();
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![("s1".to_owned(), 2)]
        );
    }
}
