//! An index of the registry's hosts by what they can take, so that placement and pool usage
//! cost O(classes · log hosts) instead of a walk over every host and unit.
//!
//! Hosts whose units all carry one GPU model form a class per (model, cores and memory per
//! unit, guest runtimes): every host of a class matches the same requests. Per class the index keeps the
//! connected hosts with free units ordered by (free units, id) — best fit first, exactly
//! placement's tie-break — and how many healthy units the non-lost hosts have. Hosts mixing
//! GPU models are rare; they are listed apart and examined one by one. Per exact model it
//! also keeps the healthy and free unit counts that pool usage sums.

use super::{Host, HostState};
use gpuspot_common::HostId;
use gpuspot_common::protocol::GuestRuntime;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What makes hosts interchangeable for placement.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shape {
    pub model: String,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    /// How its hosts run guests (sorted): image requests need `Container`.
    pub runtimes: Vec<GuestRuntime>,
}

#[derive(Debug)]
pub struct Class {
    /// Connected hosts with free units, by (free units, host id).
    free: BTreeSet<(usize, HostId)>,
    /// Healthy units on non-lost hosts → how many hosts have that many.
    healthy: BTreeMap<usize, usize>,
}

impl Class {
    /// The best-fitting host with at least `k` free units: (free units, id).
    pub fn best_fit(&self, k: usize) -> Option<&(usize, HostId)> {
        self.free.range((k, HostId::default())..).next()
    }

    /// The most healthy units any non-lost host of the class has.
    pub fn most_healthy(&self) -> usize {
        self.healthy.keys().next_back().copied().unwrap_or(0)
    }
}

/// Healthy units of one exact model on non-lost hosts, how many are free on hosts that take
/// placements, and how many hold an instance or are promised to a queued request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelUsage {
    pub total: usize,
    pub free: usize,
    pub used: usize,
}

/// A host's place in a class.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    shape: Shape,
    /// Free units, when connected and at least one is free.
    free: Option<usize>,
    /// Healthy units, when not lost.
    healthy: Option<usize>,
}

/// What one host contributed when it was last indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    member: Option<Member>,
    irregular: bool,
    models: Vec<(String, ModelUsage)>,
}

impl Entry {
    fn of(host: &Host) -> Self {
        let mut models: Vec<(String, ModelUsage)> = Vec::with_capacity(1);
        for slot in host.units.iter().filter(|s| s.unit.gpu.healthy) {
            let position = match models.iter().position(|(m, _)| *m == slot.unit.gpu.model) {
                Some(position) => position,
                None => {
                    models.push((slot.unit.gpu.model.clone(), ModelUsage::default()));
                    models.len() - 1
                }
            };
            let usage = &mut models[position].1;
            if host.state() != HostState::Lost {
                usage.total += 1;
                // A unit promised to a request (docs/contracts.md#market) is spoken for: no one
                // else may take it, so it is not on offer and it weighs on the price as a used one.
                usage.used += usize::from(slot.instance.is_some() || slot.promised.is_some());
            }
            if host.takes_placements() && slot.is_free() {
                usage.free += 1;
            }
        }
        let first = host.units.first();
        let single =
            first.is_some_and(|f| host.units.iter().all(|s| s.unit.gpu.model == f.unit.gpu.model));
        let member = first.filter(|_| single).map(|f| Member {
            shape: Shape {
                model: f.unit.gpu.model.clone(),
                cpu_cores: f.unit.cpu_cores,
                memory_gib: f.unit.memory_gib,
                runtimes: host.runtimes.clone(),
            },
            free: Some(host.free_units()).filter(|&n| n > 0 && host.takes_placements()),
            healthy: (host.state() != HostState::Lost).then(|| host.healthy_units()),
        });
        Self { member, irregular: first.is_some() && !single, models }
    }
}

#[derive(Debug, Default)]
pub struct HostIndex {
    entries: HashMap<HostId, Entry>,
    classes: BTreeMap<Shape, Class>,
    irregular: BTreeSet<HostId>,
    models: BTreeMap<String, ModelUsage>,
}

impl HostIndex {
    /// Brings the index in step with `host` (None: the host is gone).
    pub fn update(&mut self, id: &HostId, host: Option<&Host>) {
        let new = host.map(Entry::of);
        let old = self.entries.remove(id);
        if old == new {
            if let Some(entry) = new {
                self.entries.insert(id.clone(), entry);
            }
            return;
        }
        if let Some(old) = old {
            self.apply(id, &old, false);
        }
        if let Some(new) = new {
            self.apply(id, &new, true);
            self.entries.insert(id.clone(), new);
        }
    }

    /// Adds (`add`) or takes away what `entry` contributes.
    fn apply(&mut self, id: &HostId, entry: &Entry, add: bool) {
        for (model, usage) in &entry.models {
            let sum = self.models.entry(model.clone()).or_default();
            if add {
                sum.total += usage.total;
                sum.free += usage.free;
                sum.used += usage.used;
            } else {
                sum.total -= usage.total;
                sum.free -= usage.free;
                sum.used -= usage.used;
            }
        }
        if entry.irregular {
            if add {
                self.irregular.insert(id.clone());
            } else {
                self.irregular.remove(id);
            }
        }
        if let Some(member) = &entry.member {
            self.apply_member(id, member, add);
        }
    }

    fn apply_member(&mut self, id: &HostId, member: &Member, add: bool) {
        let class = self
            .classes
            .entry(member.shape.clone())
            .or_insert_with(|| Class { free: BTreeSet::new(), healthy: BTreeMap::new() });
        if let Some(free) = member.free {
            if add {
                class.free.insert((free, id.clone()));
            } else {
                class.free.remove(&(free, id.clone()));
            }
        }
        if let Some(healthy) = member.healthy {
            let count = class.healthy.entry(healthy).or_default();
            if add {
                *count += 1;
            } else {
                *count -= 1;
                if *count == 0 {
                    class.healthy.remove(&healthy);
                }
            }
        }
    }

    pub fn classes(&self) -> impl Iterator<Item = (&Shape, &Class)> {
        self.classes.iter()
    }

    /// Hosts whose units mix GPU models.
    pub fn irregular(&self) -> &BTreeSet<HostId> {
        &self.irregular
    }

    /// Unit counts per exact GPU model.
    pub fn models(&self) -> impl Iterator<Item = (&String, &ModelUsage)> {
        self.models.iter()
    }
}
