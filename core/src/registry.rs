//! Hosts as the coordinator knows them: inventory, units (who holds each), liveness.
//!
//! The registry keeps an [`index`] of its hosts by what they can take. Every way to change
//! a host (`insert`, `get_mut`, `iter_mut`) marks it, and the index catches up with the
//! marked hosts the next time it is read, so callers mutate hosts freely.
//!
//! A host the operator deletes (`host_removal`) leaves the registry and is remembered as
//! forgotten, so that an agent still holding its certificate cannot slip back in.

pub mod index;
pub mod link;
pub mod liveness;

use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{GpuStatus, GuestRuntime};
use gpuspot_common::{HostId, HostInventory, InstanceId, Unit, partition};
use index::HostIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Connected,
    /// The link dropped; instances keep their units until `host_lost_after`.
    Disconnected,
    /// Silent past `host_lost_after`: its instances ended with `host_lost`.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSlot {
    pub unit: Unit,
    pub instance: Option<InstanceId>,
    /// The queued regular request these units are promised to (docs/contracts.md#market). Not
    /// stored with the host: the request's own record is the promise, and restore marks it again.
    #[serde(skip)]
    pub promised: Option<InstanceId>,
}

impl UnitSlot {
    /// Healthy, held by nobody and promised to nobody: any request may take it.
    pub fn is_free(&self) -> bool {
        self.unit.gpu.healthy && self.instance.is_none() && self.promised.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub id: HostId,
    pub hostname: String,
    pub agent_version: String,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    pub units: Vec<UnitSlot>,
    /// How it can run guests, as its last hello said (docs/contracts.md#guests); sorted, no
    /// repeats.
    #[serde(default = "process_only")]
    pub runtimes: Vec<GuestRuntime>,
    /// Changed only through its transitions (`link`).
    state: HostState,
    pub joined_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Guests' host ports and the address they are reached at, as its last hello said.
    #[serde(default)]
    pub network: HostNetwork,
    /// The operator's cordon or drain (docs/contracts.md#operating-hosts).
    #[serde(default)]
    maintenance: Maintenance,
    /// Per GPU UUID, the utilisation its last heartbeat reported (not stored).
    #[serde(skip)]
    pub gpu_utilization: BTreeMap<String, u32>,
    /// Its failed GPUs, off the market until cleared ([`crate::faults`]).
    #[serde(default)]
    pub faults: crate::faults::HostFaults,
}

/// Whether the operator took a host out of service (docs/contracts.md#operating-hosts): a cordoned
/// host gets no new placements; a draining one also had every instance noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Maintenance {
    #[default]
    None,
    Cordoned,
    Draining,
}

/// Where a host's guests listen (docs/contracts.md#serving).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNetwork {
    /// Host ports handed to guests, inclusive.
    pub ports: (u16, u16),
    /// What `HOST` in an endpoint's `HOST:PORT` is.
    pub address: String,
}

impl Default for HostNetwork {
    fn default() -> Self {
        Self { ports: (20_000, 20_999), address: "127.0.0.1".to_owned() }
    }
}

