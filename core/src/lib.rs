//! Pure coordinator logic: no actix, no I/O, no system clock. Every operation is given
//! `now`; what must happen afterwards waits in the outbox ([`changes::Changes`]) for the
//! actor to commit and send.
//!
//! - [`cluster`]: the coordinator over the parts below; [`timers`]: its one timer.
//! - [`instance`]: an instance's lifecycle (one enum, its transitions and their effects)
//!   and the table of instances with its indexes; [`model`]: requests and state names.
//! - [`registry`]: hosts, their units, runtimes and liveness; [`agents`]: what hosts and
//!   their agents report.
//! - [`requests`]: creating, changing and deleting instances; [`scheduling`]: serving
//!   the queue and reclaiming capacity for regular requests; [`promises`]: the reclaimed
//!   units owed to them; [`placement`]: where a request fits (seed 004, best fit);
//!   [`guest`]: which hosts can run it.
//! - [`market`]: the per-pool spot auction and prices; [`spot`]: running it, notices and
//!   their deadlines; [`pools`]: availability and the surplus price.
//! - [`billing`]: accounts and the exact meter; [`ledger`]: accounts and their entries;
//!   [`accounts`]: payments, metering and overdue handling; [`quotas`]: what one account
//!   may hold at once.
//! - [`deployment`]: ReplicaSet/Job/Container definitions; [`deployments`]: reconciling
//!   them; [`crash_loop`]: the backoff before replacing crashed replicas.
//! - [`serving`]: ports and readiness of guests that serve; [`ports`]: which host ports
//!   they get, and starts refused for a port; [`routes`]: their endpoints and the
//!   gateway's table; [`rotation`]: which replicas take traffic, noticed ones until a
//!   replacement is ready or their drain margin (DESIGN §18).
//! - [`autoscale`]: autoscaling rules and decisions; [`scaling`]: applying them.
//! - [`maintenance`]: cordon, uncordon and drain of a host (DESIGN §19).
//! - [`drills`]: interruptions an owner rehearses; [`faults`]: failed GPUs off the market
//!   and their instances replaced, not billed.
//! - [`retention`]: what ended work is kept for, and forgetting it (DESIGN §15).
//! - [`snapshots`]: which snapshots exist and which one an instance restores.
//! - [`notices`]: the messages events make for a person's inbox and mail.
//! - [`listing`]: one page of a list, by state, cursor and limit.
//! - [`events`], [`error`], [`ids`], [`settings`], [`outbox`], [`changes`]: what the parts
//!   share.

pub mod accounts;
pub mod agents;
pub mod autoscale;
pub mod billing;
#[cfg(test)]
mod billing_tests;
pub mod changes;
pub mod cluster;
pub mod crash_loop;
#[cfg(test)]
mod crash_loop_tests;
pub mod deployment;
#[cfg(test)]
mod deployment_retention_tests;
#[cfg(test)]
mod deployment_tests;
pub mod deployments;
pub mod drills;
pub mod error;
pub mod events;
pub mod faults;
#[cfg(test)]
mod faults_tests;
pub mod guest;
#[cfg(test)]
mod guest_tests;
pub mod ids;
pub mod instance;
pub mod ledger;
pub mod listing;
pub mod mail_budget;
pub mod maintenance;
pub mod market;
pub mod model;
pub mod notices;
#[cfg(test)]
mod notices_tests;
pub mod outbox;
pub mod placement;
pub mod pools;
pub mod ports;
pub mod promises;
#[cfg(test)]
mod promises_tests;
pub mod quotas;
#[cfg(test)]
mod quotas_tests;
pub mod registry;
pub mod requests;
pub mod retention;
#[cfg(test)]
mod retention_tests;
pub mod rotation;
#[cfg(test)]
mod rotation_tests;
pub mod routes;
pub mod scaling;
#[cfg(test)]
mod scenario_tests;
pub mod scheduling;
pub mod serving;
pub mod settings;
pub mod snapshots;
pub mod spot;
#[cfg(test)]
mod spot_tests;
pub mod timers;

pub use cluster::{Cluster, Outgoing};
pub use instance::Instance;
pub use model::{Billing, EndReason, InstanceRequest, InstanceState, Range};
pub use registry::{Host, HostState, Registry};
