//! Reconciling deployments: each look compares what a deployment wants with the instances
//! it has and starts or stops instances to close the gap, new ones on the first spec that
//! can be placed now; then its state (waiting or running, and why) follows.

use super::cluster::Cluster;
use super::crash_loop::CrashBackoff;
use super::deployment::{Deployment, DeploymentState, Mode};
use super::instance::Instance;
use super::instance::Owner;
use super::model::InstanceState;
use chrono::{DateTime, Utc};
use gpuspot_common::{DeploymentId, InstanceId};
use std::time::Duration;

impl Cluster {
    /// Every deployment still in play gets another look (capacity or prices changed).
    pub fn reconcile_deployments(&mut self, now: DateTime<Utc>) {
        let ids: Vec<DeploymentId> = self.deployments.live().map(|d| d.id.clone()).collect();
        for id in ids {
            self.reconcile_deployment(&id);
        }
        self.settle(now);
    }

    /// Asks for a reconcile when the current operation settles: never in the middle of one.
    pub(super) fn reconcile_deployment(&mut self, id: &DeploymentId) {
        self.reactions.reconcile.insert(id.clone());
    }

    /// Closes the gap between what the deployment wants and what it has.
    pub(super) fn reconcile_one(&mut self, id: &DeploymentId, now: DateTime<Utc>) {
        let Some(d) = self.deployments.get(id).filter(|d| !d.state().is_final()).cloned() else {
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
            |i: &Instance| !i.is_terminated() && (d.mode != Mode::Replicaset || !i.is_draining());
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
        self.deployments.count_restarts(&d.id, started as u32, gap as u32, now);
        reason
    }

    /// Which replicas to stop when scaling down: queued first, then fallbacks, newest first.
    fn extras(&self, d: &Deployment, count: usize) -> Vec<InstanceId> {
        let mut active: Vec<&Instance> = self
            .deployment_instances(&d.id)
            .into_iter()
            .filter(|i| !i.is_terminated() && !i.is_draining())
            .collect();
        active.sort_by_key(|i| {
            (
                i.state() != InstanceState::Queued,
                std::cmp::Reverse(i.spec_index()),
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
        if !self.ledger.may_start(&d.account_id) {
            return Err("account overdue: waiting for a payment".into());
        }
        if let Some(past) = self.quota_refuses_every_spec(d) {
            return Err(past.to_string());
        }
        let mut why = Vec::new();
        let mut pass = super::scheduling::Pass::default();
        for index in 0..d.specs.len() {
            if let Err(past) = self.check_quota(&d.account_id, &d.request(index)) {
                why.push(format!("spec {index}: {past}"));
                continue;
            }
            match self.find_placement(&d.request(index)) {
                Ok(_) => {
                    self.start_deployment_instance(d, index, now);
                    return Ok(());
                }
                Err(no_fit) => {
                    let (request, account) = (d.request(index), &d.account_id);
                    let reason = self.shortage(&request, account, no_fit, &mut pass).waiting();
                    why.push(format!("spec {index}: {reason}"));
                }
            }
        }
        Err(format!("no spec can be placed now ({})", why.join("; ")))
    }

    pub(super) fn start_deployment_instance(
        &mut self,
        d: &Deployment,
        spec: usize,
        now: DateTime<Utc>,
    ) {
        let mut request = d.request(spec);
        request.name = format!("{}-{}", d.name, self.instances.of_owner(&d.id).count() + 1);
        let owner = Owner { deployment_id: d.id.clone(), spec_index: Some(spec) };
        self.create_instance_for(d.account_id.clone(), request, Some(owner), now);
    }

    fn update_deployment_state(&mut self, id: &DeploymentId, waiting_reason: Option<String>) {
        let running = self.instances.of_owner(id).any(|i| i.state() == InstanceState::Running);
        let reason = match running {
            true => waiting_reason,
            false => waiting_reason.or_else(|| Some("starting".into())),
        };
        let Some(d) = self.deployments.get(id) else { return };
        if !d.state().is_final() && !d.shows(running, &reason) {
            self.deployments.update(id, |d| d.progress(running, reason));
        }
    }
}

/// Crash-loop restarts (`crash_loop`): the wait before a crashed replica is replaced.
impl Cluster {
    /// The crash-loop backoff (config `[deployments]`).
    pub fn with_crash_backoff(mut self, backoff: CrashBackoff) -> Self {
        self.deployments.crash_restarts.set_backoff(backoff);
        self
    }

    /// A replica of `id` crashed: `failed` counts it and its replacement is put off.
    pub(super) fn replica_crashed(
        &mut self,
        id: &DeploymentId,
        instance: &Instance,
        cause: String,
        now: DateTime<Utc>,
    ) {
        let ran = match (instance.started_at(), instance.ended_at()) {
            (Some(start), Some(end)) => (end - start).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        self.deployments.replica_crashed(id, ran, cause, now);
    }

    /// From the timer: deployments whose wait is over get another look.
    pub(super) fn start_due_restarts(&mut self, now: DateTime<Utc>) {
        for id in self.deployments.take_due_restarts(now) {
            self.reconcile_deployment(&id);
        }
    }

    pub(super) fn next_crash_restart(&self) -> Option<DateTime<Utc>> {
        self.deployments.crash_restarts.next_due()
    }
}
