//! Deployments as users see them (DESIGN §7, seeds 002 and 004): a mode (ReplicaSet, Job,
//! Container), an ordered list of specs (e.g. spot H100, spot A100, regular H100) and a
//! template; each new instance takes the first spec that can be placed now.

use super::crash_loop::CrashLoop;
use super::model::{Billing, GpuRequest, Instance, InstanceRequest, Range, SnapshotOptions};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, InstanceId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Keep `replicas` running; replace what exits, is lost or gets a notice.
    Replicaset,
    /// Run until `completions` successful exits, `parallelism` at a time.
    Job,
    /// A job of one: its lifecycle follows its command (seed 004).
    Container,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub gpu: GpuRequest,
    #[serde(default)]
    pub cpu_cores: Range,
    #[serde(default)]
    pub memory_gib: Range,
    pub billing: Billing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub snapshot: SnapshotOptions,
    /// Each instance runs in a container from this image (DESIGN §14).
    #[serde(default)]
    pub image: Option<String>,
    /// Each instance's data disk, GiB.
    #[serde(default = "super::guest::default_data_disk_gib")]
    pub data_disk_gib: u64,
    /// Container ports each instance publishes (DESIGN §18).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Each instance's readiness probe (DESIGN §18).
    #[serde(default)]
    pub readiness: Option<super::serving::Readiness>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Waiting,
    Running,
    Completed,
    Failed,
    Deleted,
}

impl DeploymentState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Completed | DeploymentState::Failed | DeploymentState::Deleted
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub account_id: AccountId,
    pub name: String,
    pub mode: Mode,
    pub replicas: u32,
    pub completions: u32,
    pub parallelism: u32,
    pub retry_limit: u32,
    pub specs: Vec<DeploymentSpec>,
    pub template: Template,
    pub state: DeploymentState,
    pub reason: Option<String>,
    pub succeeded: u32,
    /// Job: failed runs; replica set: crashed runs.
    pub failed: u32,
    /// Replica set: replicas started to replace crashed ones.
    #[serde(default)]
    pub restarts: u32,
    /// Replica set: the crash-loop backoff's state.
    #[serde(default)]
    pub crash_loop: CrashLoop,
    pub created_at: DateTime<Utc>,
    pub seq: u64,
    /// Instances this deployment stopped itself (scaled down, replaced, finalized) and
    /// that have not ended yet: their end is not a user's stop.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub stopped_by_deployment: BTreeSet<InstanceId>,
    /// Replica set: scaling on load (DESIGN §18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<super::autoscale::Autoscaling>,
    /// Replica set: scheduled minimums (DESIGN §18).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<super::autoscale::ScheduledMinimum>,
    #[serde(default)]
    pub scaling: super::autoscale::ScalingState,
}

impl Deployment {
    /// The instance request for spec `index`.
    pub fn request(&self, index: usize) -> InstanceRequest {
        let spec = &self.specs[index];
        InstanceRequest {
            name: format!("{}-{}", self.name, self.seq),
            gpu: spec.gpu.clone(),
            cpu_cores: spec.cpu_cores,
            memory_gib: spec.memory_gib,
            billing: spec.billing.clone(),
            command: self.template.command.clone(),
            env: self.template.env.clone(),
            snapshot: self.template.snapshot.clone(),
            image: self.template.image.clone(),
            data_disk_gib: self.template.data_disk_gib,
            on_unavailable: super::model::OnUnavailable::Queue,
            ports: self.template.ports.clone(),
            readiness: self.template.readiness.clone(),
        }
    }

    /// Whether an instance still matches the deployment's current conditions.
    pub fn matches(&self, instance: &Instance) -> bool {
        let r = &instance.request;
        r.command == self.template.command
            && r.env == self.template.env
            && r.snapshot == self.template.snapshot
            && r.image == self.template.image
            && r.data_disk_gib == self.template.data_disk_gib
            && r.ports == self.template.ports
            && r.readiness == self.template.readiness
            && self.specs.iter().any(|s| {
                s.gpu == r.gpu
                    && s.cpu_cores == r.cpu_cores
                    && s.memory_gib == r.memory_gib
                    && s.billing == r.billing
            })
    }

    /// How many runs should be active now (queued, placed or running).
    pub fn wanted_active(&self) -> u32 {
        match self.mode {
            Mode::Replicaset => self.replicas,
            Mode::Job | Mode::Container => {
                self.parallelism.min(self.completions.saturating_sub(self.succeeded))
            }
        }
    }
}

/// All deployments, those changed since the last commit, and the crashed replica sets
/// waiting to replace replicas.
#[derive(Debug, Default)]
pub struct Deployments {
    pub(super) by_id: std::collections::BTreeMap<gpuspot_common::DeploymentId, Deployment>,
    pub(super) dirty: std::collections::BTreeSet<gpuspot_common::DeploymentId>,
    pub(super) crash_restarts: super::crash_loop::CrashRestarts,
}

impl Deployments {
    /// A deployment a previous run committed, with its crash-loop wait.
    pub fn restore(&mut self, d: Deployment) {
        self.crash_restarts.restored(&d);
        self.by_id.insert(d.id.clone(), d);
    }

    pub fn get(&self, id: &gpuspot_common::DeploymentId) -> Option<&Deployment> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.by_id.values()
    }

    pub fn insert(&mut self, d: Deployment) {
        self.dirty.insert(d.id.clone());
        self.by_id.insert(d.id.clone(), d);
    }

    /// Changes a deployment (stored with the next commit).
    pub fn update<R>(
        &mut self,
        id: &gpuspot_common::DeploymentId,
        change: impl FnOnce(&mut Deployment) -> R,
    ) -> Option<R> {
        let d = self.by_id.get_mut(id)?;
        self.dirty.insert(id.clone());
        Some(change(d))
    }

    pub fn take_dirty(&mut self) -> Vec<Deployment> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.by_id.get(&id).cloned())
            .collect()
    }
}