impl Host {
    pub fn new(
        id: HostId,
        inventory: &HostInventory,
        agent_version: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            hostname: inventory.hostname.clone(),
            agent_version: agent_version.to_owned(),
            cpu_cores: inventory.cpu_cores,
            memory_gib: inventory.memory_gib,
            units: partition(inventory)
                .into_iter()
                .map(|unit| UnitSlot { unit, instance: None, promised: None })
                .collect(),
            runtimes: process_only(),
            state: HostState::Connected,
            joined_at: now,
            last_seen: now,
            network: HostNetwork::default(),
            maintenance: Maintenance::None,
            gpu_utilization: BTreeMap::new(),
            faults: Default::default(),
        }
    }

    /// Takes a fresh inventory from a (re)connecting agent, keeping who holds which GPU and
    /// to whom it is promised. Holders of GPUs that disappeared are returned: they cannot be
    /// running any more (a promise of such a GPU is found broken at the next pass).
    pub fn refresh_inventory(
        &mut self,
        inventory: &HostInventory,
        agent_version: &str,
    ) -> Vec<InstanceId> {
        let mut holders: BTreeMap<String, InstanceId> = self
            .units
            .iter()
            .filter_map(|s| Some((s.unit.gpu.uuid.clone(), s.instance.clone()?)))
            .collect();
        self.hostname = inventory.hostname.clone();
        self.agent_version = agent_version.to_owned();
        self.cpu_cores = inventory.cpu_cores;
        self.memory_gib = inventory.memory_gib;
        let mut promised: BTreeMap<String, InstanceId> = self
            .units
            .iter()
            .filter_map(|s| Some((s.unit.gpu.uuid.clone(), s.promised.clone()?)))
            .collect();
        self.units = partition(inventory)
            .into_iter()
            .map(|unit| {
                let instance = holders.remove(&unit.gpu.uuid);
                let promised = promised.remove(&unit.gpu.uuid);
                UnitSlot { unit, instance, promised }
            })
            .collect();
        self.faults.keep_unhealthy(&mut self.units);
        holders.into_values().collect()
    }

    /// Takes the runtimes a hello reported; returns whether they changed.
    pub fn set_runtimes(&mut self, runtimes: &[GuestRuntime]) -> bool {
        let mut runtimes = runtimes.to_vec();
        runtimes.sort();
        runtimes.dedup();
        let changed = self.runtimes != runtimes;
        self.runtimes = runtimes;
        changed
    }

    /// Whether new instances may be placed here: connected and not cordoned or draining.
    pub fn takes_placements(&self) -> bool {
        self.state == HostState::Connected && self.maintenance == Maintenance::None
    }

    /// Every state [`Host::shown_state`] may say (what `?state=` may name).
    pub const SHOWN_STATES: [&'static str; 6] =
        ["connected", "cordoned", "draining", "drained", "disconnected", "lost"];

    /// The state users see: the link's, or the operator's cordon / drain while connected
    /// (`drained` once a draining host holds nothing).
    pub fn shown_state(&self) -> &'static str {
        match (self.state, self.maintenance) {
            (HostState::Disconnected, _) => "disconnected",
            (HostState::Lost, _) => "lost",
            (HostState::Connected, Maintenance::None) => "connected",
            (HostState::Connected, Maintenance::Cordoned) => "cordoned",
            (HostState::Connected, Maintenance::Draining) => {
                if self.units.iter().all(|s| s.instance.is_none()) { "drained" } else { "draining" }
            }
        }
    }

    pub fn free_units(&self) -> usize {
        self.units.iter().filter(|s| s.is_free()).count()
    }

    pub fn healthy_units(&self) -> usize {
        self.units.iter().filter(|s| s.unit.gpu.healthy).count()
    }

    /// Marks the units with these GPU UUIDs as promised to `to`.
    pub fn promise(&mut self, gpu_uuids: &[String], to: &InstanceId) {
        for slot in self.units.iter_mut().filter(|s| gpu_uuids.contains(&s.unit.gpu.uuid)) {
            slot.promised = Some(to.clone());
        }
    }

    /// Ends every promise of this host's units to `to`.
    pub fn forget_promise(&mut self, to: &InstanceId) {
        for slot in &mut self.units {
            if slot.promised.as_ref() == Some(to) {
                slot.promised = None;
            }
        }
    }

    pub fn release(&mut self, instance: &InstanceId) {
        for slot in &mut self.units {
            if slot.instance.as_ref() == Some(instance) {
                slot.instance = None;
            }
        }
    }

    /// Applies heartbeat GPU health (and notes utilisation); returns whether health changed.
    pub fn apply_gpu_status(&mut self, gpus: &[GpuStatus]) -> bool {
        let mut changed = false;
        for status in gpus {
            match status.utilization_percent {
                Some(percent) => self.gpu_utilization.insert(status.uuid.clone(), percent),
                None => self.gpu_utilization.remove(&status.uuid),
            };
            let healthy = status.healthy && !self.faults.has_failed(&status.uuid);
            for slot in self.units.iter_mut().filter(|s| s.unit.gpu.uuid == status.uuid) {
                if slot.unit.gpu.healthy != healthy {
                    slot.unit.gpu.healthy = healthy;
                    changed = true;
                }
            }
        }
        changed
    }
}

