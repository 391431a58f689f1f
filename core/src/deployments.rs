//! Deployments in the cluster: each reconcile compares what a deployment wants with the
//! instances it has, and starts or stops instances to close the gap. New instances take the
//! first spec that can be placed now; a ReplicaSet replaces a replica the moment it gets a
//! termination notice (it drains meanwhile) and replaces crashed replicas after a backoff
//! ([`super::crash_loop`]); a Job counts successful exits, retries real failures up to its
//! limit, and re-runs reclaimed or lost runs without counting them.

use super::admission::Refusal;
use super::cluster::Cluster;
use super::crash_loop::crash_cause;
pub use super::deployment::Deployments;
use super::deployment::{Deployment, DeploymentState, Mode};
pub use super::error::DeploymentError;
use super::instance::Instance;
use super::model::{EndReason, InstanceState};
use crate::events::payloads::DeploymentNews;
use crate::events::{EventData, EventKind};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, InstanceId};

pub use super::deployment::{DeploymentChange, NewDeployment};

impl Cluster {
    pub fn deployment(&self, id: &DeploymentId) -> Option<&Deployment> {
        self.deployments.get(id)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.iter()
    }

    /// The deployments not final yet (the cost is theirs, not the history's).
    pub fn live_deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.live()
    }

    /// The deployment's instances, oldest first.
    pub fn deployment_instances(&self, id: &DeploymentId) -> Vec<&Instance> {
        self.instances.of_owner(id).collect()
    }

    /// Whether a live deployment has this name whatever its case: it keeps it, since the
    /// gateway serves a name to one deployment without regard to case and the API resolves
    /// a name to one deployment (empty names become ids, which are unique).
    pub fn name_taken(&self, name: &str) -> bool {
        !name.is_empty() && self.deployments_named(name).any(|d| !d.state().is_final())
    }

    /// The deployments `name` names whatever its case, ended ones included (from the name
    /// index: the cost is the matches, not every deployment kept).
    pub fn deployments_named(&self, name: &str) -> impl Iterator<Item = &Deployment> {
        self.deployments.named(name)
    }

    /// Accepts a validated deployment its account may make ([`Refusal`] says why not).
    pub fn create_deployment(
        &mut self,
        account: AccountId,
        new: NewDeployment,
        now: DateTime<Utc>,
    ) -> Result<DeploymentId, Refusal> {
        self.admit_deployment(&account, &new)?;
        let id = self.ids.deployment();
        let seq = self.take_seq();
        let deployment = Deployment::new(id.clone(), account, new, now, seq);
        self.deployments.insert(deployment);
        self.deployment_event(now, EventKind::DeploymentCreated, &id);
        self.reconcile_deployment(&id);
        self.settle(now);
        Ok(id)
    }

    fn deployment_event(&mut self, now: DateTime<Utc>, kind: EventKind, id: &DeploymentId) {
        let Some(d) = self.deployments.get(id) else { return };
        let (account, data) = (
            d.account_id.clone(),
            EventData::DeploymentNews(DeploymentNews {
                deployment_id: d.id.clone(),
                failed: d.failed,
                restarts: d.restarts,
                state: d.state().as_str().into(),
                succeeded: d.succeeded,
            }),
        );
        let about = super::outbox::About { account: Some(&account), ..Default::default() };
        self.outbox.event(now, kind, about, data);
    }

    fn live(&self, id: &DeploymentId) -> Result<&Deployment, DeploymentError> {
        self.deployments
            .get(id)
            .filter(|d| d.state() != DeploymentState::Deleted)
            .ok_or_else(|| DeploymentError::Unknown(id.clone()))
    }

    /// PATCH: replicas scale at once; new specs or template replace the instances that no
    /// longer match; autoscaling and a schedule apply from now on (see
    /// [`Cluster::set_scaling`]).
    pub fn change_deployment(
        &mut self,
        id: &DeploymentId,
        change: DeploymentChange,
        now: DateTime<Utc>,
    ) -> Result<(), DeploymentError> {
        let current = self.live(id)?;
        if change.replicas.is_some() && current.mode != Mode::Replicaset {
            return Err(DeploymentError::NotAReplicaSet);
        }
        if change.scaling() {
            super::scaling::check_change(current, &change)?;
        }
        let DeploymentChange { replicas, specs, template, autoscaling, schedule } = change;
        if specs.is_some() || template.is_some() {
            self.deployments.forget_crashes(id);
        }
        let d = self
            .deployments
            .update(id, |d| {
                d.replicas = replicas.unwrap_or(d.replicas);
                d.specs = specs.unwrap_or_else(|| d.specs.clone());
                d.template = template.unwrap_or_else(|| d.template.clone());
                d.clone()
            })
            .ok_or_else(|| DeploymentError::Unknown(id.clone()))?;
        let stale: Vec<InstanceId> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| !i.is_terminated() && !i.is_draining() && !d.matches(i))
            .map(|i| i.id.clone())
            .collect();
        for instance in stale {
            self.end_instance(&instance, now);
        }
        if autoscaling.is_some() || schedule.is_some() {
            self.set_scaling(id, autoscaling, schedule, now);
        }
        self.deployment_event(now, EventKind::DeploymentChanged, id);
        self.reconcile_deployment(id);
        self.settle(now);
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
            .filter(|i| !i.is_terminated() && !i.is_draining() && i.request.billing.bid().is_none())
            .map(|i| i.id.clone())
            .collect();
        let mut moved = 0;
        for old in fallen {
            let spot = (0..d.specs.len())
                .filter(|&s| d.specs[s].billing.bid().is_some())
                .filter(|&s| self.check_quota(&d.account_id, &d.request(s)).is_ok())
                .find(|&s| self.find_placement(&d.request(s)).is_ok());
            let Some(spec) = spot else { break };
            self.start_deployment_instance(&d, spec, now);
            self.end_instance(&old, now);
            moved += 1;
        }
        self.deployment_event(now, EventKind::DeploymentRebuilt, id);
        self.settle(now);
        Ok(moved)
    }

    pub fn delete_deployment(
        &mut self,
        id: &DeploymentId,
        now: DateTime<Utc>,
    ) -> Result<(), DeploymentError> {
        self.live(id)?;
        self.finalize(id, DeploymentState::Deleted, None, now);
        self.settle(now);
        Ok(())
    }

    /// Ends a deployment (completed, failed or deleted) and stops what it still runs.
    pub(super) fn finalize(
        &mut self,
        id: &DeploymentId,
        state: DeploymentState,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) {
        let ended = self.deployments.update(id, |d| d.end(state, reason));
        if let Some(Err(wrong)) = ended {
            tracing::trace!(deployment = %id, %wrong, "transition not taken");
            return;
        }
        let active: Vec<InstanceId> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| !i.is_terminated() && i.state() != InstanceState::Stopping)
            .map(|i| i.id.clone())
            .collect();
        for instance in active {
            self.end_instance(&instance, now);
        }
        self.deployment_event(now, EventKind::DeploymentEnded, id);
        self.note_deployment_ended(id, now);
    }

    /// Stops an instance for its deployment (queued ones end at once). It ends with
    /// reason `user` like a user's delete; the deployment remembers that the stop was its
    /// own, so that only a user's stop ends a container deployment
    /// (docs/contracts.md#failures-and-quotas).
    pub(super) fn end_instance(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        let owner = self.instances.get(id).and_then(|i| i.deployment_id().cloned());
        if let Some(owner) = owner {
            self.deployments.update(&owner, |d| d.stopped_by_deployment.insert(id.clone()));
        }
        self.end_or_stop(id, EndReason::User, now);
    }

    /// Seed 004: the user stopped the container of a container deployment (not the
    /// deployment itself: its own stops are remembered until they end).
    fn stopped_by_user(&mut self, id: &DeploymentId, instance: &Instance) -> bool {
        let own = self
            .deployments
            .get(id)
            .is_some_and(|d| d.stopped_by_deployment.contains(&instance.id));
        if own {
            self.deployments.update(id, |d| d.stopped_by_deployment.remove(&instance.id));
        }
        !own && instance.termination_reason() == Some(EndReason::User)
    }

    /// Job accounting, or a replica set's crash, when one of its instances ended; then a
    /// reconcile (from [`Cluster::settle`]).
    pub(super) fn deployment_instance_ended(&mut self, instance: &InstanceId, now: DateTime<Utc>) {
        let Some(instance) = self.instances.get(instance).cloned() else { return };
        let Some(id) = instance.deployment_id().cloned() else { return };
        let mode = self.deployments.get(&id).filter(|d| !d.state().is_final()).map(|d| d.mode);
        let by_user = self.stopped_by_user(&id, &instance);
        match mode {
            Some(Mode::Container) if by_user => {
                let reason = Some("stopped by user".to_owned());
                return self.finalize(&id, DeploymentState::Completed, reason, now);
            }
            Some(Mode::Replicaset) => {
                if let Some(cause) = crash_cause(&instance) {
                    self.replica_crashed(&id, &instance, cause, now);
                }
            }
            Some(_) => {
                let outcome = (instance.termination_reason(), instance.exit_code());
                self.deployments.update(&id, |d| match outcome {
                    (Some(EndReason::Exited), Some(0)) => d.succeeded += 1,
                    (Some(EndReason::Exited | EndReason::Failed), _) => d.failed += 1,
                    _ => {}
                });
            }
            None => self.note_deployment_ended(&id, now),
        }
        self.reconcile_one(&id, now);
    }
}
