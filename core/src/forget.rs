//! Forgetting ended work (docs/contracts.md#retention): the cluster's side of [`super::retention`]
//! — when the next ended instance or final deployment is due to go, forgetting what is due, dating
//! a deployment's end, and the event sweep.

use super::cluster::Cluster;
use super::deployment::Deployment;
use super::retention::Retention;
use chrono::{DateTime, Utc};
use gpuspot_common::DeploymentId;

impl Cluster {
    /// How long ended work is kept (config `[retention]`).
    pub fn with_retention(mut self, settings: Retention) -> Self {
        self.retention.settings = settings;
        self
    }

    pub fn retention(&self) -> &Retention {
        &self.retention.settings
    }

    /// When an ended instance or a final deployment is next due to be forgotten.
    pub(super) fn next_forget(&self) -> Option<DateTime<Utc>> {
        let settings = &self.retention.settings;
        let instances = self.instances.ended().next_due(settings);
        instances.into_iter().chain(self.deployments.ended().next_due(settings)).min()
    }

    /// Forgets the ended instances and final deployments whose retention is over at `now`,
    /// and each account's beyond its newest `max_ended_per_account`; their rows go with the
    /// next commit. A deployment takes the instances it still has with it.
    pub(super) fn forget_ended(&mut self, now: DateTime<Utc>) {
        let settings = &self.retention.settings;
        let (instances, deployments) = (
            self.instances.ended().due(settings, now),
            self.deployments.ended().due(settings, now),
        );
        let mut forgotten = instances.iter().filter_map(|id| self.instances.forget(id)).count();
        for id in &deployments {
            let owned: Vec<_> = self.instances.of_owner(id).map(|i| i.id.clone()).collect();
            forgotten += owned.iter().filter_map(|i| self.instances.forget(i)).count();
            self.deployments.forget(id);
        }
        if forgotten + deployments.len() > 0 {
            let deployments = deployments.len();
            tracing::debug!(forgotten, deployments, "ended work past its retention forgotten");
        }
    }

    /// A final deployment's retention starts once none of its instances is active (it may
    /// still be stopping them when it ends).
    pub(super) fn note_deployment_ended(&mut self, id: &DeploymentId, now: DateTime<Utc>) {
        let pending =
            self.deployments.get(id).is_none_or(|d| !d.state().is_final() || d.ended_at.is_some());
        if pending || self.instances.of_owner(id).any(|i| !i.is_terminated()) {
            return;
        }
        self.deployments.update(id, |d| d.ended_at = Some(now));
    }

    /// For a deployment stored before retention knew its end: its last instance's end (or
    /// its creation), once it is final and they have all ended.
    pub(super) fn restored_end(&self, d: &Deployment) -> Option<DateTime<Utc>> {
        if !d.state().is_final() || d.ended_at.is_some() {
            return d.ended_at;
        }
        let mut owned = self.instances.of_owner(&d.id);
        let ends: Option<Vec<_>> = owned.by_ref().map(|i| i.ended_at()).collect();
        Some(ends?.into_iter().max().unwrap_or(d.created_at))
    }

    /// Events older than `events` (and their messages) go with the next commit.
    pub(super) fn sweep_events(&mut self, now: DateTime<Utc>) {
        self.retention.sweep_events(now);
    }

    /// The event prune for the commit being taken.
    pub(super) fn take_event_prune(&mut self) -> Option<DateTime<Utc>> {
        self.retention.take_event_prune()
    }
}
