//! The RPC client used by the `rumor` verbs.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

use super::RpcAddr;
use super::protocol::{Request, Response, RpcCommand, StreamItem};

/// Longest wait to connect to the agent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an RPC call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The agent could not be reached.
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection failed mid-call.
    Io(std::io::Error),
    /// The agent answered something that is not a response.
    Protocol(String),
    /// The agent answered with an error.
    Agent(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect { addr, reason } => write!(
                f,
                "cannot reach the rumor agent at {addr}: {reason} (is `rumor agent` running? set --rpc-addr)"
            ),
            ClientError::Io(e) => write!(f, "connection to the agent failed: {e}"),
            ClientError::Protocol(e) => write!(f, "unexpected answer from the agent: {e}"),
            ClientError::Agent(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to an agent's RPC endpoint.
pub struct RpcClient {
    reader: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    token: Option<String>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// Connects to `addr`: `host:port`, or `unix:PATH` for an agent listening on a Unix
    /// socket.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<Self, ClientError> {
        let fail = |reason: String| ClientError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let connect = async {
            Ok::<_, std::io::Error>(match addr.parse::<RpcAddr>() {
                Ok(RpcAddr::Unix(path)) => split(UnixStream::connect(path).await?),
                // A host name is resolved by the TCP connect.
                _ => split(TcpStream::connect(addr).await?),
            })
        };
        let (r, w) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(RpcClient {
            reader: BufReader::new(r),
            writer: w,
            token,
        })
    }

    /// Sends one request and reads its answer; an error answer becomes
    /// [`ClientError::Agent`].
    pub async fn call(&mut self, command: RpcCommand) -> Result<Response, ClientError> {
        let request = Request {
            token: self.token.clone(),
            command,
        };
        let mut bytes =
            serde_json::to_vec(&request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .await
            .map_err(ClientError::Io)?;
        let line = self.read_line().await?.ok_or_else(|| {
            ClientError::Protocol("the agent closed the connection without answering".into())
        })?;
        let response: Response =
            serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if response.ok {
            Ok(response)
        } else {
            Err(ClientError::Agent(
                response
                    .error
                    .unwrap_or_else(|| "the agent reported an error".into()),
            ))
        }
    }

    /// The next item of a `monitor` stream, or `None` when the agent closed it.
    pub async fn next_item(&mut self) -> Result<Option<StreamItem>, ClientError> {
        let Some(line) = self.read_line().await? else {
            return Ok(None);
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .await
            .map_err(ClientError::Io)?;
        Ok((n > 0).then_some(line))
    }
}

/// A stream's two halves, boxed so that TCP and Unix connections are one type.
#[allow(clippy::type_complexity)]
pub(super) fn split<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
) -> (
    Box<dyn AsyncRead + Send + Unpin>,
    Box<dyn AsyncWrite + Send + Unpin>,
) {
    let (r, w) = tokio::io::split(stream);
    (Box::new(r), Box::new(w))
}
