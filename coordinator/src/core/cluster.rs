//! The coordinator's state machine: instances, the queue and the host registry. Operations
//! mutate state and record what changed in an outbox ([`Changes`]); the actor takes the
//! outbox, commits it to the store, and only then sends the messages in it.

use super::model::{EndReason, Instance, InstanceRequest, InstanceState};
use super::placement::{self, NoFit, Placement};
use super::pools;
use super::registry::{Host, HostState, Registry};
use crate::config::{PoolSettings, Timers};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{Assignment, CoordinatorMessage, GuestMetadata};
use gpuspot_common::{AccountId, HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Something that happened, for the event log, the SSE stream and webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub account_id: Option<AccountId>,
    pub instance_id: Option<InstanceId>,
    pub host_id: Option<HostId>,
    pub data: serde_json::Value,
}

/// A message to send to a host once the changes that led to it are durable.
pub type Effect = (HostId, CoordinatorMessage);

/// Everything one or more operations changed, to persist and then act on.
#[derive(Debug, Default)]
pub struct Changes {
    pub instances: Vec<Instance>,
    pub hosts: Vec<Host>,
    pub events: Vec<Event>,
    pub sends: Vec<Effect>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.hosts.is_empty()
            && self.events.is_empty()
            && self.sends.is_empty()
    }
}

pub struct Cluster {
    pub(super) registry: Registry,
    pub(super) instances: BTreeMap<InstanceId, Instance>,
    /// Queued instances by creation order.
    pub(super) queue: BTreeMap<u64, InstanceId>,
    pub(super) pools: Vec<PoolSettings>,
    pub(super) timers: Timers,
    next_seq: u64,
    next_event_id: u64,
    dirty_instances: BTreeSet<InstanceId>,
    dirty_hosts: BTreeSet<HostId>,
    events: Vec<Event>,
    sends: Vec<Effect>,
}

impl Cluster {
    pub fn new(pools: Vec<PoolSettings>, timers: Timers) -> Self {
        Self {
            registry: Registry::default(),
            instances: BTreeMap::new(),
            queue: BTreeMap::new(),
            pools,
            timers,
            next_seq: 1,
            next_event_id: 1,
            dirty_instances: BTreeSet::new(),
            dirty_hosts: BTreeSet::new(),
            events: Vec::new(),
            sends: Vec::new(),
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
                self.queue.insert(instance.seq, instance.id.clone());
            }
            self.instances.insert(instance.id.clone(), instance);
        }
        self.next_event_id = last_event_id + 1;
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
        Changes {
            instances,
            hosts,
            events: std::mem::take(&mut self.events),
            sends: std::mem::take(&mut self.sends),
        }
    }

    pub(super) fn touch_instance(&mut self, id: &InstanceId) {
        self.dirty_instances.insert(id.clone());
    }

    pub(super) fn touch_host(&mut self, id: &HostId) {
        self.dirty_hosts.insert(id.clone());
    }

    pub(super) fn send(&mut self, host: &HostId, message: CoordinatorMessage) {
        self.sends.push((host.clone(), message));
    }

    pub(super) fn event(
        &mut self,
        now: DateTime<Utc>,
        kind: &str,
        instance: Option<&Instance>,
        host: Option<&HostId>,
        data: serde_json::Value,
    ) {
        let event = Event {
            id: self.next_event_id,
            at: now,
            kind: kind.to_owned(),
            account_id: instance.map(|i| i.account_id.clone()),
            instance_id: instance.map(|i| i.id.clone()),
            host_id: host
                .cloned()
                .or_else(|| instance.and_then(|i| i.host_id.clone())),
            data,
        };
        self.next_event_id += 1;
        self.events.push(event);
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
        let id = InstanceId::random();
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut instance = Instance::new(id.clone(), account, request, now, seq);
        if instance.request.name.is_empty() {
            instance.request.name = id.to_string();
        }
        self.event(
            now,
            "instance_created",
            Some(&instance),
            None,
            serde_json::json!({}),
        );
        self.instances.insert(id.clone(), instance);
        self.queue.insert(seq, id.clone());
        self.touch_instance(&id);
        self.place_queued(now);
        id
    }

    /// Places whatever in the queue fits now, oldest first; the rest get a fresh reason.
    pub fn place_queued(&mut self, now: DateTime<Utc>) {
        let queued: Vec<(u64, InstanceId)> =
            self.queue.iter().map(|(s, i)| (*s, i.clone())).collect();
        for (seq, id) in queued {
            let Some(request) = self.instances.get(&id).map(|i| i.request.clone()) else {
                self.queue.remove(&seq);
                continue;
            };
            match placement::place(&self.registry, &request, |m| self.list_price(m)) {
                Ok(placement) => {
                    self.queue.remove(&seq);
                    self.assign(&id, placement, now);
                }
                Err(no_fit) => self.set_waiting_reason(&id, &no_fit),
            }
        }
    }

    fn set_waiting_reason(&mut self, id: &InstanceId, no_fit: &NoFit) {
        if let Some(instance) = self.instances.get_mut(id)
            && instance.reason.as_deref() != Some(no_fit.reason())
        {
            instance.reason = Some(no_fit.reason().to_owned());
            self.touch_instance(id);
        }
    }

    fn assign(&mut self, id: &InstanceId, placement: Placement, now: DateTime<Utc>) {
        let Some(host) = self.registry.get_mut(&placement.host_id) else {
            return;
        };
        let gpu_uuids: Vec<String> = placement
            .unit_indices
            .iter()
            .map(|&i| {
                host.units[i].instance = Some(id.clone());
                host.units[i].unit.gpu.uuid.clone()
            })
            .collect();
        let price = self.list_price(&placement.gpu_model);
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.state = InstanceState::Scheduled;
        instance.reason = None;
        instance.host_id = Some(placement.host_id.clone());
        instance.gpu_uuids = gpu_uuids;
        instance.gpu_model = Some(placement.gpu_model.clone());
        instance.cpu_cores = Some(placement.cpu_cores);
        instance.memory_gib = Some(placement.memory_gib);
        instance.price = Some(price);
        let assignment = self.assignment(id);
        self.touch_host(&placement.host_id);
        self.touch_instance(id);
        let instance = self.instances[id].clone();
        self.event(
            now,
            "instance_placed",
            Some(&instance),
            None,
            serde_json::json!({ "gpu_uuids": instance.gpu_uuids }),
        );
        if let Some(assignment) = assignment {
            self.send(&placement.host_id, CoordinatorMessage::Start(assignment));
        }
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
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.is_terminated() {
            return;
        }
        if instance.state == InstanceState::Queued {
            self.queue.remove(&instance.seq);
        }
        instance.state = InstanceState::Terminated;
        instance.termination_reason = Some(reason);
        instance.reason = Some(match detail {
            Some(detail) => format!("{}: {detail}", reason.as_str()),
            None => reason.as_str().to_owned(),
        });
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
        self.event(now, "instance_terminated", Some(&instance), None, serde_json::json!({
            "reason": reason.as_str(), "exit_code": instance.exit_code, "detail": instance.reason,
        }));
        self.place_queued(now);
    }
}
