//! Reclaiming spot capacity for a regular request that finds no free units
//! (docs/contracts.md#market): on the host where it then fits, the lowest spot bids whose hold is
//! over get their notice, and the units so made are promised to it ([`super::super::promises`]).

use super::super::cluster::Cluster;
use super::super::model::{EndReason, InstanceRequest};
use super::super::placement::{self, ModelFilter};
use super::super::registry::UnitSlot;
use super::Pass;
use super::occupancy::matching_slots;
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use gpuspot_common::{HostId, InstanceId};

/// Where room can be made: the host, the spot instances to reclaim there, and the units
/// the request is then owed.
struct Plan {
    host_id: HostId,
    victims: Vec<InstanceId>,
    /// Free ones first, then those already leaving, then the victims'.
    units: Vec<String>,
    /// Fewest victims, then the lowest bids: the cheapest room to make.
    cost: (usize, i64),
}

/// A spot instance that could be reclaimed: (bid, newest first, id, its matching units).
type Holder = (i64, u64, InstanceId, Vec<String>);

impl Cluster {
    /// Schedules the terminations that make room for request `id` on the cheapest host,
    /// and promises it the units so made (docs/contracts.md#market). Units already on their way out
    /// count; units promised to another request do not. Returns the waiting reason.
    pub(super) fn reclaim_for(
        &mut self,
        id: &InstanceId,
        request: &InstanceRequest,
        account: &AccountId,
        pass: &mut Pass,
        now: DateTime<Utc>,
    ) -> String {
        let Some(plan) = self.cheapest_plan(request, now) else {
            return format!(
                "waiting for capacity: no host can make room for {} now: {}",
                placement::describe(request),
                pass.occupancy(self, request, account).describe()
            );
        };
        pass.forget_occupancy();
        self.promise(id, &plan.host_id, plan.units);
        for victim in &plan.victims {
            self.give_notice(victim, EndReason::ReclaimedCapacity, now);
        }
        self.owed_reason(&plan.host_id)
    }

    /// The reason of a request waiting for the units it is owed on `host_id`.
    pub(super) fn owed_reason(&self, host_id: &HostId) -> String {
        format!("waiting for reclaimed capacity on host {}", self.registry.hostname(host_id))
    }

    fn cheapest_plan(&self, request: &InstanceRequest, now: DateTime<Utc>) -> Option<Plan> {
        let mut best: Option<Plan> = None;
        let filter = ModelFilter::new(&request.gpu);
        for host in self.registry.iter().filter(|h| h.takes_placements()) {
            let slots = matching_slots(host, request, &filter);
            for wanted in 0..filter.len() {
                let of_model = slots.iter().filter(|s| filter.names(wanted, &s.unit.gpu.model));
                let of_model: Vec<&UnitSlot> = of_model.copied().collect();
                let Some((victims, units)) = self.reclaim_plan(&of_model, request, now) else {
                    continue;
                };
                let bids = victims.iter().filter_map(|id| self.bid_of(id)).sum::<i64>();
                let cost = (victims.len(), bids);
                if best.as_ref().is_none_or(|b| cost < b.cost) {
                    best = Some(Plan { host_id: host.id.clone(), victims, units, cost });
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
    /// for `request`, counting units already coming free, and the units it would be owed.
    /// None if it cannot fit.
    fn reclaim_plan(
        &self,
        slots: &[&UnitSlot],
        request: &InstanceRequest,
        now: DateTime<Utc>,
    ) -> Option<(Vec<InstanceId>, Vec<String>)> {
        let k = request.gpu.count as usize;
        let Room { free, leaving, mut holders } = self.room(slots, now);
        let mut units: Vec<String> = free.into_iter().chain(leaving).take(k).collect();
        holders.sort();
        let mut victims = Vec::new();
        for (bid, _, id, theirs) in holders {
            if units.len() >= k || bid == i64::MAX {
                break;
            }
            units.extend(theirs);
            victims.push(id);
        }
        units.truncate(k);
        (units.len() == k).then_some((victims, units))
    }

    /// What of `slots` could serve a request, leaving out units promised to another.
    fn room(&self, slots: &[&UnitSlot], now: DateTime<Utc>) -> Room {
        let mut room = Room::default();
        for slot in slots.iter().filter(|s| s.promised.is_none()) {
            let uuid = slot.unit.gpu.uuid.clone();
            let Some(holder) = &slot.instance else {
                room.free.push(uuid);
                continue;
            };
            let Some(instance) = self.instances.get(holder) else { continue };
            if instance.is_draining() {
                room.leaving.push(uuid);
            } else if instance.reclaimable(now) {
                match room.holders.iter_mut().find(|h| h.2 == instance.id) {
                    Some(known) => known.3.push(uuid),
                    None => {
                        let bid = instance.request.billing.bid().map_or(i64::MAX, |b| b.micros());
                        let newest_first = u64::MAX - instance.seq;
                        room.holders.push((bid, newest_first, instance.id.clone(), vec![uuid]));
                    }
                }
            }
        }
        room
    }
}

/// The units of one host's matching slots, by how they could come to a request.
#[derive(Default)]
struct Room {
    free: Vec<String>,
    /// Held by instances on their way out.
    leaving: Vec<String>,
    /// Spot instances past their hold.
    holders: Vec<Holder>,
}
