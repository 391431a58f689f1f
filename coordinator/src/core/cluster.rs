//! The coordinator's state machine: instances, the queue and the host registry. Operations
//! mutate state and record what changed in an outbox ([`Changes`]); the actor takes the
//! outbox, commits it to the store, and only then sends the messages in it.

use super::accounts::OPERATOR;
use super::billing::{Account, LedgerEntry};
use super::deployment::Deployment;
pub use super::events::Event;
use super::model::{EndReason, Instance, InstanceRequest, InstanceState};
use super::pools;
use super::registry::{Host, HostState, Registry};
use super::snapshots::SnapshotRecord;
use crate::config::{PoolSettings, Timers};
use crate::core::events::EventKind;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{Assignment, CoordinatorMessage, GuestMetadata};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A message to send to a host once the changes that led to it are durable.
pub type Effect = (HostId, CoordinatorMessage);

/// Everything one or more operations changed, to persist and then act on.
#[derive(Debug, Default)]
pub struct Changes {
    pub instances: Vec<Instance>,
    pub snapshots: Vec<SnapshotRecord>,
    pub deployments: Vec<Deployment>,
    pub hosts: Vec<Host>,
    pub accounts: Vec<Account>,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
    pub price_points: Vec<PricePoint>,
    pub sends: Vec<Effect>,
    /// Hosts the operator deleted (see `registry::removal`).
    pub removed_hosts: Vec<super::registry::RemovedHost>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.snapshots.is_empty()
            && self.deployments.is_empty()
            && self.hosts.is_empty()
            && self.accounts.is_empty()
            && self.ledger.is_empty()
            && self.events.is_empty()
            && self.price_points.is_empty()
            && self.sends.is_empty()
            && self.removed_hosts.is_empty()
    }
}

/// A pool's market price at one tick, for the price history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricePoint {
    pub model: String,
    pub at: DateTime<Utc>,
    pub price: Money,
}

/// Service order of the queue: regular before spot (DESIGN §4), higher bids first, then
/// the older request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    class: u8,
    negated_bid: i64,
    seq: u64,
}

impl QueueKey {
    pub fn of(instance: &Instance) -> Self {
        match instance.request.billing.bid() {
            None => Self { class: 0, negated_bid: 0, seq: instance.seq },
            Some(bid) => Self { class: 1, negated_bid: -bid.micros(), seq: instance.seq },
        }
    }
}

/// How long hosts have to reconnect after a coordinator restart before any is lost.
pub const RESTART_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

/// 10 GiB: large enough for model checkpoints, small enough to bound the store.
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 10 << 30;

pub struct Cluster {
    pub(super) registry: Registry,
    pub(super) instances: BTreeMap<InstanceId, Instance>,
    /// Queued instances in service order (regular first, then spot by bid, then age).
    pub(super) queue: BTreeMap<QueueKey, InstanceId>,
    /// Scheduled terminations by deadline.
    pub(super) deadlines: BTreeSet<(DateTime<Utc>, InstanceId)>,
    /// Current spot market price per pool model.
    pub(super) prices: BTreeMap<String, Money>,
    price_points: Vec<PricePoint>,
    pub(super) accounts: BTreeMap<AccountId, Account>,
    next_ledger_id: u64,
    dirty_accounts: BTreeSet<AccountId>,
    ledger: Vec<LedgerEntry>,
    pub(super) deployments: BTreeMap<DeploymentId, Deployment>,
    dirty_deployments: BTreeSet<DeploymentId>,
    pub(super) pending_reconciles: BTreeSet<DeploymentId>,
    /// Replica sets waiting to replace crashed replicas, and the backoff settings.
    pub(super) crash_restarts: super::crash_loop::CrashRestarts,
    pub(super) snapshots: BTreeMap<String, SnapshotRecord>,
    /// Latest snapshot id per lineage (deployment, or lone instance).
    pub(super) latest_snapshot: BTreeMap<String, String>,
    pub(super) new_snapshots: Vec<SnapshotRecord>,
    pub(super) snapshot_max_bytes: u64,
    pub(super) reconciling: bool,
    /// After a restart, agents need time to notice and reconnect before anyone is lost.
    /// (when the state was restored, until when restored hosts may stay silent).
    pub(super) restart_grace: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub(super) pools: Vec<PoolSettings>,
    pub(super) timers: Timers,
    next_seq: u64,
    next_event_id: u64,
    dirty_instances: BTreeSet<InstanceId>,
    dirty_hosts: BTreeSet<HostId>,
    events: Vec<Event>,
    sends: Vec<Effect>,
    pub(super) periodic: super::timers::Periodic,
}

