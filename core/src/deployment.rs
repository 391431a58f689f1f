//! Deployments as users see them (docs/contracts.md#deployments, seeds 002 and 004): a mode
//! (ReplicaSet, Job, Container), an ordered list of specs (e.g. spot H100, spot A100, regular H100)
//! and a template; each new instance takes the first spec that can be placed now.

pub mod crash_loop;
mod progress;

use super::instance::Instance;
use super::instance::ended::{EndedIndex, EndedKey, Kept};
use super::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
use chrono::{DateTime, Utc};
use crash_loop::CrashLoop;
use gpuspot_common::{AccountId, DeploymentId, InstanceId};
pub use progress::WrongDeploymentState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// Each instance runs in a container from this image (docs/contracts.md#guests).
    #[serde(default)]
    pub image: Option<String>,
    /// Each instance's data disk, GiB.
    #[serde(default = "super::guest::default_data_disk_gib")]
    pub data_disk_gib: u64,
    /// Container ports each instance publishes (docs/contracts.md#serving).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Each instance's readiness probe (docs/contracts.md#serving).
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
    /// Every state (what `?state=` may name).
    pub const ALL: [DeploymentState; 5] = [
        DeploymentState::Waiting,
        DeploymentState::Running,
        DeploymentState::Completed,
        DeploymentState::Failed,
        DeploymentState::Deleted,
    ];

    /// The state's name in the API (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Waiting => "waiting",
            DeploymentState::Running => "running",
            DeploymentState::Completed => "completed",
            DeploymentState::Failed => "failed",
            DeploymentState::Deleted => "deleted",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Completed | DeploymentState::Failed | DeploymentState::Deleted
        )
    }
}

/// What a `PATCH` changes; an absent field stays as it is.
#[derive(Clone, Debug, Default)]
pub struct DeploymentChange {
    pub replicas: Option<u32>,
    pub specs: Option<Vec<DeploymentSpec>>,
    pub template: Option<Template>,
    /// `Some(None)` turns autoscaling off.
    pub autoscaling: Option<Option<super::autoscale::Autoscaling>>,
    /// `Some(vec![])` clears the schedule.
    pub schedule: Option<Vec<super::autoscale::ScheduledMinimum>>,
}

impl DeploymentChange {
    pub(crate) fn scaling(&self) -> bool {
        self.autoscaling.is_some() || self.schedule.is_some()
    }
}

/// A validated deployment request.
#[derive(Clone, Debug)]
pub struct NewDeployment {
    pub name: String,
    pub mode: Mode,
    pub replicas: u32,
    pub completions: u32,
    pub parallelism: u32,
    pub retry_limit: u32,
    pub specs: Vec<DeploymentSpec>,
    pub template: Template,
    pub autoscaling: Option<super::autoscale::Autoscaling>,
    pub schedule: Vec<super::autoscale::ScheduledMinimum>,
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
    /// Changed only through its transitions (`progress`).
    state: DeploymentState,
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
    /// Replica set: scaling on load (docs/contracts.md#serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<super::autoscale::Autoscaling>,
    /// Replica set: scheduled minimums (docs/contracts.md#serving).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<super::autoscale::ScheduledMinimum>,
    #[serde(default)]
    pub scaling: super::autoscale::ScalingState,
    /// When it became final with none of its instances still active: its retention runs
    /// from here (docs/contracts.md#limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
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
/// waiting to replace replicas; indexed by name (whatever its case) and, the final ones
/// whose instances have all ended, by end for retention. Every change goes through
/// [`Deployments::update`], which keeps both indexes in step.
#[derive(Debug, Default)]
pub struct Deployments {
    pub(super) by_id: BTreeMap<DeploymentId, Deployment>,
    pub(super) dirty: BTreeSet<DeploymentId>,
    pub(super) crash_restarts: crash_loop::CrashRestarts,
    by_name: HashMap<String, BTreeSet<DeploymentId>>,
    live: BTreeSet<DeploymentId>,
    ended: EndedIndex<DeploymentId>,
    forgotten: Vec<DeploymentId>,
}

/// What the indexes hold for a deployment: its name's key, whether it is live, and its
/// retention entry.
#[derive(PartialEq)]
struct Keys {
    name: String,
    live: bool,
    ended: Option<EndedKey>,
}

impl Keys {
    fn of(d: &Deployment) -> Self {
        let ended = d.ended_at.filter(|_| d.state().is_final()).map(|at| EndedKey {
            kept: Kept::Ended,
            at,
            account: d.account_id.clone(),
        });
        Self { name: d.name.to_ascii_lowercase(), live: !d.state().is_final(), ended }
    }
}

impl Deployments {
    /// A deployment a previous run committed, with its crash-loop wait.
    pub fn restore(&mut self, d: Deployment) {
        self.crash_restarts.restored(&d);
        self.index(&d.id, &Keys::of(&d));
        self.by_id.insert(d.id.clone(), d);
    }

