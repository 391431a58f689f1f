//! What moves an instance along after placement: the agent's reports, the user's delete,
//! hosts connecting, going quiet and getting lost.

use super::cluster::Cluster;
pub use super::error::LifecycleError;
use super::model::{EndReason, InstanceState};
use super::registry::{Host, HostState};
use crate::core::events::EventKind;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{
    CoordinatorMessage, GpuStatus, GuestRuntime, InstanceReport, WorkloadState,
};
use gpuspot_common::{HostId, HostInventory, InstanceId};

/// How the agent's failure message begins when the image could not be pulled (DESIGN §14).
pub const IMAGE_PULL_FAILED: &str = "image_pull_failed";

impl Cluster {
    /// The user's DELETE: a queued instance ends at once; a placed one is stopped by its
    /// agent (SIGTERM, then SIGKILL after `kill_timeout`) and ends when the agent says so.
    pub fn delete_instance(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let instance =
            self.instances.get(id).ok_or_else(|| LifecycleError::UnknownInstance(id.clone()))?;
        match instance.state {
            InstanceState::Queued => self.finish(id, EndReason::User, None, now),
            InstanceState::Scheduled
            | InstanceState::Running
            | InstanceState::TerminationScheduled => self.begin_stop(id, EndReason::User, now),
            InstanceState::Stopping | InstanceState::Terminated | InstanceState::Failed => {}
        }
        Ok(())
    }

    /// PATCH: name and env change; billing mode and size do not (seed 000: a spot instance
    /// cannot change billing method or be upgraded; a regular one is recreated instead).
    pub fn change_instance(
        &mut self,
        id: &InstanceId,
        name: Option<String>,
        env: Option<std::collections::BTreeMap<String, String>>,
        resize: bool,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let instance = self
            .instances
            .get_mut(id)
            .ok_or_else(|| LifecycleError::UnknownInstance(id.clone()))?;
        if resize {
            return Err(match instance.request.billing.bid() {
                Some(_) => LifecycleError::SpotIsFixed,
                None => LifecycleError::SizeIsFixed,
            });
        }
        if let Some(name) = name {
            instance.request.name = name;
        }
        if let Some(env) = env {
            instance.request.env = env;
        }
        let instance = instance.clone();
        self.touch_instance(id);
        self.event(now, EventKind::InstanceChanged, Some(&instance), None, serde_json::json!({}));
        Ok(())
    }

    /// Orders the agent to stop the workload; `reason` is what it will have ended with.
    pub(super) fn begin_stop(&mut self, id: &InstanceId, reason: EndReason, now: DateTime<Utc>) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.state = InstanceState::Stopping;
        instance.termination_reason = Some(reason);
        let host_id = instance.host_id.clone();
        let instance = instance.clone();
        self.touch_instance(id);
        self.event(
            now,
            EventKind::InstanceStopping,
            Some(&instance),
            None,
            serde_json::json!({ "reason": reason.as_str() }),
        );
        if let Some(host_id) = host_id
            && self.registry.get(&host_id).is_some_and(|h| h.state == HostState::Connected)
        {
            let kill_timeout_ms = self.timers.kill_timeout.as_millis() as u64;
            self.send(
                &host_id,
                CoordinatorMessage::Stop {
                    instance_id: id.clone(),
                    reason: reason.as_str().into(),
                    kill_timeout_ms,
                },
            );
        }
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
        let vanished = match self.registry.get_mut(host_id) {
            Some(host) => {
                let vanished = host.refresh_inventory(inventory, agent_version);
                host.state = HostState::Connected;
                host.last_seen = now;
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
        self.touch_host(host_id);
        let runtimes = self.registry.get(host_id).map(|h| h.runtimes.clone()).unwrap_or_default();
        self.event(
            now,
            EventKind::HostConnected,
            None,
            Some(host_id),
            serde_json::json!({ "hostname": inventory.hostname, "runtimes": runtimes }),
        );
        for id in vanished {
            self.finish(
                &id,
                EndReason::Failed,
                Some("its GPU is no longer reported by the host".into()),
                now,
            );
        }
        for report in reports {
            self.apply_report(host_id, report, now);
        }
        self.forget_unreported(host_id, reports, now);
        let desired = self.desired_on(host_id);
        let heartbeat_interval_ms = self.timers.heartbeat.as_millis() as u64;
        self.send(
            host_id,
            CoordinatorMessage::Welcome {
                host_id: host_id.clone(),
                heartbeat_interval_ms,
                desired,
            },
        );
        self.place_queued(now);
    }

    /// Instances the agent should be running but does not report were lost with it (an
    /// agent restart); instances it was told to stop are simply gone.
    fn forget_unreported(
        &mut self,
        host_id: &HostId,
        reports: &[InstanceReport],
        now: DateTime<Utc>,
    ) {
        let on_host: Vec<(InstanceId, InstanceState)> = self
            .held_on(host_id)
            .into_iter()
            .filter(|i| i.state.holds_units())
            .filter(|i| !reports.iter().any(|r| r.instance_id == i.id))
            .map(|i| (i.id.clone(), i.state))
            .collect();
        for (id, state) in on_host {
            match state {
                InstanceState::Running | InstanceState::TerminationScheduled => self.finish(
                    &id,
                    EndReason::Failed,
                    Some("the agent no longer runs the workload".into()),
                    now,
                ),
                InstanceState::Stopping => {
                    let reason = self.instances[&id].termination_reason.unwrap_or(EndReason::User);
                    self.finish(&id, reason, None, now)
                }
                _ => {}
            }
        }
    }

    /// The instances the host's units name: O(units), not a walk over every instance.
    fn held_on(&self, host_id: &HostId) -> Vec<&super::model::Instance> {
        let Some(host) = self.registry.get(host_id) else {
            return Vec::new();
        };
        let mut ids: Vec<&InstanceId> =
            host.units.iter().filter_map(|s| s.instance.as_ref()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.instances.get(id))
            .filter(|i| i.host_id.as_ref() == Some(host_id))
            .collect()
    }

    fn desired_on(&self, host_id: &HostId) -> Vec<gpuspot_common::protocol::Assignment> {
        self.held_on(host_id)
            .into_iter()
            .filter(|i| {
                matches!(
                    i.state,
                    InstanceState::Scheduled
                        | InstanceState::Running
                        | InstanceState::TerminationScheduled
                )
            })
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
            self.event(
                now,
                EventKind::HostHealthChanged,
                None,
                Some(host_id),
                serde_json::json!({ "gpus": gpus }),
            );
            self.place_queued(now);
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
    }

    fn apply_report(&mut self, host_id: &HostId, report: &InstanceReport, now: DateTime<Utc>) {
        let id = &report.instance_id;
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        if instance.host_id.as_ref() != Some(host_id) || instance.is_terminated() {
            if !report.state.is_final() {
                // Running somewhere it should not (replaced after a loss, or deleted).
                let kill_timeout_ms = self.timers.kill_timeout.as_millis() as u64;
                self.send(
                    host_id,
                    CoordinatorMessage::Stop {
                        instance_id: id.clone(),
                        reason: "not desired".into(),
                        kill_timeout_ms,
                    },
                );
            }
            return;
        }
        let pending = instance.termination_reason;
        let state = instance.state;
        match &report.state {
            WorkloadState::Running => self.mark_running(id, now),
            WorkloadState::Exited { code } if state != InstanceState::Stopping => {
                if let Some(instance) = self.instances.get_mut(id) {
                    instance.exit_code = *code;
                }
                let detail =
                    code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("code {c}"));
                self.finish(id, EndReason::Exited, Some(detail), now)
            }
            WorkloadState::Exited { .. } | WorkloadState::Stopped => {
                self.finish(id, pending.unwrap_or(EndReason::User), None, now)
            }
            // A request that never ran (DESIGN §16): `failed`, with the agent's reason.
            WorkloadState::Failed { message } if message.starts_with(IMAGE_PULL_FAILED) => {
                self.fail(id, message.clone(), now)
            }
            WorkloadState::Failed { message } => {
                self.finish(id, EndReason::Failed, Some(message.clone()), now)
            }
        }
    }

