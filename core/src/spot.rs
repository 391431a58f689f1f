//! The spot side of the cluster, start to end of a reclaim: every `price_tick` each pool
//! runs its auction ([`super::market`]); the new price reaches every paying instance and
//! its guest; a loser, or a bid below the new price, past its hold gets a notice (on the
//! guest's socket at once, see [`super::instance::lifecycle`]); when the notice's deadline
//! comes the agent stops it. A `fixed_at_start` pool reprices and reclaims nobody.

use super::cluster::Cluster;
use super::events::{EventData, EventKind, payloads};
use super::instance::Instance;
use super::instance::Notice;
use super::market::{self, SpotBid};
use super::model::{EndReason, InstanceState};
use super::pools;
use super::settings::{PoolPricing, PoolSettings};
use chrono::{DateTime, Utc};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::{InstanceId, Money};

/// The pool a request competes in: the first configured pool one of its models names.
pub fn pool_of_request<'a>(
    pools: &'a [PoolSettings],
    models: &[String],
) -> Option<&'a PoolSettings> {
    models.iter().find_map(|m| {
        pools.iter().find(|p| model_matches(m, &p.model) || model_matches(&p.model, m))
    })
}

impl Cluster {
    /// One auction per pool, then the pool's reclaims for price. Then the queue and every
    /// deployment get another look at the new prices.
    pub fn market_tick(&mut self, now: DateTime<Utc>) {
        for pool in self.pools.clone() {
            let result = self.run_auction(&pool);
            self.set_price(&pool, result.price, now);
            for id in self.outbid_after_hold(&pool, &result, now) {
                self.give_notice(&id, EndReason::ReclaimedPrice, now);
            }
        }
        self.place_queued(now);
        self.reconcile_deployments(now);
    }

    /// Running spot instances past their hold that lost the auction or whose bid is below
    /// the new price (docs/contracts.md#market: a bid is the most its owner will pay, competition
    /// or not). None in a `fixed_at_start` pool: there only capacity reclaims.
    fn outbid_after_hold(
        &self,
        pool: &PoolSettings,
        result: &market::AuctionResult,
        now: DateTime<Utc>,
    ) -> Vec<InstanceId> {
        if pool.pricing == PoolPricing::FixedAtStart {
            return Vec::new();
        }
        let losers: std::collections::HashSet<&InstanceId> = result.losers.iter().collect();
        self.instances
            .iter()
            .filter(|i| i.reclaimable(now) && self.in_pool(i, pool))
            .filter(|i| {
                losers.contains(&i.id)
                    || i.request.billing.bid().is_some_and(|bid| bid < result.price)
            })
            .map(|i| i.id.clone())
            .collect()
    }

    fn in_pool(&self, instance: &Instance, pool: &PoolSettings) -> bool {
        match instance.gpu_model() {
            Some(model) => self.pool_of_gpu(model).is_some_and(|p| p.model == pool.model),
            None => pool_of_request(&self.pools, &instance.request.gpu.models)
                .is_some_and(|p| p.model == pool.model),
        }
    }

    fn run_auction(&self, pool: &PoolSettings) -> market::AuctionResult {
        let usage = pools::usage(&self.registry, &pool.model);
        let surplus = pools::surplus_price(pool, &usage);
        // At a fixed price a placed spot instance keeps its units like a regular one: no
        // bid can outrank it.
        let fixed = pool.pricing == PoolPricing::FixedAtStart;
        let mut units_not_for_sale = 0;
        let mut bids = Vec::new();
        let offered = self.offered_runtimes();
        for instance in self.instances.iter().filter(|i| self.in_pool(i, pool)) {
            match (instance.request.billing.bid(), instance.state()) {
                (None, state) if state.holds_units() => {
                    units_not_for_sale += instance.gpu_uuids().len()
                }
                (Some(_), InstanceState::Scheduled | InstanceState::Running) if fixed => {
                    units_not_for_sale += instance.gpu_uuids().len()
                }
                // The surplus price is the reserve for new requests: a queued bid below it
                // could not be placed, so it must not push anyone out either; nor may one
                // that no host can run (an image and no container host).
                (Some(bid), InstanceState::Queued)
                    if bid >= surplus
                        && offered.contains(&super::guest::required_runtime(&instance.request)) =>
                {
                    bids.push(spot_bid(instance, bid, false))
                }
                (Some(bid), InstanceState::Scheduled | InstanceState::Running) => {
                    bids.push(spot_bid(instance, bid, true))
                }
                _ => {}
            }
        }
        let supply = usage.total.saturating_sub(units_not_for_sale);
        market::auction(bids, supply, surplus, pool.list_price)
    }

