//! gpuspot-coordinator: the control plane of a spot GPU cloud.
//!
//! Layout (docs/architecture.md#parts):
//! - [`config`]: TOML → validated [`config::Settings`].
//! - [`core`]: the gpuspot-core crate, pure logic given `now`: the instance lifecycle enum, the cluster over its
//!   owned parts (hosts, instances, prices, ledger, deployments, snapshots), one timer.
//! - [`actors`]: the actix shells that own the core, persist, arm timers and send.
//! - [`store`]: SQLite or PostgreSQL behind the [`store::Store`] trait, with a
//!   group-committing writer; [`ha`]: leadership among coordinators sharing PostgreSQL.
//! - [`quic`]: the agent link (join, mutual-TLS sessions, log intake, snapshot streams).
//! - [`snapshots`]: the snapshot store on disk (`<data-dir>/snapshots`).
//! - [`api`]: the HTTP API on actix-web; [`webhook`]: event delivery to the operator;
//!   [`mail`]: the mail outbox of customers' messages; [`metrics`]: what `/metrics` counts.
//! - [`gateway`]: the HTTP gateway in front of replica sets (docs/contracts.md#serving).
//! - [`ssh`]: the SSH front door into instances; [`listen`]: what all three listeners share
//!   (connection caps per client, accepting through a descriptor shortage, body deadlines).
//! - [`server`]: wires them together; [`cli`]: the `gpuspot-coordinator` command line.

pub mod actors;
pub mod api;
pub mod cli;
pub mod config;
pub mod directory;
pub mod gateway;
pub mod ha;
pub mod join;
pub mod listen;
pub mod mail;
pub mod metrics;
pub mod quic;
pub mod server;
pub mod snapshots;
pub mod ssh;
pub mod store;
pub mod webhook;

/// The pure logic, a crate of its own (gpuspot-core); `crate::core::…` paths keep working.
pub use gpuspot_core as core;
