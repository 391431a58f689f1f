//! What holds the hosts that match a request, for waiting reasons that say what is true
//! (issue 12): which hosts match, and whose instances hold their units (regular ones,
//! spot ones in their hold period, ones already leaving), or why a host takes nothing now.

use super::super::cluster::Cluster;
use super::super::guest::host_runs;
use super::super::model::{InstanceRequest, InstanceState};
use super::super::placement::ModelFilter;
use super::super::registry::{Host, HostState, UnitSlot};
use chrono::{DateTime, SecondsFormat, Utc};
use gpuspot_common::HostId;
use std::collections::BTreeSet;

/// Matching hosts named in a reason; the rest are counted.
const NAMED_HOSTS: usize = 3;

/// The matching hosts' units, by what holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub hosts: Vec<HostId>,
    /// GPU models of the matching units (a spot bid is checked against their prices).
    pub models: BTreeSet<String>,
    pub free: usize,
    pub regular: usize,
    /// Spot instances not yet past their hold (those still starting included).
    pub spot_in_hold: usize,
    pub first_hold_end: Option<DateTime<Utc>>,
    pub spot_past_hold: usize,
    /// Instances with a termination scheduled or stopping: their units come free.
    pub leaving: usize,
    /// Matching hosts that take no placements now, by their state (`disconnected`, …).
    pub unavailable: Vec<(HostId, String)>,
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
    /// Every known host that matches `request`, and what holds its units at `now`.
    pub(super) fn occupancy(&self, request: &InstanceRequest, now: DateTime<Utc>) -> Occupancy {
        let mut occupancy = Occupancy::default();
        let filter = ModelFilter::new(&request.gpu);
        for host in self.registry.iter().filter(|h| h.state != HostState::Lost) {
            let slots = matching_slots(host, request, &filter);
            if slots.is_empty() {
                continue;
            }
            occupancy.hosts.push(host.id.clone());
            if !host.takes_placements() {
                occupancy.unavailable.push((host.id.clone(), host.shown_state().to_owned()));
            }
            for slot in slots {
                occupancy.models.insert(slot.unit.gpu.model.clone());
                if slot.instance.is_some() || host.takes_placements() {
                    self.count_holder(slot, now, &mut occupancy);
                }
            }
        }
        occupancy
    }

    fn count_holder(&self, slot: &UnitSlot, now: DateTime<Utc>, occupancy: &mut Occupancy) {
        let Some(instance) = slot.instance.as_ref().and_then(|id| self.instances.get(id)) else {
            occupancy.free += usize::from(slot.instance.is_none());
            return;
        };
        match (instance.state(), instance.request.billing.bid()) {
            (InstanceState::TerminationScheduled | InstanceState::Stopping, _) => {
                occupancy.leaving += 1
            }
            (_, None) => occupancy.regular += 1,
            (_, Some(_)) if instance.reclaimable(now) => occupancy.spot_past_hold += 1,
            (_, Some(_)) => {
                occupancy.spot_in_hold += 1;
                if let Some(end) = instance.hold_until() {
                    occupancy.first_hold_end =
                        Some(occupancy.first_hold_end.map_or(end, |first| first.min(end)));
                }
            }
        }
    }
}

impl Occupancy {
    /// E.g. `1 matching host (h-1): 8 units held by regular instances`.
    pub fn describe(&self) -> String {
        if self.hosts.is_empty() {
            return "no known host matches".to_owned();
        }
        let mut names: Vec<String> =
            self.hosts.iter().take(NAMED_HOSTS).map(ToString::to_string).collect();
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
        let mut held = |n: usize, by: String| {
            if n > 0 {
                let lead =
                    if parts.is_empty() { format!("{} held", units(n)) } else { n.to_string() };
                parts.push(format!("{lead} by {by}"));
            }
        };
        held(self.regular, "regular instances".into());
        let hold_end = self.first_hold_end.map_or(String::new(), |end| {
            format!(" (the first ends at {})", end.to_rfc3339_opts(SecondsFormat::Secs, true))
        });
        held(self.spot_in_hold, format!("spot instances in their hold period{hold_end}"));
        held(self.spot_past_hold, "spot instances past their hold".into());
        if self.leaving > 0 {
            parts.push(format!("{} already leaving (termination scheduled)", units(self.leaving)));
        }
        if self.free > 0 {
            parts.push(format!("{} free, too few on any one host", units(self.free)));
        }
        for (host, state) in &self.unavailable {
            parts.push(format!("host {host} is {state}"));
        }
        parts
    }
}
