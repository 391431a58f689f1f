//! What holds the hosts that match a request, for waiting reasons that say what is true
//! (issue 12) and no more than its owner may know (issue 25): which hosts match, by
//! hostname; how many of their units are busy, held by the owner's own instances, promised
//! to a request that reclaimed them, or already leaving; or why a host takes nothing now.

use super::super::cluster::Cluster;
use super::super::guest::host_runs;
use super::super::model::InstanceRequest;
use super::super::placement::ModelFilter;
use super::super::registry::{Host, HostState, UnitSlot};
use gpuspot_common::AccountId;
use std::collections::BTreeSet;

/// Matching hosts named in a reason; the rest are counted.
const NAMED_HOSTS: usize = 3;

/// The matching hosts' units, by what holds them, as one account may know it: its own
/// instances apart, everyone else's only as busy (a tenant learns a host is busy, not whose
/// or which instances hold it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Hostnames.
    pub hosts: Vec<String>,
    /// GPU models of the matching units (a spot bid is checked against their prices).
    pub models: BTreeSet<String>,
    pub free: usize,
    /// Held by other accounts' instances.
    pub busy: usize,
    /// Held by the account's own instances.
    pub yours: usize,
    /// Held by instances with a termination scheduled or stopping: their units come free.
    pub leaving: usize,
    /// Promised to a request that reclaimed them (docs/contracts.md#market).
    pub promised: usize,
    /// Matching hosts that take no placements now, by their state (`disconnected`, …).
    pub unavailable: Vec<(String, String)>,
}

/// The healthy units of `host` that could serve `request`: of a wanted model the host has
/// at least `k` of, on a host that runs its guest with shares in the requested ranges.
/// `filter` is the request's, resolved once for every host.
pub fn matching_slots<'h>(
    host: &'h Host,
    request: &InstanceRequest,
    filter: &ModelFilter,
) -> Vec<&'h UnitSlot> {
    let k = request.gpu.count as usize;
    let Some(first) = host.units.first() else { return Vec::new() };
    let fits_share = request.cpu_cores.contains(u64::from(first.unit.cpu_cores) * k as u64)
        && request.memory_gib.contains(first.unit.memory_gib * k as u64);
    if k == 0 || !fits_share || !host_runs(host, request) {
        return Vec::new();
    }
    let healthy_of = |wanted: usize| {
        host.units
            .iter()
            .filter(|s| s.unit.gpu.healthy && filter.names(wanted, &s.unit.gpu.model))
            .count()
    };
    let usable: Vec<usize> = (0..filter.len()).filter(|&w| healthy_of(w) >= k).collect();
    host.units
        .iter()
        .filter(|s| {
            s.unit.gpu.healthy && usable.iter().any(|&w| filter.names(w, &s.unit.gpu.model))
        })
        .collect()
}

impl Cluster {
    /// Every known host that matches `request`, and what holds its units, as `account`
    /// may know it.
    pub(super) fn occupancy(&self, request: &InstanceRequest, account: &AccountId) -> Occupancy {
        let mut occupancy = Occupancy::default();
        let filter = ModelFilter::new(&request.gpu);
        for host in self.registry.iter().filter(|h| h.state() != HostState::Lost) {
            let slots = matching_slots(host, request, &filter);
            if slots.is_empty() {
                continue;
            }
            occupancy.hosts.push(host.hostname.clone());
            if !host.takes_placements() {
                let state = host.shown_state().to_owned();
                occupancy.unavailable.push((host.hostname.clone(), state));
            }
            for slot in slots {
                occupancy.models.insert(slot.unit.gpu.model.clone());
                if slot.instance.is_some() || host.takes_placements() {
                    self.count_holder(slot, account, &mut occupancy);
                }
            }
        }
        occupancy
    }

    fn count_holder(&self, slot: &UnitSlot, account: &AccountId, occupancy: &mut Occupancy) {
        if slot.promised.is_some() {
            occupancy.promised += 1;
            return;
        }
        let Some(instance) = slot.instance.as_ref().and_then(|id| self.instances.get(id)) else {
            occupancy.free += usize::from(slot.instance.is_none());
            return;
        };
        if instance.is_draining() {
            occupancy.leaving += 1;
        } else if instance.account_id == *account {
            occupancy.yours += 1;
        } else {
            occupancy.busy += 1;
        }
    }
}

impl Occupancy {
    /// E.g. `1 matching host (gpu-a): 8 units busy`.
    pub fn describe(&self) -> String {
        if self.hosts.is_empty() {
            return "no known host matches".to_owned();
        }
        let mut names: Vec<String> = self.hosts.iter().take(NAMED_HOSTS).cloned().collect();
        if self.hosts.len() > NAMED_HOSTS {
            names.push(format!("{} more", self.hosts.len() - NAMED_HOSTS));
        }
        let hosts = match self.hosts.len() {
            1 => "1 matching host".to_owned(),
            n => format!("{n} matching hosts"),
        };
        format!("{hosts} ({}): {}", names.join(", "), self.holders().join(", "))
    }

    fn holders(&self) -> Vec<String> {
        let units = |n: usize| if n == 1 { "1 unit".to_owned() } else { format!("{n} units") };
        let mut parts = Vec::new();
        let mut count = |n: usize, what: &str| {
            if n > 0 {
                let lead = if parts.is_empty() { units(n) } else { n.to_string() };
                parts.push(format!("{lead} {what}"));
            }
        };
        count(self.busy, "busy");
        count(self.yours, "held by your own instances");
        count(self.promised, "promised to a request that reclaimed them");
        count(self.leaving, "already leaving (termination scheduled)");
        if self.free > 0 {
            parts.push(format!("{} free, too few on any one host", units(self.free)));
        }
        for (host, state) in &self.unavailable {
            parts.push(format!("host {host} is {state}"));
        }
        parts
    }
}
