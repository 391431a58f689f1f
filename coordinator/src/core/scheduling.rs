//! Serving the queue: each pass walks it in order (regular first, then spot by bid) and
//! places what fits. A spot request only goes where its bid covers the pool's market price;
//! a regular request that finds no free units reclaims spot capacity (DESIGN §4,
//! [`reclaim`]); one that asked to fail rather than wait ends `failed` (§16). What still
//! waits gets a reason that says what is true ([`occupancy`]).

mod occupancy;
mod reclaim;
#[cfg(test)]
pub(crate) mod tests;

use super::cluster::Cluster;
use super::guest::required_runtime;
use super::instance::Placement as Placed;
use super::model::{InstanceRequest, OnUnavailable};
use super::placement::{self, NoFit, Placement};
use super::pools;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, HostId, InstanceId, Money};
pub(super) use occupancy::Occupancy;
use std::collections::HashMap;

/// Why a queued request was not placed in this pass.
enum Unplaced {
    Overdue,
    /// Nothing can take it now; the waiting reason says why.
    NoRoom(String),
    /// Its host has no free host ports now (programs outside gpuspot hold them): it waits
    /// even when it asked to fail rather than wait, as the capacity is there (DESIGN §18).
    NoPorts(String),
}

impl Unplaced {
    fn text(&self) -> &str {
        match self {
            Unplaced::Overdue => "account overdue: waiting for a payment",
            Unplaced::NoRoom(reason) | Unplaced::NoPorts(reason) => reason,
        }
    }
}

/// What one pass over the queue remembers: units already claimed by reclaims, and what
/// holds the hosts matching each shape of request (until something is placed or noticed).
#[derive(Default)]
pub(super) struct Pass {
    claimed: HashMap<HostId, usize>,
    occupancy: HashMap<String, Occupancy>,
}

impl Pass {
    fn occupancy(
        &mut self,
        cluster: &Cluster,
        request: &InstanceRequest,
        now: DateTime<Utc>,
    ) -> Occupancy {
        let shape = format!("{} {:?}", placement::describe(request), required_runtime(request));
        self.occupancy.entry(shape).or_insert_with(|| cluster.occupancy(request, now)).clone()
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

    /// Places whatever in the queue fits now. The rest get a fresh reason, or end
    /// `failed` with `out_of_stock: …` when they asked to fail rather than wait (§16).
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
                (Err(why @ Unplaced::NoPorts(_)), _) | (Err(why), OnUnavailable::Queue) => {
                    self.set_waiting_reason(&id, why.text())
                }
                (Err(Unplaced::Overdue), OnUnavailable::Fail) => {
                    self.fail(&id, "account overdue: pay to start new instances".into(), now)
                }
                (Err(Unplaced::NoRoom(reason)), OnUnavailable::Fail) => {
                    self.fail(&id, format!("out_of_stock: {reason}"), now)
                }
            }
        }
    }

    /// Places the request now, or says why not. Only a request that would wait reclaims
    /// spot capacity: one that fails at once must not cost anyone a notice.
    fn try_place(
        &mut self,
        id: &InstanceId,
        request: &InstanceRequest,
        account: &AccountId,
        pass: &mut Pass,
        now: DateTime<Utc>,
    ) -> Result<(), Unplaced> {
        if !self.ledger.may_start(account) {
            return Err(Unplaced::Overdue);
        }
        let reclaims =
            request.billing.bid().is_none() && request.on_unavailable == OnUnavailable::Queue;
        match self.find_placement(request) {
            Ok(placement) => {
                let ports = self
                    .ports_for(id, &placement.host_id, request, now)
                    .map_err(Unplaced::NoPorts)?;
                self.assign(id, placement, ports, now);
                Ok(())
            }
            Err(NoFit::Wait(_)) if reclaims => {
                Err(Unplaced::NoRoom(self.reclaim_for(request, pass, now)))
            }
            Err(no_fit) => Err(Unplaced::NoRoom(self.waiting_reason(request, no_fit, pass, now))),
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

    /// Why a request that found no placement waits, as things are now: no host for it at
    /// all; for spot, whether the bid is the obstacle; else which hosts match and what
    /// holds their units.
    pub(super) fn waiting_reason(
        &self,
        request: &InstanceRequest,
        no_fit: NoFit,
        pass: &mut Pass,
        now: DateTime<Utc>,
    ) -> String {
        // Pools the bid does not cover were left out: what is true at any price?
        let no_fit = match request.billing.bid() {
            None => no_fit,
            Some(bid) => match placement::place(&self.registry, request, |_| Money::ZERO, |_| true)
            {
                Ok(placement) => return self.outbid(&placement.gpu_model, bid),
                Err(at_any_price) => at_any_price,
            },
        };
        let NoFit::Wait(_) = no_fit else {
            return no_fit.reason().to_owned();
        };
        let occupancy = pass.occupancy(self, request, now);
        let full = format!(
            "no matching host has free units for {}: {}",
            placement::describe(request),
            occupancy.describe()
        );
        match request.billing.bid().map(|bid| self.bid_against(&occupancy, bid)) {
            None => format!("waiting for capacity: {full}"),
            Some(Ok(covered)) => format!("waiting for capacity: {full}; {covered}"),
            Some(Err(obstacle)) => format!("{obstacle}; and {full}"),
        }
    }

    /// A placement would exist at any price but not at this bid: the bid is what stops
    /// it (or the model has no spot market).
    fn outbid(&self, gpu_model: &str, bid: Money) -> String {
        match self.market_price(gpu_model) {
            None => {
                format!("no spot market for {gpu_model}: no pool is configured for this GPU model")
            }
            Some(price) => {
                format!("outbid: your bid {bid} is below the market price {price} for {gpu_model}")
            }
        }
    }

    /// Whether `bid` covers the market price of any matching model: Ok says it does (the
    /// bid is not the obstacle), Err says how it is (below all of them, or no market).
    fn bid_against(&self, occupancy: &Occupancy, bid: Money) -> Result<String, String> {
        let prices: Vec<(Money, &String)> = occupancy
            .models
            .iter()
            .filter_map(|model| Some((self.market_price(model)?, model)))
            .collect();
        let Some(&(lowest, model)) = prices.iter().min() else {
            let models: Vec<&str> = occupancy.models.iter().map(String::as_str).collect();
            return Err(format!(
                "no spot market for {}: no pool is configured for this GPU model",
                models.join(", ")
            ));
        };
        if bid >= lowest {
            Ok(format!("your bid {bid} covers the market price {lowest} for {model}"))
        } else {
            Err(format!("outbid: your bid {bid} is below the market price {lowest} for {model}"))
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
