//! gpuspot-core: the coordinator's pure logic. No actix, tokio, I/O or system clock in
//! its dependencies: every operation is given `now`; what must happen afterwards waits in
//! the outbox ([`changes::Changes`]) for the coordinator's actor to commit and send.
//!
//! Two layers, with no module cycle between them: the parts' state and rules (data
//! modules, which never name [`Cluster`]), and the cluster's operations over them (the
//! modules with an `impl Cluster`, which name the parts; [`cluster`] names only parts).
//!
//! - [`cluster`]: the coordinator over the parts; [`restore`]: building one from config
//!   and a previous run's state; [`timers`]: its one timer; [`periodic`]: its periodic
//!   jobs.
//! - [`instance`]: an instance's lifecycle (one enum, its transitions and their effects)
//!   and the table of instances with its indexes; [`model`]: requests and state names.
//! - [`registry`]: hosts, their units, runtimes, liveness and link state; [`agents`]:
//!   what hosts and their agents report; [`host_removal`]: the operator deleting a host;
//!   [`maintenance`]: cordon, uncordon and drain.
//! - [`admission`]: who may create work, with typed refusals; [`requests`]: creating,
//!   changing and deleting instances; [`scheduling`]: serving the queue and reclaiming
//!   capacity for regular requests; [`promises`]: the reclaimed units owed to them;
//!   [`placement`]: where a request fits (seed 004, best fit); [`guest`]: which hosts
//!   can run it.
//! - [`market`]: the per-pool spot auction and prices; [`spot`]: running it, notices and
//!   their deadlines; [`pools`]: availability, the surplus price and each GPU model's pool.
//! - [`billing`]: accounts and the exact meter; [`ledger`]: accounts and their entries;
//!   [`accounts`]: payments, metering and overdue handling; [`quota`], [`quotas`]: what
//!   one account may hold at once.
//! - [`deployment`]: ReplicaSet/Job/Container definitions and their state;
//!   [`deployments`]: changing them; [`reconcile`]: closing the gap to what they want;
//!   [`crash_loop`]: the backoff before replacing crashed replicas.
//! - [`serving`]: ports and readiness of guests that serve; [`port_book`], [`ports`]:
//!   which host ports they get, and starts refused for a port; [`routes`]: their
//!   endpoints and the gateway's table; [`rotation`]: which replicas take traffic.
//! - [`autoscale`]: autoscaling rules and decisions; [`scaling`]: applying them.
//! - [`retention`]: what ended work is kept for; [`forget`]: forgetting it.
//! - [`snapshot`], [`snapshots`]: which snapshots exist and which one an instance restores.
//! - [`drills`]: interruptions an owner rehearses; [`faults`]: failed GPUs off the market
//!   and their instances replaced, not billed.
//! - [`notices`]: the messages events make for a person's inbox and mail.
//! - [`listing`]: one page of a list, by state, cursor and limit.
//! - [`events`] (typed payloads, from gpuspot-api), [`error`], [`ids`], [`settings`],
//!   [`outbox`], [`changes`]: what the parts share.

pub mod accounts;
pub mod admission;
#[cfg(test)]
mod admission_tests;
pub mod agents;
pub mod autoscale;
pub mod billing;
#[cfg(test)]
mod billing_tests;
pub mod changes;
pub mod cluster;
pub use deployment::crash_loop;
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
pub mod forget;
pub mod guest;
#[cfg(test)]
mod guest_tests;
pub mod host_removal;
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
pub mod periodic;
pub mod placement;
pub mod pools;
pub mod port_book;
pub mod ports;
pub mod promises;
#[cfg(test)]
mod promises_tests;
pub mod quota;
pub mod quotas;
#[cfg(test)]
mod quotas_tests;
pub mod reconcile;
pub mod registry;
pub mod requests;
pub mod restore;
pub mod retention;
#[cfg(test)]
mod retention_tests;
pub mod rotation;
#[cfg(test)]
mod rotation_tests;
pub mod routes;
pub mod scaling;
#[cfg(test)]
mod scaling_tests;
#[cfg(test)]
mod scenario_tests;
pub mod scheduling;
pub mod serving;
pub mod settings;
pub mod snapshot;
pub mod snapshots;
pub mod spot;
#[cfg(test)]
mod spot_tests;
pub mod timers;

pub use cluster::{Cluster, Outgoing};
pub use instance::Instance;
pub use model::{Billing, EndReason, InstanceRequest, InstanceState, Range};
pub use registry::{Host, HostState, Registry};
