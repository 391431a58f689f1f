//! An instance as the API shows it, and the vocabulary of what it is asked for: billing,
//! GPUs, sizes, snapshots, readiness, its states and why it ended.

use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An instance as it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    #[schema(value_type = String)]
    pub id: InstanceId,
    pub name: String,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub state: InstanceState,
    /// Why it waits or why it ended.
    pub reason: Option<String>,
    #[schema(value_type = Option<String>)]
    pub host_id: Option<HostId>,
    pub gpu_uuids: Vec<String>,
    pub gpu_model: Option<String>,
    pub gpu: GpuAsk,
    pub cpu_cores: Option<u32>,
    pub memory_gib: Option<u64>,
    pub billing: Billing,
    /// Decimal string per hour.
    #[schema(value_type = Option<String>)]
    pub price: Option<Money>,
    pub hold_until: Option<DateTime<Utc>>,
    pub termination_time: Option<DateTime<Utc>>,
    pub termination_reason: Option<EndReason>,
    pub exit_code: Option<i32>,
    #[schema(value_type = Option<String>)]
    pub deployment_id: Option<DeploymentId>,
    pub spec_index: Option<u32>,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub snapshot: SnapshotOptions,
    pub image: Option<String>,
    pub data_disk_gib: u64,
    pub on_unavailable: OnUnavailable,
    pub ports: Vec<u16>,
    /// The host ports `ports` are published on, in the same order, once placed.
    pub host_ports: Vec<u16>,
    pub readiness: Option<Readiness>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The `ssh` command line that reaches it, when the SSH door is on.
    pub ssh: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Queued,
    Scheduled,
    Running,
    TerminationScheduled,
    Stopping,
    Terminated,
    /// Ended without ever running, e.g. `image_pull_failed: …`.
    Failed,
}

vocabulary!(InstanceState {
    Queued => "queued",
    Scheduled => "scheduled",
    Running => "running",
    TerminationScheduled => "termination_scheduled",
    Stopping => "stopping",
    Terminated => "terminated",
    Failed => "failed",
});

impl InstanceState {
    /// `terminated` or `failed`: nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, InstanceState::Terminated | InstanceState::Failed)
    }
}

/// Why an instance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    User,
    Exited,
    ReclaimedPrice,
    ReclaimedCapacity,
    Overdue,
    HostLost,
    /// The operator drained the host.
    HostMaintenance,
    Failed,
    /// Its owner (or the admin) rehearsed an interruption.
    Drill,
    /// Its GPU failed.
    GpuFault,
}

vocabulary!(EndReason {
    User => "user",
    Exited => "exited",
    ReclaimedPrice => "reclaimed_price",
    ReclaimedCapacity => "reclaimed_capacity",
    Overdue => "overdue",
    HostLost => "host_lost",
    HostMaintenance => "host_maintenance",
    Failed => "failed",
    Drill => "drill",
    GpuFault => "gpu_fault",
});

/// `{"mode":"regular"}` or `{"mode":"spot","max_price":"1.20"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Billing {
    Regular,
    Spot {
        /// The spot bid per GPU-hour.
        #[schema(value_type = String)]
        max_price: Money,
    },
}

impl Billing {
    /// `regular` or `spot`.
    pub fn mode(&self) -> &'static str {
        match self {
            Billing::Regular => "regular",
            Billing::Spot { .. } => "spot",
        }
    }

    pub fn bid(&self) -> Option<Money> {
        match self {
            Billing::Regular => None,
            Billing::Spot { max_price } => Some(*max_price),
        }
    }
}

/// The GPUs asked for: `count` of the first of `models` that has them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GpuAsk {
    pub models: Vec<String>,
    pub count: u32,
}

/// A size bound; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotOptions {
    #[serde(default)]
    pub enabled: bool,
    /// Restore this snapshot before the command starts (default: the latest of the
    /// instance's deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
}

/// `readiness`: the agent GETs `http_path` on the first port every `interval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "/healthz")]
    pub http_path: String,
    /// A duration such as `5s` (answers always carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `queue`: wait for capacity; `fail`: end `failed` with `out_of_stock: …` when the first
/// placement attempt finds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    #[default]
    Queue,
    Fail,
}

vocabulary!(OnUnavailable { Queue => "queue", Fail => "fail" });
