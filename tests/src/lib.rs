//! End-to-end harness for gpuspot: starts a real coordinator and real agents (simulated
//! GPUs, real workloads) on loopback, drives them through the HTTP API and the guest
//! metadata socket, and cleans every process up even when a test panics.
//!
//! A scenario: `let c = gpuspot_e2e::cluster!(); let a = c.agent(&Cluster::seed_profile("host-a"));`
//! then `c.api.create(&request(...))` and `c.wait_state(id, "running")`.

pub mod api;
pub mod billing;
pub mod browser;
pub mod cli;
pub mod cluster;
pub mod coordinator;
pub mod deploy;
pub mod events;
pub mod exec;
pub mod guest_limits;
pub mod guests;
pub mod join;
pub mod load;
pub mod market;
pub mod metadata;
pub mod mounts;
pub mod peer;
pub mod podman;
pub mod postgres;
pub mod process;
pub mod smtp;
pub mod values;
pub mod wait;
pub mod walkthrough;

pub use api::{Api, assert_error, request, s, sh};
pub use cluster::{Agent, Binaries, Cluster, SOON};
pub use coordinator::{Coordinator, TEST_CONFIG, config_with_timers};
pub use metadata::unix_get;
pub use process::{is_alive, kill_tree};
pub use wait::{holds, wait_until};