    fn mark_running(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        let hold = self.timers.hold_period;
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.state != InstanceState::Scheduled {
            return;
        }
        instance.state = InstanceState::Running;
        instance.started_at = Some(now);
        instance.meter.metered_until = Some(now);
        if instance.request.billing.bid().is_some() {
            instance.hold_until = chrono::Duration::from_std(hold).ok().map(|d| now + d);
        }
        let instance = instance.clone();
        self.touch_instance(id);
        self.event(now, EventKind::InstanceRunning, Some(&instance), None, serde_json::json!({}));
        if let Some(deployment) = &instance.deployment_id {
            self.reconcile_deployment(&gpuspot_common::DeploymentId(deployment.clone()), now);
        }
        if instance.hold_until.is_some()
            && let Some(host_id) = &instance.host_id
        {
            let metadata = self.guest_metadata(&instance);
            self.send(host_id, CoordinatorMessage::Metadata(metadata));
        }
    }

    pub fn host_disconnected(&mut self, host_id: &HostId, now: DateTime<Utc>) {
        let Some(host) = self.registry.get_mut(host_id) else {
            return;
        };
        if host.state == HostState::Connected {
            host.state = HostState::Disconnected;
            self.touch_host(host_id);
            self.event(
                now,
                EventKind::HostDisconnected,
                None,
                Some(host_id),
                serde_json::json!({}),
            );
        }
    }

    /// Periodic work: due terminations are carried out, replacements of crashed replicas
    /// whose backoff is over start, and hosts silent past `host_lost_after` are lost with
    /// their instances.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.carry_out_deadlines(now);
        self.start_due_restarts(now);
        self.expire_overdue(now);
        let lost_after = chrono::Duration::from_std(self.timers.host_lost_after)
            .unwrap_or(chrono::Duration::MAX);
        // Hosts not heard from since a restart get the restart grace instead.
        let in_grace = |h: &Host| {
            self.restart_grace
                .is_some_and(|(restored, until)| h.last_seen <= restored && now < until)
        };
        let silent: Vec<HostId> = self
            .registry
            .iter()
            .filter(|h| {
                h.state != HostState::Lost && now - h.last_seen > lost_after && !in_grace(h)
            })
            .map(|h| h.id.clone())
            .collect();
        for host_id in silent {
            self.lose_host(&host_id, now);
        }
    }

    fn lose_host(&mut self, host_id: &HostId, now: DateTime<Utc>) {
        if let Some(host) = self.registry.get_mut(host_id) {
            host.state = HostState::Lost;
        }
        self.touch_host(host_id);
        self.event(now, EventKind::HostLost, None, Some(host_id), serde_json::json!({}));
        let on_host: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.host_id.as_ref() == Some(host_id) && i.state.holds_units())
            .map(|i| i.id.clone())
            .collect();
        for id in on_host {
            self.finish(&id, EndReason::HostLost, None, now);
        }
    }
}
