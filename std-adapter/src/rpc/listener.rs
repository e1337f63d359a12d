//! Where the RPC server accepts connections: a TCP listener, or a Unix socket of mode 0600
//! whose peers' credentials are logged. Both give a connection as one boxed reader/writer
//! pair.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, UnixListener};

use super::RpcAddr;
use super::client::split;

/// A connection's reading side.
pub(super) type Reader = BufReader<Box<dyn AsyncRead + Send + Unpin>>;
/// A connection's writing side.
pub(super) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A bound RPC endpoint.
#[derive(Debug)]
pub(super) enum Listener {
    Tcp(TcpListener),
    /// The socket and its path, removed when serving ends.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`. A Unix socket gets mode 0600; a socket file left by an agent that is
    /// gone is replaced, one another agent listens on is not.
    pub(super) async fn bind(addr: &RpcAddr) -> std::io::Result<Listener> {
        match addr {
            RpcAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await?)),
            RpcAddr::Unix(path) => {
                if tokio::net::UnixStream::connect(path).await.is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another agent listens on this socket",
                    ));
                }
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                let listener = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// The next connection: its halves and a description of the peer for the log.
    pub(super) async fn accept(&self) -> std::io::Result<(Reader, Writer, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let (r, w) = split(stream);
                Ok((BufReader::new(r), w, peer.to_string()))
            }
            Listener::Unix(l, _) => {
                let (stream, _) = l.accept().await?;
                let peer = match stream.peer_cred() {
                    Ok(c) => format!(
                        "uid {} gid {} pid {}",
                        c.uid(),
                        c.gid(),
                        c.pid().map_or("?".to_owned(), |p| p.to_string())
                    ),
                    Err(e) => format!("unknown peer ({e})"),
                };
                let (r, w) = split(stream);
                Ok((BufReader::new(r), w, peer))
            }
        }
    }

    pub(super) fn local_addr(&self) -> std::io::Result<RpcAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(RpcAddr::Tcp),
            Listener::Unix(_, path) => Ok(RpcAddr::Unix(path.clone())),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
