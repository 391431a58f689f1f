//! One instance: its request, owner and meter, and its [`Lifecycle`]. The lifecycle is
//! private; it changes only through the transitions in [`lifecycle`], which the
//! [`table::Instances`] applies so that its indexes follow. Stored and loaded in the flat
//! [`record::InstanceRecord`] form.
//!
//! - [`lifecycle`]: the states and their transitions; [`effects`]: what they ask for.
//! - [`table`]: all instances, with the queue, notice-deadline and owner indexes.

pub mod effects;
pub mod ended;
pub mod lifecycle;
pub mod record;
pub mod table;
#[cfg(test)]
mod tests;

use super::billing::Meter;
use super::model::{EndReason, InstanceRequest, InstanceState};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};
pub use lifecycle::{Lifecycle, Notice, Placement, Promise, Run};
use serde::{Deserialize, Serialize};

/// The deployment an instance belongs to, and which of its specs it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub deployment_id: DeploymentId,
    pub spec_index: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "record::InstanceRecord", try_from = "record::InstanceRecord")]
pub struct Instance {
    pub id: InstanceId,
    pub account_id: AccountId,
    pub request: InstanceRequest,
    pub created_at: DateTime<Utc>,
    /// Monotonic creation order: the queue is served oldest first.
    pub seq: u64,
    /// What this instance has cost so far, and what of it is charged.
    pub meter: Meter,
    pub owner: Option<Owner>,
    lifecycle: Lifecycle,
}

impl Instance {
    /// A new request, queued.
    pub fn new(
        id: InstanceId,
        account_id: AccountId,
        request: InstanceRequest,
        now: DateTime<Utc>,
        seq: u64,
    ) -> Self {
        Self {
            id,
            account_id,
            request,
            created_at: now,
            seq,
            meter: Meter::default(),
            owner: None,
            lifecycle: Lifecycle::Queued { waiting: lifecycle::FIRST_WAIT.into(), promise: None },
        }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// For the transitions (through the table, which keeps its indexes in step).
    pub(crate) fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    pub fn state(&self) -> InstanceState {
        self.lifecycle.state()
    }

    /// Whether it has ended, `terminated` or `failed`: both are final and hold nothing.
    pub fn is_terminated(&self) -> bool {
        self.state().is_final()
    }

    /// Why it waits (queued) or how it ended; a sentence for humans.
    pub fn reason(&self) -> Option<&str> {
        match &self.lifecycle {
            Lifecycle::Queued { waiting, .. } => Some(waiting),
            Lifecycle::Ended(ending) => Some(&ending.text),
            _ => None,
        }
    }

    /// The reclaimed units it is owed while queued (docs/contracts.md#market).
    pub fn promise(&self) -> Option<&Promise> {
        self.lifecycle.promise()
    }

    pub fn placement(&self) -> Option<&Placement> {
        self.lifecycle.placement()
    }

    pub fn host_id(&self) -> Option<&HostId> {
        self.placement().map(|p| &p.host_id)
    }

    pub fn gpu_uuids(&self) -> &[String] {
        self.placement().map_or(&[], |p| &p.gpu_uuids)
    }

    pub fn gpu_model(&self) -> Option<&str> {
        self.placement().map(|p| p.gpu_model.as_str())
    }

    pub fn cpu_cores(&self) -> Option<u32> {
        self.placement().map(|p| p.cpu_cores)
    }

    pub fn memory_gib(&self) -> Option<u64> {
        self.placement().map(|p| p.memory_gib)
    }

    /// What it pays per GPU-hour now (once placed).
    pub fn price(&self) -> Option<Money> {
        self.placement().map(|p| p.price)
    }

    pub fn hold_until(&self) -> Option<DateTime<Utc>> {
        self.lifecycle.run().and_then(|r| r.hold_until)
    }

    /// The deadline of its notice, from the notice on.
    pub fn termination_time(&self) -> Option<DateTime<Utc>> {
        self.lifecycle.notice_at()
    }

    /// Why it is noticed, being stopped or ended.
    pub fn termination_reason(&self) -> Option<EndReason> {
        self.lifecycle.end_reason()
    }

    pub fn exit_code(&self) -> Option<i32> {
        match &self.lifecycle {
            Lifecycle::Ended(ending) => ending.exit_code,
            _ => None,
        }
    }

    pub fn deployment_id(&self) -> Option<&DeploymentId> {
        self.owner.as_ref().map(|o| &o.deployment_id)
    }

    pub fn spec_index(&self) -> Option<usize> {
        self.owner.as_ref().and_then(|o| o.spec_index)
    }

    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.lifecycle.run().map(|r| r.started_at)
    }

    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        match &self.lifecycle {
            Lifecycle::Ended(ending) => Some(ending.at),
            _ => None,
        }
    }

    /// Noticed or stopping: on its way out.
    pub fn is_draining(&self) -> bool {
        matches!(self.state(), InstanceState::TerminationScheduled | InstanceState::Stopping)
    }

    /// A spot instance running past its hold: it may be reclaimed.
    pub fn reclaimable(&self, now: DateTime<Utc>) -> bool {
        self.state() == InstanceState::Running && self.hold_until().is_some_and(|h| h <= now)
    }
}