impl Cluster {
    pub fn new(pools: Vec<PoolSettings>, timers: Timers) -> Self {
        Self {
            registry: Registry::default(),
            instances: BTreeMap::new(),
            queue: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            prices: BTreeMap::new(),
            price_points: Vec::new(),
            accounts: BTreeMap::from([(AccountId::from(OPERATOR), operator_account())]),
            next_ledger_id: 1,
            dirty_accounts: BTreeSet::new(),
            ledger: Vec::new(),
            deployments: BTreeMap::new(),
            dirty_deployments: BTreeSet::new(),
            pending_reconciles: BTreeSet::new(),
            crash_restarts: Default::default(),
            snapshots: BTreeMap::new(),
            latest_snapshot: BTreeMap::new(),
            new_snapshots: Vec::new(),
            snapshot_max_bytes: DEFAULT_SNAPSHOT_MAX_BYTES,
            reconciling: false,
            restart_grace: None,
            pools,
            timers,
            next_seq: 1,
            next_event_id: 1,
            dirty_instances: BTreeSet::new(),
            dirty_hosts: BTreeSet::new(),
            events: Vec::new(),
            sends: Vec::new(),
            periodic: Default::default(),
        }
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
            if instance.state == InstanceState::Queued {
                self.queue.insert(QueueKey::of(&instance), instance.id.clone());
            }
            if let (InstanceState::TerminationScheduled, Some(at)) =
                (instance.state, instance.termination_time)
            {
                self.deadlines.insert((at, instance.id.clone()));
            }
            self.instances.insert(instance.id.clone(), instance);
        }
        // Like Nomad's failover heartbeat TTL: a restart is not the agents' fault.
        let grace = self.timers.host_lost_after.max(RESTART_GRACE);
        self.restart_grace = chrono::Duration::from_std(grace).ok().map(|g| (now, now + g));
        self.next_event_id = last_event_id + 1;
        self
    }

    /// Accounts and the last ledger entry id a previous run committed.
    pub fn with_accounts(mut self, accounts: Vec<Account>, last_ledger_id: u64) -> Self {
        for account in accounts {
            self.accounts.insert(account.id.clone(), account);
        }
        self.next_ledger_id = last_ledger_id + 1;
        self
    }

    /// Largest snapshot accepted (config `[snapshots] max_bytes`).
    pub fn with_snapshot_limit(mut self, max_bytes: u64) -> Self {
        self.snapshot_max_bytes = max_bytes;
        self
    }

    /// Deployments a previous run committed.
    pub fn with_deployments(mut self, deployments: Vec<Deployment>) -> Self {
        for d in deployments {
            self.next_seq = self.next_seq.max(d.seq + 1);
            self.crash_restarts.restored(&d);
            self.deployments.insert(d.id.clone(), d);
        }
        self
    }

    /// The last market prices a previous run recorded.
    pub fn with_prices(mut self, prices: BTreeMap<String, Money>) -> Self {
        self.prices = prices;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id)
    }

    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    pub fn pools(&self) -> &[PoolSettings] {
        &self.pools
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Takes the outbox: rows to upsert, events to append, messages to send after commit.
    pub fn take_changes(&mut self) -> Changes {
        let instances = std::mem::take(&mut self.dirty_instances)
            .into_iter()
            .filter_map(|id| self.instances.get(&id).cloned())
            .collect();
        let hosts = std::mem::take(&mut self.dirty_hosts)
            .into_iter()
            .filter_map(|id| self.registry.get(&id).cloned())
            .collect();
        let deployments = std::mem::take(&mut self.dirty_deployments)
            .into_iter()
            .filter_map(|id| self.deployments.get(&id).cloned())
            .collect();
        let accounts = std::mem::take(&mut self.dirty_accounts)
            .into_iter()
            .filter_map(|id| self.accounts.get(&id).cloned())
            .collect();
        Changes {
            instances,
            snapshots: std::mem::take(&mut self.new_snapshots),
            deployments,
            hosts,
            accounts,
            ledger: std::mem::take(&mut self.ledger),
            events: std::mem::take(&mut self.events),
            price_points: std::mem::take(&mut self.price_points),
            sends: std::mem::take(&mut self.sends),
            removed_hosts: self.registry.take_removed(),
        }
    }

    pub(super) fn touch_instance(&mut self, id: &InstanceId) {
        self.dirty_instances.insert(id.clone());
    }

    pub(super) fn touch_host(&mut self, id: &HostId) {
        self.dirty_hosts.insert(id.clone());
    }

    pub(super) fn touch_deployment(&mut self, id: &DeploymentId) {
        self.dirty_deployments.insert(id.clone());
    }

    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn touch_account(&mut self, id: &AccountId) {
        self.dirty_accounts.insert(id.clone());
    }

    pub(super) fn push_ledger(&mut self, entry: LedgerEntry) {
        self.ledger.push(entry);
    }

    pub(super) fn next_ledger_id(&mut self) -> u64 {
        let id = self.next_ledger_id;
        self.next_ledger_id += 1;
        id
    }

    pub(super) fn record_price(&mut self, point: PricePoint) {
        self.price_points.push(point);
    }

    pub(super) fn send(&mut self, host: &HostId, message: CoordinatorMessage) {
        self.sends.push((host.clone(), message));
    }

    pub(super) fn event(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        instance: Option<&Instance>,
        host: Option<&HostId>,
        data: serde_json::Value,
    ) {
        let event = Event {
            id: self.next_event_id,
            at: now,
            kind,
            account_id: instance.map(|i| i.account_id.clone()),
            instance_id: instance.map(|i| i.id.clone()),
            host_id: host.cloned().or_else(|| instance.and_then(|i| i.host_id.clone())),
            data,
        };
        self.next_event_id += 1;
        self.events.push(event);
    }

    /// An event about an account rather than an instance.
    pub(super) fn event_for_account(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        account: &AccountId,
        data: serde_json::Value,
    ) {
        self.event(now, kind, None, None, data);
        if let Some(event) = self.events.last_mut() {
            event.account_id = Some(account.clone());
        }
    }

    pub fn list_price(&self, gpu_model: &str) -> Money {
        pools::pool_for(&self.pools, gpu_model).map_or(Money::ZERO, |p| p.list_price)
    }

    /// Accepts a validated request: it is queued, then placed at once if anything fits.
    pub fn create_instance(
        &mut self,
        account: AccountId,
        request: InstanceRequest,
        now: DateTime<Utc>,
    ) -> InstanceId {
        self.create_instance_with(account, request, now, |_| {})
    }

    /// Like [`Cluster::create_instance`], with `customize` applied before placement (a
    /// deployment sets its id and spec here).
    pub(super) fn create_instance_with(
        &mut self,
        account: AccountId,
        request: InstanceRequest,
        now: DateTime<Utc>,
        customize: impl FnOnce(&mut Instance),
    ) -> InstanceId {
        let id = InstanceId::random();
        let seq = self.take_seq();
        let mut instance = Instance::new(id.clone(), account, request, now, seq);
        if instance.request.name.is_empty() {
            instance.request.name = id.to_string();
        }
        customize(&mut instance);
        self.event(now, EventKind::InstanceCreated, Some(&instance), None, serde_json::json!({}));
        self.queue.insert(QueueKey::of(&instance), id.clone());
        self.instances.insert(id.clone(), instance);
        self.touch_instance(&id);
        self.place_queued(now);
        id
    }

    pub fn guest_metadata(&self, instance: &Instance) -> GuestMetadata {
        GuestMetadata {
            instance_id: instance.id.clone(),
            host_id: instance.host_id.clone().unwrap_or_default(),
            gpu_uuids: instance.gpu_uuids.clone(),
            spot_termination_time: instance.termination_time,
            termination_reason: instance
                .termination_time
                .and(instance.termination_reason.map(|r| r.as_str().to_owned())),
            hold_until: instance.hold_until,
            billing_mode: Some(instance.request.billing.mode().to_owned()),
            bid: instance.request.billing.bid(),
            price: instance.price,
            deployment_id: instance.deployment_id.clone(),
        }
    }

    /// What the instance's host must run for it (None unless it holds units).
    pub fn assignment(&self, id: &InstanceId) -> Option<Assignment> {
        let instance = self.instances.get(id)?;
        Some(Assignment {
            instance_id: instance.id.clone(),
            gpu_uuids: instance.gpu_uuids.clone(),
            cpu_cores: instance.cpu_cores?,
            memory_gib: instance.memory_gib?,
            command: instance.request.command.clone(),
            env: instance.request.env.clone(),
            metadata: self.guest_metadata(instance),
            log_offset: 0,
            kill_timeout_ms: self.timers.kill_timeout.as_millis() as u64,
            snapshot: self.snapshot_plan(instance),
            image: instance.request.image.clone(),
            data_disk_gib: instance.request.data_disk_gib,
        })
    }

    /// Ends an instance: units released, reason recorded, the queue gets another look.
    pub(super) fn finish(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        detail: Option<String>,
        now: DateTime<Utc>,
    ) {
        let text = match detail {
            Some(detail) => format!("{}: {detail}", reason.as_str()),
            None => reason.as_str().to_owned(),
        };
        self.end(id, reason, text, InstanceState::Terminated, now);
    }

    /// Ends a request that never ran in `failed` (DESIGN §16); `reason` is shown as is
    /// (`image_pull_failed: …`). Like every end, it is charged only for what ran.
    pub(super) fn fail(&mut self, id: &InstanceId, reason: String, now: DateTime<Utc>) {
        self.end(id, EndReason::Failed, reason, InstanceState::Failed, now);
    }

    /// Ends an instance in `state` (terminated or failed).
    fn end(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        text: String,
        state: InstanceState,
        now: DateTime<Utc>,
    ) {
        if self.instances.get(id).is_none_or(|i| i.is_terminated()) {
            return;
        }
        // The run is charged up to its end, in the same commit as the end itself.
        self.meter_instance(id, now, true);
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.state == InstanceState::Queued {
            self.queue.remove(&QueueKey::of(instance));
        }
        if let Some(at) = instance.termination_time {
            self.deadlines.remove(&(at, id.clone()));
        }
        instance.state = state;
        instance.termination_reason = Some(reason);
        instance.reason = Some(text);
        instance.ended_at = Some(now);
        let host_id = instance.host_id.clone();
        let instance = instance.clone();
        if let Some(host_id) = &host_id
            && let Some(host) = self.registry.get_mut(host_id)
        {
            host.release(id);
            self.touch_host(host_id);
        }
        self.touch_instance(id);
        let kind = if state == InstanceState::Failed {
            EventKind::InstanceFailed
        } else {
            EventKind::InstanceTerminated
        };
        self.event(
            now,
            kind,
            Some(&instance),
            None,
            serde_json::json!({
                "state": state.as_str(), "reason": reason.as_str(), "exit_code": instance.exit_code,
                "detail": instance.reason,
            }),
        );
        self.place_queued(now);
        self.deployment_instance_ended(&instance, now);
    }
}

fn operator_account() -> Account {
    Account {
        id: AccountId::from(OPERATOR),
        name: "operator".into(),
        balance: Money::ZERO,
        token_hash: String::new(),
        webhook_url: None,
        overdue_since: None,
        overdue_deadline: None,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        unlimited: true,
        disabled: false,
    }
}
