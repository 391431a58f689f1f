//! Deployments in the cluster: each reconcile compares what a deployment wants with the
//! instances it has, and starts or stops instances to close the gap. New instances take the
//! first spec that can be placed now; a ReplicaSet replaces a replica the moment it gets a
//! termination notice (it drains meanwhile) and replaces crashed replicas after a backoff
//! ([`super::crash_loop`]); a Job counts successful exits, retries real failures up to its
//! limit, and re-runs reclaimed or lost runs without counting them.

use super::cluster::Cluster;
use super::crash_loop::crash_cause;
use super::deployment::{Deployment, DeploymentSpec, DeploymentState, Mode, Template};
pub use super::error::DeploymentError;
use super::model::{EndReason, Instance, InstanceState};
use crate::core::events::EventKind;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, InstanceId};

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
}

/// Is this instance draining (noticed or stopping: on its way out)?
pub fn draining(instance: &Instance) -> bool {
    matches!(instance.state, InstanceState::TerminationScheduled | InstanceState::Stopping)
}

impl Cluster {
    pub fn deployment(&self, id: &DeploymentId) -> Option<&Deployment> {
        self.deployments.get(id)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.values()
    }

    /// The deployment's instances, oldest first.
    pub fn deployment_instances(&self, id: &DeploymentId) -> Vec<&Instance> {
        let mut list: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| i.deployment_id.as_deref() == Some(id.as_str()))
            .collect();
        list.sort_by_key(|i| i.seq);
        list
    }

    pub fn create_deployment(
        &mut self,
        account: AccountId,
        new: NewDeployment,
        now: DateTime<Utc>,
    ) -> DeploymentId {
        let id = DeploymentId::random();
        let seq = self.take_seq();
        let name = if new.name.is_empty() { id.to_string() } else { new.name };
        let deployment = Deployment {
            id: id.clone(),
            account_id: account,
            name,
            mode: new.mode,
            replicas: new.replicas,
            completions: new.completions,
            parallelism: new.parallelism,
            retry_limit: new.retry_limit,
            specs: new.specs,
            template: new.template,
            state: DeploymentState::Waiting,
            reason: Some("starting".into()),
            succeeded: 0,
            failed: 0,
            restarts: 0,
            crash_loop: Default::default(),
            created_at: now,
            seq,
        };
        self.deployments.insert(id.clone(), deployment);
        self.touch_deployment(&id);
        self.deployment_event(now, EventKind::DeploymentCreated, &id);
        self.reconcile_deployment(&id, now);
        id
    }

    fn deployment_event(&mut self, now: DateTime<Utc>, kind: EventKind, id: &DeploymentId) {
        let Some(d) = self.deployments.get(id) else { return };
        let (account, data) = (
            d.account_id.clone(),
            serde_json::json!({
                "deployment_id": d.id, "state": d.state, "succeeded": d.succeeded, "failed": d.failed,
                "restarts": d.restarts,
            }),
        );
        self.event_for_account(now, kind, &account, data);
    }

    fn live(&self, id: &DeploymentId) -> Result<&Deployment, DeploymentError> {
        self.deployments
            .get(id)
            .filter(|d| d.state != DeploymentState::Deleted)
            .ok_or_else(|| DeploymentError::Unknown(id.clone()))
    }

    /// PATCH: replicas scale at once; new specs or template replace the instances that no
    /// longer match.
    pub fn change_deployment(
        &mut self,
        id: &DeploymentId,
        replicas: Option<u32>,
        specs: Option<Vec<DeploymentSpec>>,
        template: Option<Template>,
        now: DateTime<Utc>,
    ) -> Result<(), DeploymentError> {
        let mode = self.live(id)?.mode;
        if replicas.is_some() && mode != Mode::Replicaset {
            return Err(DeploymentError::NotAReplicaSet);
        }
        if specs.is_some() || template.is_some() {
            self.forget_crashes(id);
        }
        let Some(d) = self.deployments.get_mut(id) else {
            return Err(DeploymentError::Unknown(id.clone()));
        };
        d.replicas = replicas.unwrap_or(d.replicas);
        d.specs = specs.unwrap_or_else(|| d.specs.clone());
        d.template = template.unwrap_or_else(|| d.template.clone());
        let d = d.clone();
        let stale: Vec<InstanceId> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| !i.is_terminated() && !draining(i) && !d.matches(i))
            .map(|i| i.id.clone())
            .collect();
        for instance in stale {
            self.end_instance(&instance, now);
        }
        self.touch_deployment(id);
        self.deployment_event(now, EventKind::DeploymentChanged, id);
        self.reconcile_deployment(id, now);
        Ok(())
    }

    /// Seed 002's rebuild: replicas that fell back to a regular spec move to the first spot
    /// spec that can be placed now. Returns how many moved.
    pub fn rebuild_deployment(
        &mut self,
        id: &DeploymentId,
        now: DateTime<Utc>,
    ) -> Result<usize, DeploymentError> {
        let d = self.live(id)?.clone();
        let fallen: Vec<InstanceId> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| !i.is_terminated() && !draining(i) && i.request.billing.bid().is_none())
            .map(|i| i.id.clone())
            .collect();
        let mut moved = 0;
        for old in fallen {
            let spot = (0..d.specs.len())
                .filter(|&s| d.specs[s].billing.bid().is_some())
                .find(|&s| self.find_placement(&d.request(s)).is_ok());
            let Some(spec) = spot else { break };
            self.start_deployment_instance(&d, spec, now);
            self.end_instance(&old, now);
            moved += 1;
        }
        self.deployment_event(now, EventKind::DeploymentRebuilt, id);
        Ok(moved)
    }

    pub fn delete_deployment(
        &mut self,
        id: &DeploymentId,
        now: DateTime<Utc>,
    ) -> Result<(), DeploymentError> {
        self.live(id)?;
        self.finalize(id, DeploymentState::Deleted, None, now);
        Ok(())
    }

    /// Ends a deployment (completed, failed or deleted) and stops what it still runs.
    fn finalize(
        &mut self,
        id: &DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) {
        if let Some(d) = self.deployments.get_mut(id) {
            d.state = state;
            d.reason = reason;
        }
        let active: Vec<InstanceId> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| !i.is_terminated() && i.state != InstanceState::Stopping)
            .map(|i| i.id.clone())
            .collect();
        for instance in active {
            self.end_instance(&instance, now);
        }
        self.touch_deployment(id);
        self.deployment_event(now, EventKind::DeploymentEnded, id);
    }

    /// Stops an instance for its deployment (queued ones end at once).
    fn end_instance(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        match self.instances.get(id).map(|i| i.state) {
            Some(InstanceState::Queued) => self.finish(id, EndReason::User, None, now),
            Some(
                InstanceState::Scheduled
                | InstanceState::Running
                | InstanceState::TerminationScheduled,
            ) => self.begin_stop(id, EndReason::User, now),
            _ => {}
        }
    }

    /// Job accounting, or a replica set's crash, when one of its instances ends; then a
    /// reconcile.
    pub(super) fn deployment_instance_ended(&mut self, instance: &Instance, now: DateTime<Utc>) {
        let Some(id) = instance.deployment_id.clone().map(DeploymentId) else { return };
        let mode = self.deployments.get(&id).filter(|d| !d.state.is_final()).map(|d| d.mode);
        if mode == Some(Mode::Replicaset)
            && let Some(cause) = crash_cause(instance)
        {
            self.replica_crashed(&id, instance, cause, now);
        } else if let Some(d) = self.deployments.get_mut(&id)
            && mode.is_some_and(|m| m != Mode::Replicaset)
        {
            match (instance.termination_reason, instance.exit_code) {
                (Some(EndReason::Exited), Some(0)) => d.succeeded += 1,
                (Some(EndReason::Exited | EndReason::Failed), _) => d.failed += 1,
                _ => {}
            }
            self.touch_deployment(&id);
        }
        self.reconcile_deployment(&id, now);
    }

    /// Every deployment still in play gets another look (capacity or prices changed).
    pub fn reconcile_deployments(&mut self, now: DateTime<Utc>) {
        let ids: Vec<DeploymentId> = self
            .deployments
            .values()
            .filter(|d| !d.state.is_final())
            .map(|d| d.id.clone())
            .collect();
        for id in ids {
            self.reconcile_deployment(&id, now);
        }
    }

    /// Closes the gap between what the deployment wants and what it has. Re-entrant calls
    /// (an instance it stops or starts touching another deployment) are queued, not nested.
    pub(super) fn reconcile_deployment(&mut self, id: &DeploymentId, now: DateTime<Utc>) {
        self.pending_reconciles.insert(id.clone());
        if self.reconciling {
            return;
        }
        self.reconciling = true;
        while let Some(next) = self.pending_reconciles.pop_first() {
            self.reconcile_one(&next, now);
        }
        self.reconciling = false;
    }

    fn reconcile_one(&mut self, id: &DeploymentId, now: DateTime<Utc>) {
        let Some(d) = self.deployments.get(id).filter(|d| !d.state.is_final()).cloned() else {
            return;
        };
        if d.mode != Mode::Replicaset && d.succeeded >= d.completions {
            return self.finalize(id, DeploymentState::Completed, None, now);
        }
        if d.mode != Mode::Replicaset && d.failed > d.retry_limit {
            let reason = format!("{} runs failed (retry limit {})", d.failed, d.retry_limit);
            return self.finalize(id, DeploymentState::Failed, Some(reason), now);
        }
        let instances = self.deployment_instances(id);
        let counts_as_active =
            |i: &Instance| !i.is_terminated() && (d.mode != Mode::Replicaset || !draining(i));
        let active: Vec<InstanceId> =
            instances.into_iter().filter(|i| counts_as_active(i)).map(|i| i.id.clone()).collect();
        let wanted = d.wanted_active() as usize;
        let reason = self.fill_gap(&d, wanted.saturating_sub(active.len()), now);
        if active.len() > wanted {
            for extra in self.extras(&d, active.len() - wanted) {
                self.end_instance(&extra, now);
            }
        }
        self.update_deployment_state(id, reason);
    }

    /// Starts up to `gap` instances, unless crashed replicas' replacements must still wait.
    /// Why it fell short, if it did.
    fn fill_gap(&mut self, d: &Deployment, gap: usize, now: DateTime<Utc>) -> Option<String> {
        if gap > 0 && d.crash_loop.waiting(now) {
            return d.crash_loop.reason(now);
        }
        let mut started = 0;
        let mut reason = None;
        while started < gap {
            if let Err(why) = self.start_with_first_placeable_spec(d, now) {
                reason = Some(why);
                break;
            }
            started += 1;
        }
        self.count_restarts(&d.id, started as u32, gap as u32, now);
        reason
    }

    /// Which replicas to stop when scaling down: queued first, then fallbacks, newest first.
    fn extras(&self, d: &Deployment, count: usize) -> Vec<InstanceId> {
        let mut active: Vec<&Instance> = self
            .deployment_instances(&d.id)
            .into_iter()
            .filter(|i| !i.is_terminated() && !draining(i))
            .collect();
        active.sort_by_key(|i| {
            (
                i.state != InstanceState::Queued,
                std::cmp::Reverse(i.spec_index),
                std::cmp::Reverse(i.seq),
            )
        });
        active.into_iter().take(count).map(|i| i.id.clone()).collect()
    }

    fn start_with_first_placeable_spec(
        &mut self,
        d: &Deployment,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        if !self.may_start(&d.account_id) {
            return Err("account overdue: waiting for a payment".into());
        }
        let mut why = Vec::new();
        for index in 0..d.specs.len() {
            match self.find_placement(&d.request(index)) {
                Ok(_) => {
                    self.start_deployment_instance(d, index, now);
                    return Ok(());
                }
                Err(no_fit) => {
                    let reason = self.spot_waiting_reason(&d.request(index), no_fit);
                    why.push(format!("spec {index}: {reason}"));
                }
            }
        }
        Err(format!("no spec can be placed now ({})", why.join("; ")))
    }

    fn start_deployment_instance(&mut self, d: &Deployment, spec: usize, now: DateTime<Utc>) {
        let mut request = d.request(spec);
        request.name = format!("{}-{}", d.name, self.deployment_instances(&d.id).len() + 1);
        let id = self.create_instance_with(d.account_id.clone(), request, now, |i| {
            i.deployment_id = Some(d.id.to_string());
            i.spec_index = Some(spec);
        });
        let _ = id;
    }

    fn update_deployment_state(&mut self, id: &DeploymentId, waiting_reason: Option<String>) {
        let running =
            self.deployment_instances(id).iter().any(|i| i.state == InstanceState::Running);
        let Some(d) = self.deployments.get_mut(id) else { return };
        let (state, reason) = match (running, waiting_reason) {
            (true, reason) => (DeploymentState::Running, reason),
            (false, Some(reason)) => (DeploymentState::Waiting, Some(reason)),
            (false, None) => (DeploymentState::Waiting, Some("starting".into())),
        };
        if d.state != state || d.reason != reason {
            d.state = state;
            d.reason = reason;
            self.touch_deployment(id);
        }
    }

    /// Endpoints: running replicas that are not draining.
    pub fn endpoints(&self, id: &DeploymentId) -> Vec<&Instance> {
        self.deployment_instances(id)
            .into_iter()
            .filter(|i| i.state == InstanceState::Running)
            .collect()
    }
}
