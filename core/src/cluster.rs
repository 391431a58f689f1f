//! The cluster: a small coordinator over owned parts — hosts ([`Registry`]), instances
//! ([`Instances`], with their queue and deadline indexes), prices ([`Prices`]), accounts
//! ([`Ledger`]), deployments and snapshots. Every operation is a plain method given `now`;
//! instance changes are lifecycle transitions whose [`Effect`]s are carried out here
//! ([`Cluster::transition`]); deployments react to them when the operation settles
//! ([`Cluster::settle`]), never in the middle of it. What changed waits in the outbox
//! until the actor takes it ([`Cluster::take_changes`]), commits it, and only then sends.

use super::changes::Changes;
use super::deployment::Deployments;
use super::events::EventKind;
use super::ids::Ids;
use super::instance::effects::{Effect, WrongState};
use super::instance::table::Instances;
use super::instance::{Instance, Lifecycle};
use super::ledger::Ledger;
use super::market::Prices;
use super::outbox::{About, Outbox};
use super::registry::{Host, HostState, Registry};
use super::settings::{PoolSettings, Timers};
use super::snapshot::Snapshots;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{Assignment, CoordinatorMessage, GuestMetadata, ReadinessProbe};
use gpuspot_common::{DeploymentId, HostId, InstanceId, Money, StopReason};
use std::collections::{BTreeSet, VecDeque};

pub use super::events::Event;
pub use super::market::PricePoint;

/// A message to send to a host once the changes that led to it are durable.
pub type Outgoing = super::outbox::Send;

/// How long hosts have to reconnect after a coordinator restart before any is lost.
pub const RESTART_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

pub use super::snapshot::DEFAULT_SNAPSHOT_MAX_BYTES;

/// What deployments still have to react to in this operation.
#[derive(Debug, Default)]
pub(super) struct Reactions {
    pub ended: VecDeque<InstanceId>,
    pub reconcile: BTreeSet<DeploymentId>,
    pub place_queue: bool,
}

pub struct Cluster {
    pub(super) registry: Registry,
    pub(super) instances: Instances,
    pub(super) prices: Prices,
    pub(super) ledger: Ledger,
    pub(super) deployments: Deployments,
    pub(super) snapshots: Snapshots,
    pub(super) outbox: Outbox,
    pub(super) reactions: Reactions,
    pub(super) ids: Ids,
    /// After a restart, agents need time to notice and reconnect before anyone is lost
    /// (when the state was restored, until when restored hosts may stay silent).
    pub(super) restart_grace: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub(super) pools: Vec<PoolSettings>,
    /// Each host GPU model's pool, resolved when the host registers.
    pub(super) pool_index: super::pools::PoolIndex,
    pub(super) timers: Timers,
    pub(super) periodic: super::periodic::Periodic,
    /// What ended work is kept for, and the event prune due (docs/contracts.md#retention).
    pub(super) retention: super::retention::Keeper,
    /// Whether inbox messages are also mailed (config `[smtp]`, docs/contracts.md#messages).
    pub(super) mail: bool,
    mail_budget: super::mail_budget::MailBudget,
    pub(super) next_seq: u64,
    /// The agents' readiness verdicts (docs/contracts.md#serving); not stored, agents repeat them.
    pub(super) readiness: std::collections::HashMap<InstanceId, bool>,
    /// Whether an endpoint may have changed since the gateway's table was last built.
    pub(super) routes_changed: bool,
    /// Noticed replicas leave the rotation this long before their deadline
    /// (docs/contracts.md#serving).
    pub(super) drain_margin: super::rotation::DrainMargin,
    /// The gateway's request counters, and their rates at the autoscaler's looks.
    pub(super) request_rates: super::autoscale::RequestRates,
    /// Host ports other programs hold, and refused starts (docs/contracts.md#serving); not stored.
    pub(super) ports: super::port_book::PortBook,
}

impl Cluster {
    pub fn new(pools: Vec<PoolSettings>, timers: Timers) -> Self {
        Self {
            registry: Registry::default(),
            instances: Instances::default(),
            prices: Prices::default(),
            ledger: Ledger::default(),
            deployments: Deployments::default(),
            snapshots: Snapshots::default(),
            outbox: Outbox::default(),
            reactions: Reactions::default(),
            ids: Ids::default(),
            restart_grace: None,
            pools,
            pool_index: Default::default(),
            timers,
            periodic: Default::default(),
            retention: Default::default(),
            mail: false,
            mail_budget: Default::default(),
            next_seq: 1,
            readiness: Default::default(),
            routes_changed: true,
            drain_margin: Default::default(),
            request_rates: Default::default(),
            ports: Default::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }

    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter()
    }

