//! What the coordinator asks a host to run and what the host says about it: assignments,
//! guest metadata, ports and probes, workload states and GPU health.

use crate::vocab::{BillingMode, EndReason, Failure};
use crate::{DeploymentId, HostId, InstanceId, Money};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an agent must run for one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub instance_id: InstanceId,
    pub gpu_uuids: Vec<String>,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub metadata: GuestMetadata,
    /// How many bytes of output the coordinator already holds: resume from here.
    pub log_offset: u64,
    pub kill_timeout_ms: u64,
    /// Snapshots of the data dir (docs/contracts.md#snapshots); None when disabled.
    pub snapshot: Option<SnapshotPlan>,
    /// Run in an OCI container from this image (docs/contracts.md#guests); `None`: a process guest.
    pub image: Option<String>,
    /// Size limit of the data dir, GiB (seed 004's 50 GB data disk).
    pub data_disk_gib: u64,
    /// Host ports given to this instance (docs/contracts.md#serving); the first is `PORT`.
    pub ports: Vec<PortMapping>,
    pub readiness: Option<ReadinessProbe>,
}

/// The ways a host can run a guest (docs/contracts.md#guests), as `GET /v1/hosts` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestRuntime {
    /// A process under its own uid (no `image`).
    Process,
    /// An OCI container through the host's engine.
    Container,
}

/// Where a host's guests listen: the host ports the coordinator may hand out (inclusive)
/// and the address others reach them at (None: the address the coordinator sees).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    pub ports: (u16, u16),
    pub address: Option<String>,
}

/// One published port: `host` on the host, `guest` inside a container (a process guest
/// listens on the host port itself, named by `PORT`, and has `guest: None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host: u16,
    pub guest: Option<u16>,
}

/// An HTTP readiness probe the agent runs against the instance's first port: ready while
/// `GET http_path` answers 2xx or 3xx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessProbe {
    pub http_path: String,
    pub interval_ms: u64,
}

/// What to do with an instance's data dir: restore one before the command starts, and/or
/// save one when the instance stops (for any reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    pub save: bool,
    pub restore: Option<SnapshotRef>,
    /// Largest packed snapshot accepted, in bytes.
    pub max_bytes: u64,
}

/// A stored snapshot: `<id>.tar.zst` in the coordinator's snapshot store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
    /// sha256 of the packed file, hex.
    pub sha256: String,
    pub size: u64,
}

/// What the guest sees on its metadata socket (docs/contracts.md#guest-socket). `None` answers 404.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestMetadata {
    pub instance_id: InstanceId,
    pub host_id: HostId,
    pub gpu_uuids: Vec<String>,
    pub spot_termination_time: Option<DateTime<Utc>>,
    pub termination_reason: Option<EndReason>,
    pub hold_until: Option<DateTime<Utc>>,
    pub billing_mode: Option<BillingMode>,
    pub bid: Option<Money>,
    pub price: Option<Money>,
    pub deployment_id: Option<DeploymentId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub instance_id: InstanceId,
    pub state: WorkloadState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadState {
    Running,
    /// The command ended by itself. `code` is None when a signal ended it.
    Exited {
        code: Option<i32>,
    },
    /// Stopped on the coordinator's order.
    Stopped,
    /// Could not be started, ended in a failure, or was lost: how, and the agent's sentence.
    Failed(Failure),
}

impl WorkloadState {
    pub fn is_final(&self) -> bool {
        !matches!(self, WorkloadState::Running)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuStatus {
    pub uuid: String,
    pub healthy: bool,
    pub utilization_percent: Option<u32>,
    /// Memory in use, MiB (NVML; None on simulated hosts).
    pub memory_used_mib: Option<u64>,
    pub temperature_celsius: Option<u32>,
}
