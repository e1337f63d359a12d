//! # rumor-std
//!
//! The tokio runtime for [`rumor_core`] and the pieces of the `rumor` command: an [`Agent`]
//! that drives a [`rumor_core::Node`] over one UDP socket, Serf-style event [`handler`]s, a
//! peer [`snapshot`] for restarts, a loopback [`rpc`] endpoint for the command-line verbs,
//! and the [`keyring`] of an encrypted agent (keys as text, the keyring file).
//!
//! ```no_run
//! use rumor_std::{Agent, AgentConfig, AgentEvent};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = AgentConfig::new("web-1", "127.0.0.1:7946".parse()?);
//! config.tags = rumor_core::Tags::new().with("role", "backend").map_err(|e| e.to_string())?;
//! let agent = Agent::start(config).await?;
//! let handle = agent.handle();
//! let mut events = handle.events();
//! handle.join(["127.0.0.2:7946".parse()?]).await?;
//! while let Some(event) = events.next().await {
//!     if let AgentEvent::MemberFailed { member } = event {
//!         println!("{} failed", member.name);
//!     }
//! }
//! agent.shutdown().await; // leave gracefully, then stop
//! # Ok(()) }
//! ```
//!
//! The node lives on the heap (`Box<AgentNode>`): a `Node<512, 512>` is about 140 KiB, so
//! it is built once on a thread with a large stack and never moved again. An agent tracks
//! up to [`MEMBER_CAPACITY`] members, itself included.

pub mod agent;
pub mod atomic_file;
mod burst;
mod deadline;
pub mod event;
pub mod file_lock;
pub mod handler;
pub mod keyring;
pub mod logging;
pub mod member;
pub mod render;
pub mod rpc;
pub mod seeds;
pub mod service;
pub mod snapshot;
mod subprocess;
mod task;

pub use agent::{
    Agent, AgentConfig, AgentError, AgentNode, AgentStats, EventStream, Handle, HandleError,
    KeyChange, KeyringChangeError, KeyringView, LeaveOutcome, MEMBER_CAPACITY, UPDATE_CAPACITY,
};
pub use event::{AgentEvent, UserEventInfo};
pub use member::{MemberInfo, parse_status, parse_tag_arg, tags_from_map, tags_to_map};
pub use task::TaskFailed;
