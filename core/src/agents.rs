//! What hosts and their agents say: a host joining, connecting (with what it still runs),
//! its heartbeats, reports on workloads, going quiet and getting lost. Each is turned into
//! events and lifecycle transitions of the instances concerned.

use super::cluster::Cluster;
use super::events::{EventData, EventKind, payloads};
use super::instance::Instance;
use super::instance::lifecycle::{Ending, Run};
use super::model::{EndReason, InstanceState};
use super::registry::Host;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{
    Assignment, CoordinatorMessage, GpuStatus, GuestRuntime, InstanceReport, WorkloadState,
};
use gpuspot_common::{FailureKind, HostId, HostInventory, InstanceId, StopReason};

/// What a hello says about its host.
pub struct Hello<'a> {
    pub inventory: &'a HostInventory,
    pub agent_version: &'a str,
    pub runtimes: &'a [GuestRuntime],
    /// Where its guests listen; None keeps what the host had.
    pub network: Option<super::registry::HostNetwork>,
}

/// A host that a join token let in (docs/contracts.md#tokens).
#[derive(Clone, Debug)]
pub struct Joined {
    pub host_id: HostId,
    /// The hostname the joining agent gave.
    pub hostname: String,
    /// The id of the token it presented (`jt-…`), as `token list` shows it.
    pub token_id: String,
    /// Where it joined from, as the coordinator saw it.
    pub address: String,
}

impl Cluster {
    /// A host joined: only the operator's events tell of it (it has no account), with the
    /// token that let it in. The host itself is registered at its first hello.
    pub fn host_joined(&mut self, joined: &Joined, now: DateTime<Utc>) {
        let data = EventData::HostJoined(payloads::HostJoined {
            address: joined.address.clone(),
            hostname: joined.hostname.clone(),
            token_id: joined.token_id.clone(),
        });
        self.event(now, EventKind::HostJoined, None, Some(&joined.host_id), data);
    }

    /// A hello on an authenticated link: the host (re)joins with the runtimes it offers,
    /// its reports are applied and it is told its complete desired state.
    pub fn host_connected(
        &mut self,
        host_id: &HostId,
        inventory: &HostInventory,
        agent_version: &str,
        runtimes: &[GuestRuntime],
        reports: &[InstanceReport],
        now: DateTime<Utc>,
    ) {
        let hello = Hello { inventory, agent_version, runtimes, network: None };
        self.host_said_hello(host_id, hello, reports, now);
    }

    /// [`Cluster::host_connected`] with where the host's guests listen, taken before
    /// anything is placed on it (docs/contracts.md#serving).
    pub fn host_said_hello(
        &mut self,
        host_id: &HostId,
        hello: Hello<'_>,
        reports: &[InstanceReport],
        now: DateTime<Utc>,
    ) {
        let vanished = self.join(host_id, &hello, now);
        for id in vanished {
            let detail = "its GPU is no longer reported by the host".to_owned();
            self.finish(&id, EndReason::Failed, Some(detail), now);
        }
        for report in reports {
            self.apply_report(host_id, report, now);
        }
        self.forget_unreported(host_id, reports, now);
        let desired = self.desired_on(host_id);
        let heartbeat_interval_ms = self.timers.heartbeat.as_millis() as u64;
        let welcome = CoordinatorMessage::Welcome {
            host_id: host_id.clone(),
            heartbeat_interval_ms,
            desired,
        };
        self.send(host_id, welcome);
        self.place_queued(now);
        self.settle(now);
    }

    /// Registers or refreshes the host; returns the instances whose GPUs it lost. Ports
    /// already given out stay as they are when the host's range changes.
    fn join(&mut self, host_id: &HostId, hello: &Hello<'_>, now: DateTime<Utc>) -> Vec<InstanceId> {
        let (inventory, agent_version, runtimes) =
            (hello.inventory, hello.agent_version, hello.runtimes);
        let vanished = match self.registry.get_mut(host_id) {
            Some(host) => {
                let vanished = host.refresh_inventory(inventory, agent_version);
                host.connect(now);
                host.set_runtimes(runtimes);
                vanished
            }
            None => {
                let mut host = Host::new(host_id.clone(), inventory, agent_version, now);
                host.set_runtimes(runtimes);
                self.registry.insert(host);
                Vec::new()
            }
        };
        if let Some(network) = &hello.network
            && let Some(host) = self.registry.get_mut(host_id)
            && host.network != *network
        {
            host.network = network.clone();
            self.routes_changed = true;
        }
        self.touch_host(host_id);
        let models = inventory.gpus.iter().map(|g| g.model.as_str());
        self.pool_index.learn(&self.pools, models);
        let runtimes = self.registry.get(host_id).map(|h| h.runtimes.clone()).unwrap_or_default();
        let data = EventData::HostConnected(payloads::HostConnected {
            hostname: inventory.hostname.clone(),
            runtimes,
        });
        self.event(now, EventKind::HostConnected, None, Some(host_id), data);
        vanished
    }

