//! The flat form of an instance that the store keeps (and older versions wrote): every
//! field side by side, as before the lifecycle became an enum. Reading one back rebuilds
//! the lifecycle and refuses a record whose fields contradict its state.

use super::Instance;
use super::Owner;
use super::lifecycle::{Ending, FIRST_WAIT, Lifecycle, Notice, Placement, Promise, Run};
use crate::billing::Meter;
use crate::model::{EndReason, InstanceRequest, InstanceState};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub account_id: AccountId,
    pub request: InstanceRequest,
    pub state: InstanceState,
    pub reason: Option<String>,
    pub host_id: Option<HostId>,
    pub gpu_uuids: Vec<String>,
    pub gpu_model: Option<String>,
    pub cpu_cores: Option<u32>,
    pub memory_gib: Option<u64>,
    pub price: Option<Money>,
    pub hold_until: Option<DateTime<Utc>>,
    pub termination_time: Option<DateTime<Utc>>,
    pub termination_reason: Option<EndReason>,
    pub exit_code: Option<i32>,
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub spec_index: Option<usize>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub seq: u64,
    #[serde(default)]
    pub meter: Meter,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<u16>,
    /// Queued only: the reclaimed units it is owed (docs/contracts.md#market).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise: Option<Promise>,
}

impl From<Instance> for InstanceRecord {
    fn from(i: Instance) -> Self {
        let placement = i.lifecycle.placement();
        let run = i.lifecycle.run();
        Self {
            state: i.state(),
            reason: i.reason().map(str::to_owned),
            host_id: placement.map(|p| p.host_id.clone()),
            gpu_uuids: placement.map(|p| p.gpu_uuids.clone()).unwrap_or_default(),
            gpu_model: placement.map(|p| p.gpu_model.clone()),
            cpu_cores: placement.map(|p| p.cpu_cores),
            memory_gib: placement.map(|p| p.memory_gib),
            price: placement.map(|p| p.price),
            host_ports: placement.map(|p| p.host_ports.clone()).unwrap_or_default(),
            promise: i.lifecycle.promise().cloned(),
            hold_until: run.and_then(|r| r.hold_until),
            termination_time: i.lifecycle.notice_at(),
            termination_reason: i.lifecycle.end_reason(),
            exit_code: i.exit_code(),
            deployment_id: i.owner.as_ref().map(|o| o.deployment_id.to_string()),
            spec_index: i.owner.as_ref().and_then(|o| o.spec_index),
            started_at: run.map(|r| r.started_at),
            ended_at: i.ended_at(),
            id: i.id,
            account_id: i.account_id,
            request: i.request,
            created_at: i.created_at,
            seq: i.seq,
            meter: i.meter,
        }
    }
}

/// A stored record whose fields contradict its state.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("instance {0} is {1} without a host")]
    NoHost(InstanceId, &'static str),
    #[error("instance {0} is noticed without a deadline and reason")]
    NoNotice(InstanceId),
}

impl TryFrom<InstanceRecord> for Instance {
    type Error = RecordError;

    fn try_from(r: InstanceRecord) -> Result<Self, RecordError> {
        let lifecycle = lifecycle_of(&r)?;
        let owner = r
            .deployment_id
            .clone()
            .map(|d| Owner { deployment_id: DeploymentId(d), spec_index: r.spec_index });
        Ok(Instance {
            id: r.id,
            account_id: r.account_id,
            request: r.request,
            created_at: r.created_at,
            seq: r.seq,
            meter: r.meter,
            owner,
            lifecycle,
        })
    }
}

fn placement_of(r: &InstanceRecord) -> Option<Placement> {
    Some(Placement {
        host_id: r.host_id.clone()?,
        gpu_uuids: r.gpu_uuids.clone(),
        gpu_model: r.gpu_model.clone().unwrap_or_default(),
        cpu_cores: r.cpu_cores.unwrap_or_default(),
        memory_gib: r.memory_gib.unwrap_or_default(),
        price: r.price.unwrap_or(Money::ZERO),
        host_ports: r.host_ports.clone(),
    })
}

fn lifecycle_of(r: &InstanceRecord) -> Result<Lifecycle, RecordError> {
    let run = r.started_at.map(|started_at| Run { started_at, hold_until: r.hold_until });
    let placed =
        || placement_of(r).ok_or_else(|| RecordError::NoHost(r.id.clone(), r.state.as_str()));
    Ok(match r.state {
        InstanceState::Queued => Lifecycle::Queued {
            waiting: r.reason.clone().unwrap_or_else(|| FIRST_WAIT.into()),
            promise: r.promise.clone(),
        },
        InstanceState::Scheduled => Lifecycle::Scheduled { placement: placed()? },
        // Older versions could mark an instance running without a start (a payment that
        // cancelled a notice before it ran): it is scheduled until its agent reports it.
        InstanceState::Running => match run {
            Some(run) => Lifecycle::Running { placement: placed()?, run },
            None => Lifecycle::Scheduled { placement: placed()? },
        },
        InstanceState::TerminationScheduled => {
            let (Some(at), Some(reason)) = (r.termination_time, r.termination_reason) else {
                return Err(RecordError::NoNotice(r.id.clone()));
            };
            Lifecycle::Noticed { placement: placed()?, run, notice: Notice { at, reason } }
        }
        InstanceState::Stopping => Lifecycle::Stopping {
            placement: placed()?,
            run,
            reason: r.termination_reason.unwrap_or(EndReason::User),
            notice_at: r.termination_time,
        },
        InstanceState::Terminated | InstanceState::Failed => {
            let reason = r.termination_reason.unwrap_or(EndReason::Failed);
            Lifecycle::Ended(Box::new(Ending {
                state: r.state,
                reason,
                text: r.reason.clone().unwrap_or_else(|| reason.as_str().to_owned()),
                exit_code: r.exit_code,
                at: r.ended_at.unwrap_or(r.created_at),
                placement: placement_of(r),
                run,
                notice_at: r.termination_time,
            }))
        }
    })
}