    pub fn get(&self, id: &DeploymentId) -> Option<&Deployment> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.by_id.values()
    }

    /// The deployments not final yet, by id: what reconciles and routes look at, whatever
    /// the history kept.
    pub fn live(&self) -> impl Iterator<Item = &Deployment> {
        self.live.iter().filter_map(|id| self.by_id.get(id))
    }

    /// The deployments `name` names whatever its case, ended ones included.
    pub fn named(&self, name: &str) -> impl Iterator<Item = &Deployment> {
        let ids = self.by_name.get(&name.to_ascii_lowercase()).into_iter().flatten();
        ids.filter_map(|id| self.by_id.get(id))
    }

    /// Final deployments whose instances have all ended, in the order retention forgets them.
    pub fn ended(&self) -> &EndedIndex<DeploymentId> {
        &self.ended
    }

    pub fn insert(&mut self, d: Deployment) {
        self.dirty.insert(d.id.clone());
        self.restore(d);
    }

    /// Changes a deployment (stored with the next commit).
    pub fn update<R>(
        &mut self,
        id: &DeploymentId,
        change: impl FnOnce(&mut Deployment) -> R,
    ) -> Option<R> {
        let d = self.by_id.get_mut(id)?;
        let before = Keys::of(d);
        let result = change(d);
        let after = Keys::of(d);
        self.dirty.insert(id.clone());
        if before != after {
            self.unindex(id, &before);
            self.index(id, &after);
        }
        Some(result)
    }

    /// Removes a final deployment whose instances have all ended; its row goes with the
    /// next commit. None (and nothing changes) for any other.
    pub fn forget(&mut self, id: &DeploymentId) -> Option<Deployment> {
        let keys = self.by_id.get(id).map(Keys::of).filter(|k| k.ended.is_some())?;
        self.forget_crashes(id);
        self.unindex(id, &keys);
        self.dirty.remove(id);
        self.forgotten.push(id.clone());
        self.by_id.remove(id)
    }

    fn index(&mut self, id: &DeploymentId, keys: &Keys) {
        self.by_name.entry(keys.name.clone()).or_default().insert(id.clone());
        if keys.live {
            self.live.insert(id.clone());
        }
        if let Some(ended) = &keys.ended {
            self.ended.insert(id, ended);
        }
    }

    fn unindex(&mut self, id: &DeploymentId, keys: &Keys) {
        if let Some(ids) = self.by_name.get_mut(&keys.name) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_name.remove(&keys.name);
            }
        }
        self.live.remove(id);
        if let Some(ended) = &keys.ended {
            self.ended.remove(id, ended);
        }
    }

    pub fn take_dirty(&mut self) -> Vec<Deployment> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.by_id.get(&id).cloned())
            .collect()
    }

    /// Deployments retention forgot since the last call, for the commit.
    pub fn take_forgotten(&mut self) -> Vec<DeploymentId> {
        std::mem::take(&mut self.forgotten)
    }
}
