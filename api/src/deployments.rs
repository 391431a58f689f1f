//! A deployment as the API shows it: its mode and counts, ordered specs, template,
//! scaling, state, instances; and where its instances serve.

use crate::instances::{Billing, GpuAsk, Instance, Range, Readiness, SnapshotOptions};
use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A deployment and its instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    pub name: String,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub mode: Mode,
    pub replicas: u32,
    pub completions: u32,
    pub parallelism: u32,
    pub retry_limit: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub restarts: u32,
    pub state: DeploymentState,
    pub reason: Option<String>,
    pub specs: Vec<Spec>,
    pub template: Template,
    pub created_at: DateTime<Utc>,
    pub autoscaling: Option<Autoscaling>,
    pub schedule: Vec<ScheduledMinimum>,
    pub instances: Vec<Instance>,
    /// After a change: how many instances were moved to new specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Keep `replicas` running; replace what exits, is lost or gets a notice.
    Replicaset,
    /// Run until `completions` successful exits, `parallelism` at a time.
    Job,
    /// A job of one: its lifecycle follows its command.
    Container,
}

vocabulary!(Mode { Replicaset => "replicaset", Job => "job", Container => "container" });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Waiting,
    Running,
    Completed,
    Failed,
    Deleted,
}

vocabulary!(DeploymentState {
    Waiting => "waiting",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
    Deleted => "deleted",
});

impl DeploymentState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Completed | DeploymentState::Failed | DeploymentState::Deleted
        )
    }
}

/// One of a deployment's ordered specs: where and how its instances may run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Spec {
    pub gpu: GpuAsk,
    pub cpu_cores: Range,
    pub memory_gib: Range,
    pub billing: Billing,
}

/// What a deployment's instances run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub snapshot: SnapshotOptions,
    pub image: Option<String>,
    pub data_disk_gib: u64,
    pub ports: Vec<u16>,
    pub readiness: Option<Readiness>,
}

/// A replica set's scaling on load, within `min_replicas..=max_replicas`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Autoscaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rps_per_replica: Option<f64>,
    /// Percent, 1-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_gpu_utilization: Option<u32>,
    /// A duration such as `5m`.
    pub scale_in_delay: String,
}

/// One entry of `schedule`: from each time `cron` names, at least `min_replicas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduledMinimum {
    /// Five fields (minute first) or six (seconds first), UTC.
    pub cron: String,
    pub min_replicas: u32,
}

/// Where a deployment's instance serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    #[schema(value_type = String)]
    pub instance_id: InstanceId,
    #[schema(value_type = Option<String>)]
    pub host_id: Option<HostId>,
    pub hostname: Option<String>,
    /// `HOST:PORT` of its first port.
    pub address: Option<String>,
    pub ready: bool,
    pub draining: bool,
    pub gpu_uuids: Vec<String>,
    pub spec_index: Option<u32>,
    pub billing: Billing,
    pub started_at: Option<DateTime<Utc>>,
}
