//! The cluster's side of autoscaling (see [`super::autoscale`] for the rules): every
//! `autoscale_interval` (a periodic job of [`Cluster::poll_timeout`]) each replica set with `autoscaling` or a `schedule` is measured
//! (requests per second from the gateway's counters, its GPUs' utilisation from the
//! heartbeats) and scaled, each change an event `deployment_scaled` with its reason; a
//! PATCH may turn autoscaling on or off and replace the schedule of a running replica set.

use super::autoscale::{self, Autoscaling, ScheduledMinimum, Signals};
use super::cluster::Cluster;
use super::deployment::DeploymentChange;
use super::deployment::{Deployment, Mode};
use super::error::DeploymentError;
use super::events::payloads::Scaled;
use super::events::{EventData, EventKind};
use super::model::InstanceState;
use chrono::{DateTime, Utc};
use gpuspot_common::DeploymentId;
use std::collections::HashMap;

/// Whether a PATCH's `autoscaling` and `schedule` fit the deployment (a replica set) and,
/// together with what it keeps, each other.
pub(super) fn check_change(
    d: &Deployment,
    change: &DeploymentChange,
) -> Result<(), DeploymentError> {
    if d.mode != Mode::Replicaset {
        let why = "autoscaling and schedule are for replica sets (mode replicaset)";
        return Err(DeploymentError::InvalidScaling(why.into()));
    }
    let policy = change.autoscaling.as_ref().map_or(d.autoscaling.as_ref(), Option::as_ref);
    let schedule = change.schedule.as_deref().unwrap_or(&d.schedule);
    let problems = autoscale::check(policy, schedule);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(DeploymentError::InvalidScaling(problems.join("; "))),
    }
}

impl Cluster {
    /// The gateway's counters of requests received so far per deployment, read by the
    /// shell when [`Cluster::autoscale_due`] (none without a gateway).
    pub fn observe_requests(&mut self, counters: HashMap<DeploymentId, u64>) {
        self.request_rates.observe(counters);
    }

    /// Whether the autoscaler looks at `now`, so that the shell reads the gateway's
    /// counters only then.
    pub fn autoscale_due(&self, now: DateTime<Utc>) -> bool {
        self.periodic.is_due(super::periodic::Job::Autoscale, now)
    }

    /// One look at every autoscaled replica set (every `autoscale_interval`, from
    /// [`Cluster::handle_timeout`]), with the counters last observed.
    pub(super) fn autoscale(&mut self, now: DateTime<Utc>) {
        let ids: Vec<DeploymentId> = self
            .deployments
            .iter()
            .filter(|d| d.mode == Mode::Replicaset && !d.state().is_final())
            .filter(|d| d.autoscaling.is_some() || !d.schedule.is_empty())
            .map(|d| d.id.clone())
            .collect();
        for id in ids {
            let rps = self.request_rates.rate(&id, now);
            self.autoscale_one(&id, rps, now);
        }
        self.settle(now);
    }

    fn autoscale_one(&mut self, id: &DeploymentId, rps: Option<f64>, now: DateTime<Utc>) {
        let Some(d) = self.deployments.get(id).cloned() else { return };
        let signals = Signals { rps, gpu_utilization: self.replica_gpu_utilization(id) };
        let mut scaling = d.scaling.clone();
        let seen = scaling.schedule_seen_until.unwrap_or(d.created_at);
        let fired = autoscale::fired(&d.schedule, seen, now);
        if !d.schedule.is_empty() {
            scaling.schedule_seen_until = Some(now);
        }
        let decision = match &d.autoscaling {
            // Without autoscaling, a schedule entry sets the count itself.
            None => fired.map(|(at, n)| (n, format!("the schedule sets {n} replicas from {at}"))),
            Some(policy) => {
                if let Some((_, min)) = fired {
                    scaling.scheduled_min = Some(min);
                }
                let floor = scaling.scheduled_min.unwrap_or(policy.min_replicas);
                let (n, why) = autoscale::wanted(policy, d.replicas, floor, signals);
                let delay = chrono::Duration::from_std(policy.scale_in_delay).unwrap_or_default();
                if n < d.replicas {
                    let since = *scaling.lower_since.get_or_insert(now);
                    let waited = now - since >= delay;
                    waited.then(|| {
                        let delay = humantime::format_duration(policy.scale_in_delay);
                        (n, format!("{why} (fewer wanted for {delay})"))
                    })
                } else {
                    scaling.lower_since = None;
                    (n > d.replicas).then_some((n, why))
                }
            }
        };
        if let Some((replicas, _)) = &decision
            && *replicas < d.replicas
        {
            scaling.lower_since = None;
        }
        if scaling != d.scaling {
            self.deployments.update(id, |d| d.scaling = scaling);
        }
        if let Some((replicas, reason)) = decision.filter(|(n, _)| *n != d.replicas) {
            self.scale_to(&d, replicas, &reason, now);
        }
    }

    /// A PATCH's `autoscaling` (`None`: off) and `schedule`: they apply from now on (a
    /// schedule's earlier times do not fire, as for a new deployment), and replicas outside
    /// new bounds move into them at once, as a `deployment_scaled` with its reason.
    pub(super) fn set_scaling(
        &mut self,
        id: &DeploymentId,
        autoscaling: Option<Option<Autoscaling>>,
        schedule: Option<Vec<ScheduledMinimum>>,
        now: DateTime<Utc>,
    ) {
        let Some(d) = self.deployments.update(id, |d| {
            if let Some(policy) = autoscaling {
                d.autoscaling = policy;
                d.scaling.lower_since = None;
            }
            if let Some(entries) = schedule {
                d.schedule = entries;
                d.scaling.scheduled_min = None;
                d.scaling.schedule_seen_until = Some(now);
            }
            d.clone()
        }) else {
            return;
        };
        let Some(policy) = &d.autoscaling else { return };
        let bounded = d.replicas.clamp(policy.min_replicas, policy.max_replicas);
        let why = match bounded.cmp(&d.replicas) {
            std::cmp::Ordering::Greater => {
                format!("autoscaling set: raised to the minimum {bounded}")
            }
            std::cmp::Ordering::Less => format!("autoscaling set: capped at the maximum {bounded}"),
            std::cmp::Ordering::Equal => return,
        };
        self.scale_to(&d, bounded, &why, now);
    }

    fn scale_to(&mut self, d: &Deployment, replicas: u32, reason: &str, now: DateTime<Utc>) {
        tracing::info!(deployment = %d.id, from = d.replicas, to = replicas, reason, "autoscaling");
        self.deployments.update(&d.id, |d| d.replicas = replicas);
        let data = EventData::Scaled(Scaled {
            deployment_id: d.id.clone(),
            from: d.replicas,
            reason: reason.to_owned(),
            to: replicas,
        });
        let about = super::outbox::About { account: Some(&d.account_id), ..Default::default() };
        self.outbox.event(now, EventKind::DeploymentScaled, about, data);
        self.reconcile_deployment(&d.id);
    }

    /// The mean utilisation its running replicas' hosts report for their GPUs.
    fn replica_gpu_utilization(&self, id: &DeploymentId) -> Option<f64> {
        let readings: Vec<u32> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| i.state() == InstanceState::Running)
            .flat_map(|i| {
                let host = i.host_id().and_then(|h| self.registry.get(h));
                i.gpu_uuids()
                    .iter()
                    .filter_map(move |uuid| host.and_then(|h| h.gpu_utilization.get(uuid)).copied())
            })
            .collect();
        (!readings.is_empty())
            .then(|| readings.iter().map(|&r| f64::from(r)).sum::<f64>() / readings.len() as f64)
    }
}
