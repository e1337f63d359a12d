//! Where an agent's RPC listens: TCP (Serf's way, loopback by default) or a Unix socket,
//! whose file permissions decide who may connect.

use std::net::SocketAddr;
use std::path::PathBuf;

/// An RPC address: `IP:PORT` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket: created with mode 0600, removed when the agent stops.
    Unix(PathBuf),
}

impl RpcAddr {
    /// Whether only this host can reach it (loopback TCP, or a Unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            RpcAddr::Tcp(a) => a.ip().is_loopback(),
            RpcAddr::Unix(_) => true,
        }
    }
}

impl std::str::FromStr for RpcAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("unix:") {
            Some("") => Err(format!("rpc address `{s}` has no socket path after unix:")),
            Some(path) => Ok(RpcAddr::Unix(PathBuf::from(path))),
            None => s
                .parse()
                .map(RpcAddr::Tcp)
                .map_err(|_| format!("rpc address `{s}` is neither IP:PORT nor unix:PATH")),
        }
    }
}

impl std::fmt::Display for RpcAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcAddr::Tcp(a) => write!(f, "{a}"),
            RpcAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_prints_them_back() {
        for text in ["127.0.0.1:7373", "[::1]:7373", "unix:/run/rumor.sock"] {
            let a: RpcAddr = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            assert!(a.is_local());
        }
        assert!(!"0.0.0.0:7373".parse::<RpcAddr>().unwrap().is_local());
        for bad in ["unix:", "localhost", "7373", ""] {
            assert!(bad.parse::<RpcAddr>().is_err(), "{bad}");
        }
    }
}