    pub fn pools(&self) -> &[PoolSettings] {
        &self.pools
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Takes the outbox: rows to upsert, events to append, messages to send after commit.
    pub fn take_changes(&mut self) -> Changes {
        let hosts: Vec<super::registry::Host> = std::mem::take(&mut self.outbox.dirty_hosts)
            .into_iter()
            .filter_map(|id| self.registry.get(&id).cloned())
            .collect();
        let (accounts, ledger) = self.ledger.take_changes();
        let instances = self.instances.take_dirty();
        self.note_route_changes(&instances, &hosts);
        let events = std::mem::take(&mut self.outbox.events);
        let trim_events = self.retention.count_events(&events);
        Changes {
            instances,
            snapshots: self.snapshots.take_new(),
            deployments: self.deployments.take_dirty(),
            hosts,
            accounts,
            ledger,
            events,
            messages: self.take_messages(),
            price_points: self.prices.take_points(),
            sends: std::mem::take(&mut self.outbox.sends),
            removed_hosts: self.registry.take_removed(),
            forgotten_instances: self.instances.take_forgotten(),
            forgotten_deployments: self.deployments.take_forgotten(),
            prune_events_before: self.take_event_prune(),
            trim_events,
            prune_prices_before: None,
        }
        .with_price_retention(self.timers.price_history)
    }

    /// Endpoints change with their replicas and hosts; an ended instance's verdict goes.
    fn note_route_changes(&mut self, instances: &[Instance], hosts: &[super::registry::Host]) {
        for ended in instances.iter().filter(|i| i.is_terminated()) {
            self.readiness.remove(&ended.id);
        }
        self.routes_changed |= !hosts.is_empty()
            || !self.deployments.dirty.is_empty()
            || instances.iter().any(|i| i.owner.is_some());
    }

    /// The outbox's inbox messages, each addressed to its account's email as it is now.
    fn take_messages(&mut self) -> Vec<super::notices::Message> {
        let mut messages = std::mem::take(&mut self.outbox.messages);
        if self.mail {
            for message in &mut messages {
                let email = self.ledger.get(&message.account_id).and_then(|a| a.email.clone());
                message.mail_to = email.filter(|_| {
                    let admitted = self.mail_budget.admit(&message.account_id, message.at);
                    if !admitted {
                        tracing::warn!(account = %message.account_id, message = %message.id,
                            "hourly mail cap reached; the message stays in the inbox only");
                    }
                    admitted
                });
            }
        }
        messages
    }

    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn touch_host(&mut self, id: &HostId) {
        self.outbox.touch_host(id);
    }

    pub(super) fn send(&mut self, host: &HostId, message: CoordinatorMessage) {
        self.outbox.send(host, message);
    }

    /// An event about an instance (by id), a host, or neither.
    pub(super) fn event(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        instance: Option<&InstanceId>,
        host: Option<&HostId>,
        data: super::events::EventData,
    ) {
        let instance = instance.and_then(|id| self.instances.get(id));
        self.outbox.event(now, kind, About { instance, host, account: None }, data);
    }

    /// Applies a lifecycle transition to instance `id` and carries out its effects; false
    /// when there is no such instance or its state does not allow the transition.
    pub(super) fn transition(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Lifecycle) -> Result<Vec<Effect>, WrongState>,
    ) -> bool {
        match self.instances.update(id, |i| change(i.lifecycle_mut())) {
            Some(Ok(effects)) => {
                for effect in effects {
                    self.carry_out(id, effect, now);
                }
                true
            }
            Some(Err(wrong)) => {
                tracing::trace!(instance = %id, %wrong, "transition not taken");
                false
            }
            None => false,
        }
    }