    /// The guest runtimes any host that is not lost offers.
    fn offered_runtimes(&self) -> Vec<GuestRuntime> {
        let mut offered: Vec<_> = self
            .registry
            .iter()
            .filter(|h| h.state() != super::registry::HostState::Lost)
            .flat_map(|h| h.runtimes.iter().copied())
            .collect();
        offered.sort();
        offered.dedup();
        offered
    }

    fn set_price(&mut self, pool: &PoolSettings, price: Money, now: DateTime<Utc>) {
        let previous = self.prices.set(&pool.model, price, now);
        if previous == Some(price) {
            return;
        }
        let data = EventData::PriceChanged(payloads::PriceChanged {
            model: pool.model.clone(),
            previous,
            price,
        });
        self.event(now, EventKind::PriceChanged, None, None, data);
        if pool.pricing == PoolPricing::FixedAtStart {
            // Each keeps the price it started at (seed 003).
            return;
        }
        let paying: Vec<(InstanceId, Money)> = self
            .instances
            .iter()
            .filter(|i| i.state().holds_units() && self.in_pool(i, pool))
            // A failed GPU's time is free from the fault on (super::faults).
            .filter(|i| i.termination_reason() != Some(EndReason::GpuFault))
            .filter_map(|i| {
                let pays = price.min(i.request.billing.bid()?);
                (i.price() != Some(pays)).then(|| (i.id.clone(), pays))
            })
            .collect();
        for (id, pays) in paying {
            // What ran at the old price is accrued at the old price.
            self.meter_instance(&id, now, false);
            self.transition(&id, now, |lifecycle| lifecycle.reprice(pays));
        }
    }

    /// The notice period of the instance's pool (the grace, for an overdue account).
    pub(super) fn notice_for(&self, instance: &Instance, reason: EndReason) -> std::time::Duration {
        if reason == EndReason::Overdue {
            return self.timers.overdue_grace;
        }
        instance
            .gpu_model()
            .and_then(|m| self.pool_of_gpu(m))
            .map_or(self.timers.notice_period, |p| p.notice_period)
    }

    /// Schedules a termination at now + notice, for a scheduled or running instance.
    /// Final once scheduled (except overdue, which a payment may cancel). A ReplicaSet
    /// starts the replacement at once while this one drains (seed 002).
    pub fn schedule_termination(&mut self, id: &InstanceId, reason: EndReason, now: DateTime<Utc>) {
        self.give_notice(id, reason, now);
        self.settle(now);
    }

    /// [`Cluster::schedule_termination`] within an operation that settles later.
    pub(super) fn give_notice(&mut self, id: &InstanceId, reason: EndReason, now: DateTime<Utc>) {
        self.give_notice_within(id, reason, None, now);
    }

    /// [`Cluster::give_notice`] with a notice of at most `within` (an operator's drain).
    pub(super) fn give_notice_within(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        within: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        let period = self.notice_for(instance, reason);
        let period = within.map_or(period, |w| w.min(period));
        let notice = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
        let at = now.checked_add_signed(notice).unwrap_or(DateTime::<Utc>::MAX_UTC);
        match instance.lifecycle().notice().copied() {
            // Already noticed (a reclaim, a drill): it ends no later than this notice would
            // end it, for its first reason (a payment that cancels an overdue notice must not
            // cancel a reclaim).
            Some(current) if current.at > at => {
                let notice = Notice { at, reason: current.reason };
                self.transition(id, now, |lifecycle| lifecycle.renotice(notice));
            }
            Some(_) => {}
            None => {
                self.transition(id, now, |lifecycle| lifecycle.give_notice(Notice { at, reason }));
            }
        }
    }

    /// Notices whose deadline has come: the agent stops them now, not before.
    pub(super) fn carry_out_deadlines(&mut self, now: DateTime<Utc>) {
        for id in self.instances.due_notices(now) {
            let reason = self.instances.get(&id).and_then(Instance::termination_reason);
            if let Some(reason) = reason {
                self.begin_stop(&id, reason, now);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.instances.next_notice()
    }
}

fn spot_bid(instance: &Instance, bid: Money, running: bool) -> SpotBid {
    SpotBid {
        instance: instance.id.clone(),
        bid,
        units: instance.request.gpu.count as usize,
        running,
        seq: instance.seq,
    }
}
