//! The agent's RPC endpoint, used by every `rumor` verb but `agent` and `demo`.
//!
//! Newline-delimited JSON over loopback TCP or a Unix socket ([`RpcAddr`]): each request is one JSON object on
//! one line, each answer one line. `monitor` answers once, then streams one line per event
//! or log line until the client hangs up. See `docs/OPERATIONS.md` for the full protocol.

mod addr;
mod client;
mod listener;
mod protocol;
mod server;

pub use addr::RpcAddr;
pub use client::{ClientError, RpcClient};
pub use protocol::{
    Info, KeyOp, KeyText, KeyringInfo, MAX_LINE, Request, Response, RpcCommand, RpcCounts,
    StreamItem,
};
pub use server::{DRAIN_TIMEOUT, RpcServer, RpcStats};

/// The default RPC address, as Serf's.
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:7373";