    /// Instances the agent should be running but does not report were lost with it (an
    /// agent restart); instances it was told to stop are simply gone.
    fn forget_unreported(
        &mut self,
        host_id: &HostId,
        reports: &[InstanceReport],
        now: DateTime<Utc>,
    ) {
        let unreported: Vec<(InstanceId, InstanceState, Option<EndReason>)> = self
            .held_on(host_id)
            .into_iter()
            .filter(|i| !reports.iter().any(|r| r.instance_id == i.id))
            .map(|i| (i.id.clone(), i.state(), i.termination_reason()))
            .collect();
        for (id, state, reason) in unreported {
            match state {
                InstanceState::Running | InstanceState::TerminationScheduled => {
                    let detail = "the agent no longer runs the workload".to_owned();
                    self.finish(&id, EndReason::Failed, Some(detail), now)
                }
                InstanceState::Stopping => {
                    self.finish(&id, reason.unwrap_or(EndReason::User), None, now)
                }
                _ => {}
            }
        }
    }

    /// The instances holding the host's units: O(units), not a walk over every instance.
    pub(super) fn held_on(&self, host_id: &HostId) -> Vec<&Instance> {
        let Some(host) = self.registry.get(host_id) else {
            return Vec::new();
        };
        let mut ids: Vec<&InstanceId> =
            host.units.iter().filter_map(|s| s.instance.as_ref()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.instances.get(id))
            .filter(|i| i.host_id() == Some(host_id) && i.state().holds_units())
            .collect()
    }

    fn desired_on(&self, host_id: &HostId) -> Vec<Assignment> {
        self.held_on(host_id)
            .into_iter()
            .filter(|i| i.state() != InstanceState::Stopping)
            .filter_map(|i| self.assignment(&i.id))
            .collect()
    }

    pub fn heartbeat(&mut self, host_id: &HostId, gpus: &[GpuStatus], now: DateTime<Utc>) {
        let Some(host) = self.registry.get_mut(host_id) else {
            return;
        };
        host.last_seen = now;
        if host.apply_gpu_status(gpus) {
            self.touch_host(host_id);
            let data = EventData::HostHealth(payloads::HostHealth {
                gpus: gpus.iter().map(health).collect(),
            });
            self.event(now, EventKind::HostHealthChanged, None, Some(host_id), data);
            self.place_queued(now);
            self.settle(now);
        }
    }

    pub fn instance_update(
        &mut self,
        host_id: &HostId,
        report: &InstanceReport,
        now: DateTime<Utc>,
    ) {
        if let Some(host) = self.registry.get_mut(host_id) {
            host.last_seen = now;
        }
        self.apply_report(host_id, report, now);
        self.settle(now);
    }

