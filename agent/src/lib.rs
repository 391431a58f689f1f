//! gpuspot-agent: runs on every GPU host.
//!
//! Layout (docs/architecture.md#parts, docs/contracts.md#hosts-and-units, #guest-socket,
//! docs/architecture.md#agent-link):
//! - [`discovery`]: GPUs through NVML or a simulated profile, cores and memory via sysinfo.
//! - [`runtime`]: guest workloads behind `WorkloadRuntime`: processes under their own uids,
//!   containers through the host's engine, or a fake for load tests (docs/contracts.md#guests).
//! - [`metadata`]: the per-instance guest metadata socket (seed 003).
//! - [`metrics`]: the agent's `/metrics` (`--metrics ADDR`).
//! - [`probes`]: readiness probes of the guests that serve (docs/contracts.md#serving).
//! - [`snapshots`]: data-dir snapshots to and from the coordinator's store
//!   (docs/contracts.md#snapshots).
//! - [`supervisor`]: what this host runs, applied idempotently from the coordinator's orders.
//! - [`link`]: joining, and the QUIC session with reconnects and reconciliation.
//! - [`state_file`]: crash-safe JSON records in the state dir.
//! - [`host_agent`]: one host's agent, [`local_host`] (what it runs) plus its [`link`];
//!   [`host`]: assembles one from settings; [`config`] and [`cli`]: settings and the binary;
//!   [`join_token`]: where the join token comes from (never the command line);
//!   [`lock`]: one agent per state dir.
//! - [`fleet`]: many simulated hosts in one process, for load tests.

pub mod cli;
pub mod config;
pub mod discovery;
pub mod fleet;
pub mod host;
pub mod host_agent;
pub mod join_token;
pub mod link;
pub mod local_host;
pub mod lock;
pub mod metadata;
pub mod metrics;
pub mod probes;
pub mod runtime;
pub mod snapshots;
pub mod state_file;
pub mod supervisor;
