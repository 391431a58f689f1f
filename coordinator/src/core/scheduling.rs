//! Serving the queue: each pass walks it in order (regular first, then spot by bid) and
//! places what fits. A spot request only goes where its bid covers the pool's market price;
//! a regular request that finds no free units reclaims spot capacity (DESIGN §4).

use super::cluster::Cluster;
use super::instance::Placement as Placed;
use super::model::{EndReason, InstanceRequest, InstanceState};
use super::placement::{self, NoFit, Placement};
use super::pools;
use chrono::{DateTime, Utc};
use gpuspot_common::{HostId, InstanceId, Money};
use std::collections::HashMap;

impl Cluster {
    /// The market price a spot instance of this GPU model pays now.
    pub fn market_price(&self, gpu_model: &str) -> Option<Money> {
        let pool = pools::pool_for(&self.pools, gpu_model)?;
        Some(self.prices.get(&pool.model).unwrap_or_else(|| {
            pools::surplus_price(pool, &pools::usage(&self.registry, &pool.model))
        }))
    }

    /// What this request pays per GPU-hour on this model: list for regular; for spot the
    /// market price, never more than the bid.
    pub(super) fn price_for(&self, request: &InstanceRequest, gpu_model: &str) -> Money {
        match request.billing.bid() {
            None => self.list_price(gpu_model),
            Some(bid) => self.market_price(gpu_model).unwrap_or(Money::ZERO).min(bid),
        }
    }

    /// Places whatever in the queue fits now; the rest get a fresh reason.
    pub fn place_queued(&mut self, now: DateTime<Utc>) {
        if !self.instances.has_queued() {
            return;
        }
        let mut claimed: HashMap<HostId, usize> = HashMap::new();
        for id in self.instances.queued() {
            let Some((request, account)) =
                self.instances.get(&id).map(|i| (i.request.clone(), i.account_id.clone()))
            else {
                continue;
            };
            if !self.ledger.may_start(&account) {
                self.set_waiting_reason(&id, "account overdue: waiting for a payment");
                continue;
            }
            match self.find_placement(&request) {
                Ok(placement) => self.assign(&id, placement, now),
                Err(NoFit::Wait(_)) if request.billing.bid().is_none() => {
                    let reason = self.reclaim_for(&request, &mut claimed, now);
                    self.set_waiting_reason(&id, &reason);
                }
                Err(no_fit) => {
                    let reason = self.spot_waiting_reason(&request, no_fit);
                    self.set_waiting_reason(&id, &reason);
                }
            }
        }
    }

    pub(super) fn find_placement(&self, request: &InstanceRequest) -> Result<Placement, NoFit> {
        let price_of = |model: &str| self.price_for(request, model);
        match request.billing.bid() {
            None => placement::place(&self.registry, request, price_of, |_| true),
            Some(bid) => placement::place(&self.registry, request, price_of, |model| {
                self.market_price(model).is_some_and(|price| price <= bid)
            }),
        }
    }

    /// Why a spot request waits: outbid when a placement would exist at any price.
    pub(super) fn spot_waiting_reason(&self, request: &InstanceRequest, no_fit: NoFit) -> String {
        let Some(bid) = request.billing.bid() else {
            return no_fit.reason().to_owned();
        };
        match placement::place(&self.registry, request, |_| Money::ZERO, |_| true) {
            Ok(placement) if self.market_price(&placement.gpu_model).is_none() => format!(
                "no spot market for {}: no pool is configured for this GPU model",
                placement.gpu_model
            ),
            Ok(placement) => format!(
                "outbid: your bid {bid} is below the market price {} for {}",
                self.market_price(&placement.gpu_model).unwrap_or(Money::ZERO),
                placement.gpu_model
            ),
            Err(_) => no_fit.reason().to_owned(),
        }
    }

    /// Stored only when it changed: every pass over the queue says it again.
    fn set_waiting_reason(&mut self, id: &InstanceId, reason: &str) {
        if self.instances.get(id).is_some_and(|i| i.reason() != Some(reason)) {
            self.instances.update(id, |i| i.lifecycle_mut().wait(reason));
        }
    }