    fn apply_report(&mut self, host_id: &HostId, report: &InstanceReport, now: DateTime<Utc>) {
        let id = &report.instance_id;
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        if instance.host_id() != Some(host_id) || instance.is_terminated() {
            if !report.state.is_final() {
                // Running somewhere it should not (replaced after a loss, or deleted).
                self.send_stop(host_id, id, StopReason::NotDesired);
            }
            return;
        }
        let (state, pending) = (instance.state(), instance.termination_reason());
        match &report.state {
            WorkloadState::Running => self.mark_running(id, now),
            WorkloadState::Exited { code } if state != InstanceState::Stopping => {
                let detail =
                    code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("code {c}"));
                let text = format!("{}: {detail}", EndReason::Exited.as_str());
                let ending = Ending::new(InstanceState::Terminated, EndReason::Exited, text, now);
                self.end(id, ending.with_exit_code(*code))
            }
            WorkloadState::Exited { .. } | WorkloadState::Stopped => {
                self.finish(id, pending.unwrap_or(EndReason::User), None, now)
            }
            // A request that never ran (docs/contracts.md#failures-and-quotas): `failed`, with the
            // agent's reason.
            WorkloadState::Failed(failure) if failure.kind == FailureKind::ImagePull => {
                self.fail(id, failure.to_string(), now)
            }
            WorkloadState::Failed(failure) => {
                self.finish(id, EndReason::Failed, Some(failure.to_string()), now)
            }
        }
    }

    /// The agent runs it: its run, its meter and (for spot) its hold start now.
    fn mark_running(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        let Some(instance) = self.instances.get(id) else { return };
        let hold = chrono::Duration::from_std(self.timers.hold_period).ok();
        let hold_until = instance.request.billing.bid().and(hold).map(|d| now + d);
        if self
            .transition(id, now, |lifecycle| lifecycle.start(Run { started_at: now, hold_until }))
        {
            self.instances.update(id, |i| i.meter.metered_until = Some(now));
        }
    }

    pub fn host_disconnected(&mut self, host_id: &HostId, now: DateTime<Utc>) {
        let Some(host) = self.registry.get_mut(host_id) else {
            return;
        };
        if host.disconnect().is_ok() {
            self.touch_host(host_id);
            self.event(now, EventKind::HostDisconnected, None, Some(host_id), EventData::default());
        }
    }

    /// Hosts silent past `host_lost_after` (or, restored ones, past the restart grace)
    /// are lost with their instances.
    pub(super) fn lose_silent_hosts(&mut self, now: DateTime<Utc>) {
        let lost_after = chrono::Duration::from_std(self.timers.host_lost_after)
            .unwrap_or(chrono::Duration::MAX);
        let Some(threshold) = now.checked_sub_signed(lost_after) else { return };
        let in_grace = |h: &Host| {
            self.restart_grace
                .is_some_and(|(restored, until)| h.last_seen <= restored && now < until)
        };
        let silent: Vec<HostId> = self
            .registry
            .silent_before(threshold)
            .into_iter()
            .filter(|id| self.registry.get(id).is_some_and(|h| !in_grace(h)))
            .collect();
        for host_id in silent {
            self.lose_host(&host_id, now);
        }
    }

    fn lose_host(&mut self, host_id: &HostId, now: DateTime<Utc>) {
        if let Some(host) = self.registry.get_mut(host_id)
            && let Err(wrong) = host.lose()
        {
            tracing::trace!(%host_id, %wrong, "transition not taken");
            return;
        }
        self.touch_host(host_id);
        self.event(now, EventKind::HostLost, None, Some(host_id), EventData::default());
        let on_host: Vec<InstanceId> = self.held_on(host_id).iter().map(|i| i.id.clone()).collect();
        for id in on_host {
            self.finish(&id, EndReason::HostLost, None, now);
        }
    }
}

/// A GPU's health as `host_health_changed` tells it.
fn health(gpu: &GpuStatus) -> payloads::GpuHealth {
    payloads::GpuHealth {
        healthy: gpu.healthy,
        memory_used_mib: gpu.memory_used_mib,
        temperature_celsius: gpu.temperature_celsius,
        utilization_percent: gpu.utilization_percent,
        uuid: gpu.uuid.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment_tests::{cluster, t};

    #[test]
    fn a_join_is_the_operators_event_with_its_token_and_the_host_comes_at_its_hello() {
        let mut c = cluster(&[]);
        c.take_changes();
        let joined = Joined {
            host_id: HostId::from("h-new"),
            hostname: "gpu-7".into(),
            token_id: "jt-0123456789ab".into(),
            address: "10.0.0.7:4433".into(),
        };
        c.host_joined(&joined, t(1));
        let changes = c.take_changes();
        let event = changes.events.iter().find(|e| e.kind == EventKind::HostJoined);
        let event = event.expect("a host_joined event");
        assert_eq!(event.host_id.as_ref(), Some(&joined.host_id));
        assert_eq!(event.account_id, None, "no account's stream shows it");
        let data = serde_json::json!({
            "hostname": "gpu-7", "token_id": "jt-0123456789ab", "address": "10.0.0.7:4433",
        });
        assert_eq!(serde_json::to_value(&event.data).unwrap(), data);
        assert!(c.registry().get(&joined.host_id).is_none());
    }
}