/// What a host offers until its agent says otherwise (and what records from before runtimes
/// were reported held: every agent then ran processes).
fn process_only() -> Vec<GuestRuntime> {
    vec![GuestRuntime::Process]
}

/// A host the operator deleted, for the store to forget (its row) and revoke (its
/// certificates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedHost {
    pub id: HostId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Registry {
    hosts: BTreeMap<HostId, Host>,
    /// Behind a lock only so that reads (`&self`) can catch the index up.
    index: Mutex<Indexed>,
    /// Removed since the store last took them.
    removed: Vec<RemovedHost>,
    /// Every host removed while this process ran. The store revokes their certificates,
    /// but a hello checked just before that commit must still be turned away.
    forgotten: HashSet<HostId>,
}

#[derive(Debug, Default)]
struct Indexed {
    index: HostIndex,
    liveness: liveness::Liveness,
    /// Hosts handed out for mutation since the index last caught up.
    stale: HashSet<HostId>,
}

/// The index, caught up with every host. Hold it briefly: reading the index again while
/// this lives would deadlock.
pub struct IndexGuard<'a>(MutexGuard<'a, Indexed>);

impl std::ops::Deref for IndexGuard<'_> {
    type Target = HostIndex;

    fn deref(&self) -> &HostIndex {
        &self.0.index
    }
}

impl Registry {
    fn stale(&mut self) -> &mut HashSet<HostId> {
        &mut self.index.get_mut().unwrap_or_else(PoisonError::into_inner).stale
    }

    pub fn insert(&mut self, host: Host) {
        self.stale().insert(host.id.clone());
        self.hosts.insert(host.id.clone(), host);
    }

    pub fn get(&self, id: &HostId) -> Option<&Host> {
        self.hosts.get(id)
    }

    /// How reasons name a host: its hostname (its id once it is gone).
    pub fn hostname(&self, id: &HostId) -> String {
        self.hosts.get(id).map_or_else(|| id.to_string(), |h| h.hostname.clone())
    }

    pub fn get_mut(&mut self, id: &HostId) -> Option<&mut Host> {
        if self.hosts.contains_key(id) {
            self.stale().insert(id.clone());
        }
        self.hosts.get_mut(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Host> {
        let ids: Vec<HostId> = self.hosts.keys().cloned().collect();
        self.stale().extend(ids);
        self.hosts.values_mut()
    }

    /// The index of hosts by what they can take, caught up with every change.
    pub fn index(&self) -> IndexGuard<'_> {
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let Indexed { index, liveness, stale } = &mut *guard;
        for id in stale.drain() {
            index.update(&id, self.hosts.get(&id));
            liveness.update(&id, self.hosts.get(&id));
        }
        IndexGuard(guard)
    }

    /// The earliest last-seen time of a host that is not lost, later than `after`.
    pub fn earliest_seen_after(&self, after: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        self.index().0.liveness.earliest_after(after)
    }

    /// Hosts not lost whose last word came before `before`.
    pub fn silent_before(&self, before: DateTime<Utc>) -> Vec<HostId> {
        self.index().0.liveness.silent_before(before)
    }

    /// Takes `id` out for good (the index catches up on its next read); the host as it was.
    pub fn remove(&mut self, id: &HostId, now: DateTime<Utc>) -> Option<Host> {
        let host = self.hosts.remove(id)?;
        self.stale().insert(id.clone());
        self.removed.push(RemovedHost { id: id.clone(), at: now });
        self.forgotten.insert(id.clone());
        Some(host)
    }

    /// Hosts removed since the last call, for the store.
    pub fn take_removed(&mut self) -> Vec<RemovedHost> {
        std::mem::take(&mut self.removed)
    }

    /// Whether the operator deleted this host while this process ran.
    pub fn is_forgotten(&self, id: &HostId) -> bool {
        self.forgotten.contains(id)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}
