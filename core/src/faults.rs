//! GPU faults (docs/architecture.md, "Faults and drills"). An agent reports a GPU that
//! failed at once (a critical Xid, a double-bit ECC error, a failed health query); its unit
//! leaves the market and stays off it, whatever later heartbeats say, until the operator
//! clears it. The instance on it is charged up to the fault and nothing after, and gets a
//! termination with reason `gpu_fault` at now + `[timers] fault_notice`, so its deployment
//! replaces it on a healthy unit. Simulated hosts take injected faults, which their agent
//! reports as a real one.

use super::cluster::Cluster;
use super::events::{EventData, EventKind, payloads};
use super::instance::Notice;
use super::model::{EndReason, InstanceState};
use super::registry::{HostState, UnitSlot};
use chrono::{DateTime, Utc};
use gpuspot_common::faults::{FaultCause, FaultCommand, FaultNote, GpuFault, is_critical_xid};
use gpuspot_common::protocol::CoordinatorMessage;
use gpuspot_common::{HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A host's failed GPUs, and whether faults may be injected into it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFaults {
    /// By GPU UUID, until the operator clears them.
    #[serde(default)]
    pub failed: BTreeMap<String, FailedGpu>,
    /// Its GPUs are simulated, as its agent says after each hello (not stored).
    #[serde(skip)]
    pub injectable: bool,
}

/// When and why a GPU failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedGpu {
    pub at: DateTime<Utc>,
    pub cause: FaultCause,
}

impl HostFaults {
    pub fn has_failed(&self, uuid: &str) -> bool {
        self.failed.contains_key(uuid)
    }

    /// Failed GPUs stay unhealthy whatever a fresh inventory says.
    pub fn keep_unhealthy(&self, units: &mut [UnitSlot]) {
        for slot in units.iter_mut().filter(|s| self.has_failed(&s.unit.gpu.uuid)) {
            slot.unit.gpu.healthy = false;
        }
    }
}

/// Why an operator's fault request was refused; nothing changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("no host {0}")]
    UnknownHost(HostId),
    #[error("host {host} has no GPU {index}")]
    UnknownGpu { host: String, index: u32 },
    #[error("host {0} has real GPUs: faults are injected into simulated GPUs only")]
    RealGpus(String),
    #[error("host {0} is not connected: its agent cannot take the fault now")]
    NotConnected(String),
    #[error("xid: {0} is an application error (a program's fault), not a GPU fault")]
    NotCritical(u32),
}

impl Cluster {
    /// What an agent said about faults.
    pub fn fault_note(&mut self, host_id: &HostId, note: &FaultNote, now: DateTime<Utc>) {
        match note {
            FaultNote::Source { injectable } => {
                if let Some(host) = self.registry.get_mut(host_id) {
                    host.faults.injectable = *injectable;
                }
            }
            FaultNote::Fault(fault) => self.gpu_failed(host_id, fault, now),
        }
    }

    /// The GPU leaves the market; the instance on it is noticed. Once per fault: a GPU
    /// already failed and not cleared changes nothing.
    fn gpu_failed(&mut self, host_id: &HostId, fault: &GpuFault, now: DateTime<Utc>) {
        let Some(host) = self.registry.get_mut(host_id) else { return };
        if host.faults.has_failed(&fault.uuid) {
            return;
        }
        let Some(slot) = host.units.iter_mut().find(|s| s.unit.gpu.uuid == fault.uuid) else {
            tracing::warn!(%host_id, uuid = %fault.uuid, "fault reported for an unknown GPU");
            return;
        };
        slot.unit.gpu.healthy = false;
        let holder = slot.instance.clone();
        let failed = FailedGpu { at: now, cause: fault.cause.clone() };
        host.faults.failed.insert(fault.uuid.clone(), failed);
        let hostname = host.hostname.clone();
        self.touch_host(host_id);
        let data = EventData::GpuFault(payloads::GpuFault {
            cause: fault.cause.describe(),
            gpu_index: fault.index,
            gpu_uuid: fault.uuid.clone(),
            hostname,
            xid: fault.cause.xid(),
        });
        self.event(now, EventKind::GpuFault, holder.as_ref(), Some(host_id), data);
        if let Some(id) = holder {
            self.fault_instance(&id, now);
        }
        self.place_queued(now);
        self.settle(now);
    }

