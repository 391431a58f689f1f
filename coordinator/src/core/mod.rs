//! Pure coordinator logic: no actix, no I/O, no system clock. Every operation is given
//! `now` and returns what must happen ([`Effect`]s); the actors persist and carry them out.
//!
//! - [`model`]: requests, instances, their states and reasons.
//! - [`registry`]: hosts, their units, runtimes and liveness.
//! - [`guest`]: how a guest runs (image or process, data disk) and which hosts can run it.
//! - [`placement`]: which host a request fits on (seed 004, best fit).
//! - [`cluster`]: the state machine tying them together.
//! - [`deployment`]: ReplicaSet/Job/Container definitions; [`deployments`]: reconciling them;
//!   [`crash_loop`]: the backoff before replacing crashed replicas.
//! - [`snapshots`]: which snapshots exist and which one an instance restores.
//! - [`pools`]: per-model availability and the surplus price.
//! - [`billing`]: accounts, ledger and the exact meter; [`accounts`]: payments, metering
//!   and overdue handling in the cluster.
//! - [`market`]: the per-pool spot auction; [`spot`]: applying it (prices, reclamation,
//!   notices, deadlines); [`scheduling`]: serving the queue.

pub mod accounts;
pub mod billing;
#[cfg(test)]
mod billing_tests;
pub mod cluster;
pub mod crash_loop;
#[cfg(test)]
mod crash_loop_tests;
pub mod deployment;
#[cfg(test)]
mod deployment_tests;
pub mod deployments;
pub mod error;
pub mod events;
pub mod guest;
#[cfg(test)]
mod guest_tests;
pub mod lifecycle;
pub mod market;
pub mod model;
pub mod placement;
pub mod pools;
pub mod registry;
pub mod scheduling;
pub mod snapshots;
pub mod spot;
#[cfg(test)]
mod spot_tests;
pub mod timers;

pub use cluster::{Cluster, Effect};
pub use model::{Billing, EndReason, Instance, InstanceRequest, InstanceState, Range};
pub use registry::{Host, HostState, Registry};