    fn carry_out(&mut self, id: &InstanceId, effect: Effect, now: DateTime<Utc>) {
        match effect {
            Effect::Event(kind, data) => self.event(now, kind, Some(id), None, data),
            Effect::Start { host } => {
                if let Some(assignment) = self.assignment(id) {
                    self.send(&host, CoordinatorMessage::Start(assignment));
                }
            }
            Effect::Stop { host, reason } => {
                if self.registry.get(&host).is_some_and(|h| h.state() == HostState::Connected) {
                    self.send_stop(&host, id, reason.into());
                }
            }
            Effect::Metadata => self.push_metadata(id),
            Effect::Release { host } => {
                if let Some(h) = self.registry.get_mut(&host) {
                    h.release(id);
                    self.touch_host(&host);
                }
                self.reactions.place_queue = true;
            }
            Effect::ForgetPromise { host } => {
                self.unmark_promise(id, &host);
                self.reactions.place_queue = true;
            }
            Effect::Reconcile => {
                if let Some(d) = self.instances.get(id).and_then(|i| i.deployment_id()) {
                    self.reactions.reconcile.insert(d.clone());
                }
            }
            Effect::Ended => self.reactions.ended.push_back(id.clone()),
        }
    }

    pub(super) fn send_stop(&mut self, host: &HostId, id: &InstanceId, reason: StopReason) {
        let kill_timeout_ms = self.timers.kill_timeout.as_millis() as u64;
        let stop = CoordinatorMessage::Stop { instance_id: id.clone(), reason, kill_timeout_ms };
        self.send(host, stop);
    }

    /// The end of every operation: freed units serve the queue, and deployments react to
    /// what their instances did (which may free or take more), until nothing is left.
    pub(super) fn settle(&mut self, now: DateTime<Utc>) {
        loop {
            if std::mem::take(&mut self.reactions.place_queue) {
                self.place_queued(now);
            } else if let Some(id) = self.reactions.ended.pop_front() {
                self.deployment_instance_ended(&id, now);
            } else if let Some(d) = self.reactions.reconcile.pop_first() {
                self.reconcile_one(&d, now);
            } else {
                return;
            }
        }
    }

    pub fn list_price(&self, gpu_model: &str) -> Money {
        self.pool_of_gpu(gpu_model).map_or(Money::ZERO, |p| p.list_price)
    }

    /// The pool that prices this GPU model (looked up, not matched: see `pools`).
    pub(super) fn pool_of_gpu(&self, gpu_model: &str) -> Option<&PoolSettings> {
        self.pool_index.pool(&self.pools, gpu_model)
    }

    /// Resolves the pools of the host's GPU models (at registration, restore, new inventory).
    pub(super) fn learn_pools(&mut self, host: &Host) {
        let models = host.units.iter().map(|s| s.unit.gpu.model.as_str());
        self.pool_index.learn(&self.pools, models);
    }

    pub fn guest_metadata(&self, instance: &Instance) -> GuestMetadata {
        let noticed = instance.termination_time();
        GuestMetadata {
            instance_id: instance.id.clone(),
            host_id: instance.host_id().cloned().unwrap_or_default(),
            gpu_uuids: instance.gpu_uuids().to_vec(),
            spot_termination_time: noticed,
            termination_reason: noticed.and(instance.termination_reason()),
            hold_until: instance.hold_until(),
            billing_mode: Some(instance.request.billing.mode()),
            bid: instance.request.billing.bid(),
            price: instance.price(),
            deployment_id: instance.deployment_id().cloned(),
        }
    }

    /// Sends the guest its current metadata (after the commit that changed it).
    pub(super) fn push_metadata(&mut self, id: &InstanceId) {
        let Some(instance) = self.instances.get(id) else { return };
        let Some(host_id) = instance.host_id().cloned() else { return };
        let metadata = self.guest_metadata(instance);
        self.send(&host_id, CoordinatorMessage::Metadata(metadata));
    }

    /// What the instance's host must run for it (None unless it is placed).
    pub fn assignment(&self, id: &InstanceId) -> Option<Assignment> {
        let instance = self.instances.get(id)?;
        let placement = instance.placement()?;
        Some(Assignment {
            instance_id: instance.id.clone(),
            gpu_uuids: placement.gpu_uuids.clone(),
            cpu_cores: placement.cpu_cores,
            memory_gib: placement.memory_gib,
            command: instance.request.command.clone(),
            env: instance.request.env.clone(),
            metadata: self.guest_metadata(instance),
            log_offset: 0,
            kill_timeout_ms: self.timers.kill_timeout.as_millis() as u64,
            snapshot: self.snapshot_plan(instance),
            image: instance.request.image.clone(),
            data_disk_gib: instance.request.data_disk_gib,
            ports: Self::port_mappings(instance),
            readiness: instance.request.readiness.as_ref().map(|r| ReadinessProbe {
                http_path: r.http_path.clone(),
                interval_ms: r.interval.as_millis() as u64,
            }),
        })
    }
}
