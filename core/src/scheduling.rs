//! Serving the queue: each pass walks it in order (regular first, then spot by bid) and
//! places what fits. A spot request only goes where its bid covers the pool's market price;
//! a regular request that finds no free units reclaims spot capacity (docs/contracts.md#market,
//! [`reclaim`]); one that asked to fail rather than wait ends `failed`
//! (docs/contracts.md#failures-and-quotas). What still waits gets a reason that says what is true
//! ([`occupancy`]).

mod occupancy;
mod reasons;
mod reclaim;
#[cfg(test)]
pub(crate) mod tests;

use super::cluster::Cluster;
use super::guest::required_runtime;
use super::instance::Placement as Placed;
use super::model::{InstanceRequest, OnUnavailable};
use super::placement::{self, NoFit, Placement};
use super::pools;
use super::promises::Standing;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};
pub(super) use occupancy::Occupancy;
pub use reasons::{SPOT_INSUFFICIENT, Shortage};
use std::collections::HashMap;

/// Why a queued request was not placed in this pass.
enum Unplaced {
    Overdue,
    /// It waits for the reclaimed units it is owed, or for room nobody can make yet.
    Waits(String),
    /// Nothing can take it now.
    Short(Shortage),
    /// Its host has no free host ports now (programs outside gpuspot hold them): it waits
    /// even when it asked to fail rather than wait, as the capacity is there
    /// (docs/contracts.md#serving).
    NoPorts(String),
}

/// What one pass over the queue remembers: how busy the hosts matching each shape of
/// request are, as one account sees them (until something is placed or noticed).
#[derive(Default)]
pub(super) struct Pass {
    occupancy: HashMap<(String, AccountId), Occupancy>,
}

impl Pass {
    fn occupancy(
        &mut self,
        cluster: &Cluster,
        request: &InstanceRequest,
        account: &AccountId,
    ) -> Occupancy {
        let shape = format!("{} {:?}", placement::describe(request), required_runtime(request));
        let key = (shape, account.clone());
        self.occupancy.entry(key).or_insert_with(|| cluster.occupancy(request, account)).clone()
    }

    fn forget_occupancy(&mut self) {
        self.occupancy.clear();
    }
}

/// What choosing a host reads of a request: all of it but its guest's command and env,
/// which may be 64 KiB each and are copied only when it is placed, not on every pass.
fn placement_view(request: &InstanceRequest) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: request.gpu.clone(),
        cpu_cores: request.cpu_cores,
        memory_gib: request.memory_gib,
        billing: request.billing.clone(),
        command: Vec::new(),
        env: Default::default(),
        snapshot: request.snapshot.clone(),
        image: request.image.clone(),
        data_disk_gib: request.data_disk_gib,
        on_unavailable: request.on_unavailable,
        ports: request.ports.clone(),
        readiness: request.readiness.clone(),
    }
}

impl Cluster {
    /// The market price a spot instance of this GPU model pays now.
    pub fn market_price(&self, gpu_model: &str) -> Option<Money> {
        let pool = self.pool_of_gpu(gpu_model)?;
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

    /// Places whatever in the queue fits now. The rest get a fresh reason, or end
    /// `failed` with `out_of_stock: …` when they asked to fail rather than wait
    /// (docs/contracts.md#failures-and-quotas).
    pub fn place_queued(&mut self, now: DateTime<Utc>) {
        if !self.instances.has_queued() {
            return;
        }
        let mut pass = Pass::default();
        for id in self.instances.queued() {
            let Some((request, account)) =
                self.instances.get(&id).map(|i| (placement_view(&i.request), i.account_id.clone()))
            else {
                continue;
            };
            let outcome = self.try_place(&id, &request, &account, &mut pass, now);
            match (outcome, request.on_unavailable) {
                (Ok(()), _) => pass.forget_occupancy(),
                (Err(Unplaced::NoPorts(why) | Unplaced::Waits(why)), _) => {
                    self.set_waiting_reason(&id, &why)
                }
                (Err(Unplaced::Overdue), OnUnavailable::Queue) => {
                    self.set_waiting_reason(&id, "account overdue: waiting for a payment")
                }
                (Err(Unplaced::Short(short)), OnUnavailable::Queue) => {
                    self.set_waiting_reason(&id, &short.waiting())
                }
                (Err(Unplaced::Overdue), OnUnavailable::Fail) => {
                    self.fail(&id, "account overdue: pay to start new instances".into(), now)
                }
                (Err(Unplaced::Short(short)), OnUnavailable::Fail) => {
                    self.fail(&id, short.failed(), now)
                }
            }
        }
    }

    /// Places the request now, or says why not. A request owed reclaimed units takes them
    /// once they are free, or any placement that comes first. Only a request that would
    /// wait reclaims spot capacity: one that fails at once must not cost anyone a notice.
    fn try_place(
        &mut self,
        id: &InstanceId,
        request: &InstanceRequest,
        account: &AccountId,
        pass: &mut Pass,
        now: DateTime<Utc>,
    ) -> Result<(), Unplaced> {
        if !self.ledger.may_start(account) {
            // Units held for an account that cannot start anything serve others meanwhile.
            self.end_promise(id);
            return Err(Unplaced::Overdue);
        }
        let owed = match self.promise_standing(id) {
            Some(Standing::Ready(placement)) => return self.place_on(id, placement, request, now),
            Some(Standing::Pending(host)) => Some(host),
            Some(Standing::Broken) | None => None,
        };
        let reclaims =
            request.billing.bid().is_none() && request.on_unavailable == OnUnavailable::Queue;
        match (self.find_placement(request), owed) {
            (Ok(placement), _) => self.place_on(id, placement, request, now),
            (Err(_), Some(host)) => Err(Unplaced::Waits(self.owed_reason(&host))),
            (Err(NoFit::Wait(_)), None) if reclaims => {
                Err(Unplaced::Waits(self.reclaim_for(id, request, account, pass, now)))
            }
            (Err(no_fit), None) => {
                Err(Unplaced::Short(self.shortage(request, account, no_fit, pass)))
            }
        }
    }

    fn place_on(
        &mut self,
        id: &InstanceId,
        placement: Placement,
        request: &InstanceRequest,
        now: DateTime<Utc>,
    ) -> Result<(), Unplaced> {
        let ports =
            self.ports_for(id, &placement.host_id, request, now).map_err(Unplaced::NoPorts)?;
        self.assign(id, placement, ports, now);
        Ok(())
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

    /// Stored only when it changed: every pass over the queue says it again.
    fn set_waiting_reason(&mut self, id: &InstanceId, reason: &str) {
        if self.instances.get(id).is_some_and(|i| i.reason() != Some(reason)) {
            self.instances.update(id, |i| i.lifecycle_mut().wait(reason));
        }
    }

    /// Places the instance on `placement` with `host_ports` (see [`super::ports`]).
    pub(super) fn assign(
        &mut self,
        id: &InstanceId,
        placement: Placement,
        host_ports: Vec<u16>,
        now: DateTime<Utc>,
    ) {
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
            host_ports,
            price: self.price_for(&request, &placement.gpu_model),
            host_id: placement.host_id,
            gpu_uuids,
            gpu_model: placement.gpu_model,
            cpu_cores: placement.cpu_cores,
            memory_gib: placement.memory_gib,
        };
        self.transition(id, now, |lifecycle| lifecycle.place(placed));
    }
}
