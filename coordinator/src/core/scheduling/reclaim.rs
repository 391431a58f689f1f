//! Reclaiming spot capacity for a regular request that finds no free units (DESIGN §4): on
//! the host where it then fits, the lowest spot bids whose hold is over get their notice.

use super::super::cluster::Cluster;
use super::super::model::{EndReason, InstanceRequest, InstanceState};
use super::super::placement::{self, ModelFilter};
use super::super::registry::UnitSlot;
use super::Pass;
use super::occupancy::matching_slots;
use chrono::{DateTime, Utc};
use gpuspot_common::{HostId, InstanceId};

/// Where room can be made: the host, and the spot instances to reclaim there.
struct Plan {
    host_id: HostId,
    victims: Vec<InstanceId>,
    /// Fewest victims, then the lowest bids: the cheapest room to make.
    cost: (usize, i64),
}

impl Cluster {
    /// Schedules the terminations that make room for `request` on the cheapest host.
    /// Units already on their way out count, and so do those claimed earlier in the same
    /// pass, so repeated passes do not reclaim twice. Returns the waiting reason.
    pub(super) fn reclaim_for(
        &mut self,
        request: &InstanceRequest,
        pass: &mut Pass,
        now: DateTime<Utc>,
    ) -> String {
        let Some(plan) = self.cheapest_plan(request, pass, now) else {
            return format!(
                "waiting for capacity: no host can make room for {} now: {}",
                placement::describe(request),
                pass.occupancy(self, request, now).describe()
            );
        };
        *pass.claimed.entry(plan.host_id.clone()).or_default() += request.gpu.count as usize;
        if !plan.victims.is_empty() {
            pass.forget_occupancy();
        }
        for victim in &plan.victims {
            self.give_notice(victim, EndReason::ReclaimedCapacity, now);
        }
        format!("waiting for reclaimed capacity on host {}", plan.host_id)
    }

    fn cheapest_plan(
        &self,
        request: &InstanceRequest,
        pass: &Pass,
        now: DateTime<Utc>,
    ) -> Option<Plan> {
        let mut best: Option<Plan> = None;
        let filter = ModelFilter::new(&request.gpu);
        for host in self.registry.iter().filter(|h| h.takes_placements()) {
            let already = pass.claimed.get(&host.id).copied().unwrap_or(0);
            let slots = matching_slots(host, request, &filter);
            for wanted in 0..filter.len() {
                let of_model = slots.iter().filter(|s| filter.names(wanted, &s.unit.gpu.model));
                let of_model: Vec<&UnitSlot> = of_model.copied().collect();
                let Some(victims) = self.reclaim_plan(&of_model, request, already, now) else {
                    continue;
                };
                let bids = victims.iter().filter_map(|id| self.bid_of(id)).sum::<i64>();
                let cost = (victims.len(), bids);
                if best.as_ref().is_none_or(|b| cost < b.cost) {
                    best = Some(Plan { host_id: host.id.clone(), victims, cost });
                }
            }
        }
        best
    }

    fn bid_of(&self, id: &InstanceId) -> Option<i64> {
        self.instances.get(id)?.request.billing.bid().map(|b| b.micros())
    }

    /// On one host, among `slots` (its matching units of one wanted model): the spot
    /// instances (lowest bids first, then the newest) whose termination would make room
    /// for `request`, counting units already coming free. None if it cannot fit.
    fn reclaim_plan(
        &self,
        slots: &[&UnitSlot],
        request: &InstanceRequest,
        already_claimed: usize,
        now: DateTime<Utc>,
    ) -> Option<Vec<InstanceId>> {
        let k = request.gpu.count as usize;
        if slots.len() < k {
            return None;
        }
        let mut coming = slots.iter().filter(|s| s.instance.is_none()).count();
        let mut holders: Vec<(i64, u64, InstanceId, usize)> = Vec::new();
        for slot in slots {
            let Some(instance) = slot.instance.as_ref().and_then(|id| self.instances.get(id))
            else {
                continue;
            };
            match instance.state() {
                InstanceState::TerminationScheduled | InstanceState::Stopping => coming += 1,
                InstanceState::Running
                    if instance.reclaimable(now) && !holders.iter().any(|h| h.2 == instance.id) =>
                {
                    let bid = instance.request.billing.bid().map_or(i64::MAX, |b| b.micros());
                    let newest_first = u64::MAX - instance.seq;
                    let units = instance.gpu_uuids().len();
                    holders.push((bid, newest_first, instance.id.clone(), units));
                }
                _ => {}
            }
        }
        let mut available = coming.saturating_sub(already_claimed);
        holders.sort();
        let mut victims = Vec::new();
        for (bid, _, id, units) in holders {
            if available >= k || bid == i64::MAX {
                break;
            }
            available += units;
            victims.push(id);
        }
        (available >= k).then_some(victims)
    }
}
