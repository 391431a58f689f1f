//! Thin actix shells around the core: they own the state, persist it, arm timers and send.
//!
//! - [`cluster`]: the one actor that owns [`crate::core::Cluster`]; API requests and agent
//!   messages both arrive here as messages, so the state has a single writer.
//! - [`messages`]: what crosses into the actor (one enum for API requests); `requests`:
//!   how the actor answers them.

pub mod cluster;
mod deployment_requests;
mod host_requests;
pub mod messages;
mod requests;
mod wakeup;

pub use cluster::ClusterActor;
pub use messages::{AgentEvent, ApiError, ApiReply, ApiRequest, Scope};
