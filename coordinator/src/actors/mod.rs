//! Thin actix shells around the core: they own the state, persist it, arm timers and send.
//!
//! - [`cluster`]: the one actor that owns [`crate::core::Cluster`]; API requests and agent
//!   messages both arrive here as messages, so the state has a single writer.
//! - [`messages`]: what crosses into the actor (one enum for API requests), each request
//!   with its typed [`Reply`]; [`failure`]: why a request is refused; `requests`,
//!   `account_requests`, `deployment_requests`, `host_requests`, `lists`, [`faults`]: how the actor answers.

mod account_requests;
pub mod cluster;
mod deployment_requests;
pub mod failure;
pub mod faults;
mod host_requests;
mod lists;
pub mod messages;
pub mod reply;
mod requests;
mod wakeup;

pub use account_requests::AccountChange;
pub use cluster::ClusterActor;
pub use failure::{Failure, Missing};
pub use messages::{AgentEvent, ApiRequest, Scope};
pub use reply::{Answer, Reply};