    /// Charges the instance up to now and nothing after; it is noticed to end after
    /// `fault_notice` at the latest.
    fn fault_instance(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        let Some(state) = self.instances.get(id).map(|i| i.state()) else { return };
        if !state.holds_units() {
            return;
        }
        self.meter_instance(id, now, true);
        self.transition(id, now, |lifecycle| lifecycle.reprice(Money::ZERO));
        let notice = self.timers.fault_notice;
        match state {
            InstanceState::Scheduled | InstanceState::Running => {
                self.notice_in(id, EndReason::GpuFault, notice, now);
            }
            // Already noticed (a drill, a reclaim): it ends no later than a fault's notice,
            // and the market no longer prices it.
            InstanceState::TerminationScheduled => {
                let at = now + chrono::Duration::from_std(notice).unwrap_or(chrono::Duration::MAX);
                let notice = Notice { at, reason: EndReason::GpuFault };
                self.transition(id, now, |lifecycle| lifecycle.renotice(notice));
            }
            _ => {}
        }
    }

    /// Sends Xid `xid` to the agent of a simulated host, which reports it as a real fault.
    pub fn inject_fault(
        &mut self,
        host_id: &HostId,
        index: u32,
        xid: u32,
    ) -> Result<(), FaultError> {
        if !is_critical_xid(xid) {
            return Err(FaultError::NotCritical(xid));
        }
        let hostname = self.gpu_of(host_id, index)?;
        let host =
            self.registry.get(host_id).ok_or_else(|| FaultError::UnknownHost(host_id.clone()))?;
        if !host.faults.injectable {
            return Err(FaultError::RealGpus(hostname));
        }
        if host.state() != HostState::Connected {
            return Err(FaultError::NotConnected(hostname));
        }
        let command = FaultCommand::Inject { index, xid };
        self.send(host_id, CoordinatorMessage::Faults(command));
        Ok(())
    }

    /// The operator puts GPU `index` back: it is sold again once its agent reports it
    /// healthy (a simulated GPU is healthy again; a real one as NVML says).
    pub fn clear_gpu(
        &mut self,
        host_id: &HostId,
        index: u32,
        now: DateTime<Utc>,
    ) -> Result<(), FaultError> {
        let hostname = self.gpu_of(host_id, index)?;
        let Some(host) = self.registry.get_mut(host_id) else {
            return Err(FaultError::UnknownHost(host_id.clone()));
        };
        let Some(uuid) = host
            .units
            .iter()
            .map(|s| &s.unit.gpu)
            .find(|g| g.index == index)
            .map(|g| g.uuid.clone())
        else {
            return Err(FaultError::UnknownGpu { host: hostname, index });
        };
        let was = host.faults.failed.remove(&uuid);
        self.touch_host(host_id);
        let data = EventData::GpuCleared(payloads::GpuCleared {
            failed_at: was.as_ref().map(|f| f.at),
            gpu_index: index,
            gpu_uuid: uuid.clone(),
            hostname,
        });
        self.event(now, EventKind::GpuCleared, None, Some(host_id), data);
        self.send(host_id, CoordinatorMessage::Faults(FaultCommand::Clear { index }));
        self.settle(now);
        Ok(())
    }

    /// The hostname of `host_id` if it has GPU `index`.
    fn gpu_of(&self, host_id: &HostId, index: u32) -> Result<String, FaultError> {
        let host =
            self.registry.get(host_id).ok_or_else(|| FaultError::UnknownHost(host_id.clone()))?;
        if !host.units.iter().any(|s| s.unit.gpu.index == index) {
            return Err(FaultError::UnknownGpu { host: host.hostname.clone(), index });
        }
        Ok(host.hostname.clone())
    }
}
