//! A host of the fleet as the API shows it (admin only).

use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::{HostId, InstanceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A host with its units and GPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    #[schema(value_type = String)]
    pub id: HostId,
    pub hostname: String,
    pub state: HostState,
    pub agent_version: String,
    /// `process`, and `container` when the host has a container engine.
    #[schema(value_type = Vec<String>)]
    pub runtimes: Vec<GuestRuntime>,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    pub gpus: Vec<HostGpu>,
    pub unit: Option<HostUnit>,
    pub units_total: u32,
    pub units_healthy: u32,
    pub units_free: u32,
    pub joined_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The connection and the operator's maintenance, as one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Connected,
    Disconnected,
    Lost,
    Cordoned,
    Draining,
    Drained,
}

vocabulary!(HostState {
    Connected => "connected",
    Disconnected => "disconnected",
    Lost => "lost",
    Cordoned => "cordoned",
    Draining => "draining",
    Drained => "drained",
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostGpu {
    pub index: u32,
    pub uuid: String,
    pub model: String,
    pub memory_mib: u64,
    pub pci_bus_id: String,
    pub healthy: bool,
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    /// Set while the GPU is off the market for a fault, until the admin clears it.
    pub fault: Option<HostGpuFault>,
}

/// A GPU fault its agent reported (docs/architecture.md, "Faults and drills").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostGpuFault {
    pub at: DateTime<Utc>,
    /// e.g. `Xid 79`, `double-bit ECC error`, `health query failed: …`.
    pub cause: String,
    /// The Xid code, when an Xid (or double-bit ECC, Xid 48) reported it.
    pub xid: Option<u32>,
}

/// The size of one of the host's units (a GPU with its share of CPU and memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostUnit {
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

/// A runtime's name as the API writes it.
pub fn runtime_name(runtime: GuestRuntime) -> &'static str {
    match runtime {
        GuestRuntime::Process => "process",
        GuestRuntime::Container => "container",
    }
}
