//! The cluster: a small coordinator over owned parts — hosts ([`Registry`]), instances
//! ([`Instances`], with their queue and deadline indexes), prices ([`Prices`]), accounts
//! ([`Ledger`]), deployments and snapshots. Every operation is a plain method given `now`;
//! instance changes are lifecycle transitions whose [`Effect`]s are carried out here
//! ([`Cluster::transition`]); deployments react to them when the operation settles
//! ([`Cluster::settle`]), never in the middle of it. What changed waits in the outbox
//! until the actor takes it ([`Cluster::take_changes`]), commits it, and only then sends.

use super::changes::Changes;
use super::deployments::Deployments;
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
use super::snapshots::Snapshots;
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

/// 10 GiB: large enough for model checkpoints, small enough to bound the store.
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 10 << 30;

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
    pub(super) timers: Timers,
    pub(super) periodic: super::timers::Periodic,
    /// What ended work is kept for, and the event prune due (DESIGN §15).
    pub(super) retention: super::retention::Keeper,
    /// Whether inbox messages are also mailed (config `[smtp]`, DESIGN §17).
    mail: bool,
    mail_budget: super::mail_budget::MailBudget,
    next_seq: u64,
    /// The agents' readiness verdicts (DESIGN §18); not stored, agents repeat them.
    pub(super) readiness: std::collections::HashMap<InstanceId, bool>,
    /// Whether an endpoint may have changed since the gateway's table was last built.
    pub(super) routes_changed: bool,
    /// Noticed replicas leave the rotation this long before their deadline (DESIGN §18).
    pub(super) drain_margin: super::rotation::DrainMargin,
    /// The gateway's request counter per deployment at the autoscaler's last look.
    pub(super) request_samples:
        std::collections::HashMap<gpuspot_common::DeploymentId, (u64, DateTime<Utc>)>,
    /// Host ports other programs hold, and refused starts (DESIGN §18); not stored.
    pub(super) ports: super::ports::PortBook,
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
            timers,
            periodic: Default::default(),
            retention: Default::default(),
            mail: false,
            mail_budget: Default::default(),
            next_seq: 1,
            readiness: Default::default(),
            routes_changed: true,
            drain_margin: Default::default(),
            request_samples: Default::default(),
            ports: Default::default(),
        }
    }

    /// Where new ids come from (counted in tests).
    pub fn with_ids(mut self, ids: Ids) -> Self {
        self.ids = ids;
        self
    }

    /// Rebuilds the state a previous run committed. Hosts start disconnected with a fresh
    /// `host_lost_after` to come back in: their agents are reconnecting right now.
    pub fn restore(
        mut self,
        hosts: Vec<Host>,
        instances: Vec<Instance>,
        last_event_id: u64,
        now: DateTime<Utc>,
    ) -> Self {
        for mut host in hosts {
            if host.state == HostState::Connected {
                host.state = HostState::Disconnected;
            }
            host.last_seen = now;
            self.registry.insert(host);
        }
        for instance in instances {
            self.next_seq = self.next_seq.max(instance.seq + 1);
            self.instances.restore(instance);
        }
        self.mark_promises();
        // Like Nomad's failover heartbeat TTL: a restart is not the agents' fault.
        let grace = self.timers.host_lost_after.max(RESTART_GRACE);
        self.restart_grace = chrono::Duration::from_std(grace).ok().map(|g| (now, now + g));
        self.outbox.continue_after(last_event_id);
        self
    }

    /// Accounts and the last ledger entry id a previous run committed, restored at `now`.
    pub fn with_accounts(
        mut self,
        accounts: Vec<super::billing::Account>,
        last_id: u64,
        now: DateTime<Utc>,
    ) -> Self {
        self.ledger.restore(accounts, last_id, now);
        self
    }

    /// Inbox messages are mailed to their account's `email` too (an `[smtp]` is set).
    pub fn with_mail(mut self, enabled: bool) -> Self {
        self.mail = enabled;
        self
    }

    /// How long before its deadline a noticed replica leaves the gateway's rotation at the
    /// latest (config `[gateway] drain_margin`).
    pub fn with_drain_margin(mut self, margin: std::time::Duration) -> Self {
        self.drain_margin = super::rotation::DrainMargin::new(margin);
        self
    }

    /// Largest snapshot accepted (config `[snapshots] max_bytes`).
    pub fn with_snapshot_limit(mut self, max_bytes: u64) -> Self {
        self.snapshots.max_bytes = max_bytes;
        self
    }

    /// Deployments a previous run committed.
    pub fn with_deployments(mut self, deployments: Vec<super::deployment::Deployment>) -> Self {
        for mut d in deployments {
            self.next_seq = self.next_seq.max(d.seq + 1);
            d.ended_at = self.restored_end(&d);
            self.deployments.restore(d);
        }
        self
    }

    /// The last market prices a previous run recorded.
    pub fn with_prices(mut self, prices: std::collections::BTreeMap<String, Money>) -> Self {
        self.prices.restore(prices);
        self
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
        data: serde_json::Value,
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
                if self.registry.get(&host).is_some_and(|h| h.state == HostState::Connected) {
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
        super::pools::pool_for(&self.pools, gpu_model).map_or(Money::ZERO, |p| p.list_price)
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