    pub(super) fn assign(&mut self, id: &InstanceId, placement: Placement, now: DateTime<Utc>) {
        let Some(request) = self.instances.get(id).map(|i| i.request.clone()) else {
            return;
        };
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
        self.touch_host(&placement.host_id);
        let placed = Placed {
            price: self.price_for(&request, &placement.gpu_model),
            host_id: placement.host_id,
            gpu_uuids,
            gpu_model: placement.gpu_model,
            cpu_cores: placement.cpu_cores,
            memory_gib: placement.memory_gib,
        };
        self.transition(id, now, |lifecycle| lifecycle.place(placed));
    }

    /// A regular request found no free units: on the host where it then fits, schedule the
    /// termination of the lowest spot bids whose hold is over. Units already on their way
    /// out count, so repeated passes do not reclaim twice. Returns the waiting reason.
    fn reclaim_for(
        &mut self,
        request: &InstanceRequest,
        claimed: &mut HashMap<HostId, usize>,
        now: DateTime<Utc>,
    ) -> String {
        let k = request.gpu.count as usize;
        let mut best: Option<(usize, Money, HostId, usize, Vec<InstanceId>)> = None;
        for host in
            self.registry.iter().filter(|h| h.state == super::registry::HostState::Connected)
        {
            let already = claimed.get(&host.id).copied().unwrap_or(0);
            for model in &request.gpu.models {
                let Some(plan) = self.reclaim_plan(host, request, model, already, now) else {
                    continue;
                };
                let key =
                    (plan.1.len(), plan.1.iter().filter_map(|id| self.bid_of(id)).sum::<i64>());
                if best.as_ref().is_none_or(|(n, bids, ..)| key < (*n, bids.micros())) {
                    best = Some((key.0, Money(key.1), host.id.clone(), plan.0, plan.1));
                }
            }
        }
        let Some((_, _, host_id, leaving, victims)) = best else {
            return format!(
                "waiting for capacity: no host can make room for {} (spot instances still in their hold period)",
                placement::describe(request)
            );
        };
        let _ = leaving;
        *claimed.entry(host_id.clone()).or_default() += k;
        for victim in &victims {
            self.give_notice(victim, EndReason::ReclaimedCapacity, now);
        }
        format!("waiting for reclaimed capacity on host {host_id}")
    }

    fn bid_of(&self, id: &InstanceId) -> Option<i64> {
        self.instances.get(id)?.request.billing.bid().map(|b| b.micros())
    }

    /// On `host`, for GPU `model`: units already coming free, and the spot instances (lowest
    /// bids first) whose termination would make room for `request`. None if it cannot fit.
    fn reclaim_plan(
        &self,
        host: &super::registry::Host,
        request: &InstanceRequest,
        model: &str,
        already_claimed: usize,
        now: DateTime<Utc>,
    ) -> Option<(usize, Vec<InstanceId>)> {
        use gpuspot_common::inventory::model_matches;
        let k = request.gpu.count as usize;
        if !super::guest::host_runs(host, request) {
            return None;
        }
        let unit = host.units.first()?;
        let fits_share = request.cpu_cores.contains((unit.unit.cpu_cores as u64) * k as u64)
            && request.memory_gib.contains(unit.unit.memory_gib * k as u64);
        let slots: Vec<_> = host
            .units
            .iter()
            .filter(|s| s.unit.gpu.healthy && model_matches(model, &s.unit.gpu.model))
            .collect();
        if !fits_share || slots.len() < k {
            return None;
        }
        let mut coming = slots.iter().filter(|s| s.instance.is_none()).count();
        let mut holders: Vec<(i64, u64, InstanceId, usize)> = Vec::new();
        for slot in &slots {
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
                    holders.push((
                        bid,
                        newest_first,
                        instance.id.clone(),
                        instance.gpu_uuids().len(),
                    ));
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
        (available >= k).then_some((coming, victims))
    }
}
