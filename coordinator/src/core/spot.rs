//! The spot side of the cluster: the per-pool auction every `price_tick`, price changes
//! pushed to running instances and their guests, and terminations with advance notice —
//! scheduled (visible at once on the guest's socket), then carried out at the deadline.

use super::cluster::{Cluster, PricePoint};
use super::market::{self, SpotBid};
use super::model::{EndReason, Instance, InstanceState};
use super::pools;
use crate::config::PoolSettings;
use crate::core::events::EventKind;
use chrono::{DateTime, Utc};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::protocol::CoordinatorMessage;
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
    /// One auction per pool, then another look at the queue.
    pub fn market_tick(&mut self, now: DateTime<Utc>) {
        for pool in self.pools.clone() {
            let result = self.run_auction(&pool, now);
            self.set_price(&pool, result.price, now);
            for loser in result.losers {
                let reclaimable = self.instances.get(&loser).is_some_and(|i| {
                    i.state == InstanceState::Running && i.hold_until.is_some_and(|h| h <= now)
                });
                if reclaimable {
                    self.schedule_termination(&loser, EndReason::ReclaimedPrice, now);
                }
            }
        }
        self.place_queued(now);
        self.reconcile_deployments(now);
    }

    fn run_auction(&self, pool: &PoolSettings, now: DateTime<Utc>) -> market::AuctionResult {
        let usage = pools::usage(&self.registry, &pool.model);
        let surplus = pools::surplus_price(pool, &usage);
        let mut regular_units = 0;
        let mut bids = Vec::new();
        let offered = self.offered_runtimes();
        for instance in self.instances.values() {
            let in_pool = match &instance.gpu_model {
                Some(model) => {
                    pools::pool_for(&self.pools, model).is_some_and(|p| p.model == pool.model)
                }
                None => pool_of_request(&self.pools, &instance.request.gpu.models)
                    .is_some_and(|p| p.model == pool.model),
            };
            if !in_pool {
                continue;
            }
            match (instance.request.billing.bid(), instance.state) {
                (None, state) if state.holds_units() => regular_units += instance.gpu_uuids.len(),
                // The surplus price is the reserve for new requests: a queued bid below it
                // could not be placed, so it must not push anyone out either.
                // So could one that no host can run (an image and no container host).
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
        let supply = usage.total.saturating_sub(regular_units);
        let _ = now;
        market::auction(bids, supply, surplus, pool.list_price)
    }

    /// The guest runtimes any host that is not lost offers.
    fn offered_runtimes(&self) -> Vec<gpuspot_common::protocol::GuestRuntime> {
        let mut offered: Vec<_> = self
            .registry
            .iter()
            .filter(|h| h.state != super::registry::HostState::Lost)
            .flat_map(|h| h.runtimes.iter().copied())
            .collect();
        offered.sort();
        offered.dedup();
        offered
    }

    fn set_price(&mut self, pool: &PoolSettings, price: Money, now: DateTime<Utc>) {
        self.record_price(PricePoint { model: pool.model.clone(), at: now, price });
        let previous = self.prices.insert(pool.model.clone(), price);
        if previous == Some(price) {
            return;
        }
        self.event(
            now,
            EventKind::PriceChanged,
            None,
            None,
            serde_json::json!({
                "model": pool.model, "price": price, "previous": previous,
            }),
        );
        let paying: Vec<(InstanceId, Money)> = self
            .instances
            .values()
            .filter(|i| i.state.holds_units())
            .filter_map(|i| {
                let bid = i.request.billing.bid()?;
                let model = i.gpu_model.as_deref()?;
                let in_pool =
                    pools::pool_for(&self.pools, model).is_some_and(|p| p.model == pool.model);
                let pays = price.min(bid);
                (in_pool && i.price != Some(pays)).then(|| (i.id.clone(), pays))
            })
            .collect();
        for (id, pays) in paying {
            // What ran at the old price is accrued at the old price.
            self.meter_instance(&id, now, false);
            if let Some(instance) = self.instances.get_mut(&id) {
                instance.price = Some(pays);
            }
            self.touch_instance(&id);
            self.push_metadata(&id);
        }
    }

    /// Sends the guest its current metadata (after the commit that changed it).
    pub(super) fn push_metadata(&mut self, id: &InstanceId) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        let Some(host_id) = instance.host_id.clone() else {
            return;
        };
        let metadata = self.guest_metadata(instance);
        self.send(&host_id, CoordinatorMessage::Metadata(metadata));
    }

    /// The notice period of the instance's pool.
    fn notice_for(&self, instance: &Instance, reason: EndReason) -> std::time::Duration {
        if reason == EndReason::Overdue {
            return self.timers.overdue_grace;
        }
        instance
            .gpu_model
            .as_deref()
            .and_then(|m| pools::pool_for(&self.pools, m))
            .map_or(self.timers.notice_period, |p| p.notice_period)
    }

    /// Schedules a termination at now + notice. Final once scheduled (except overdue, which
    /// a payment may cancel); the guest sees the time on its socket at once.
    pub fn schedule_termination(&mut self, id: &InstanceId, reason: EndReason, now: DateTime<Utc>) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        if !matches!(instance.state, InstanceState::Scheduled | InstanceState::Running) {
            return;
        }
        let notice = chrono::Duration::from_std(self.notice_for(instance, reason))
            .unwrap_or(chrono::Duration::MAX);
        let at = now + notice;
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.state = InstanceState::TerminationScheduled;
        instance.termination_time = Some(at);
        instance.termination_reason = Some(reason);
        let instance = instance.clone();
        self.deadlines.insert((at, id.clone()));
        self.touch_instance(id);
        self.event(
            now,
            EventKind::TerminationScheduled,
            Some(&instance),
            None,
            serde_json::json!({
                "termination_time": at, "reason": reason.as_str(),
            }),
        );
        self.push_metadata(id);
        // A ReplicaSet starts the replacement at once while this one drains (seed 002).
        if let Some(deployment) = instance.deployment_id {
            self.reconcile_deployment(&gpuspot_common::DeploymentId(deployment), now);
        }
    }

    /// Terminations whose deadline has come: the agent stops them now, not before.
    pub(super) fn carry_out_deadlines(&mut self, now: DateTime<Utc>) {
        while let Some((at, id)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id.clone()));
            let reason = self.instances.get(&id).and_then(|i| {
                (i.state == InstanceState::TerminationScheduled)
                    .then_some(i.termination_reason)
                    .flatten()
            });
            if let Some(reason) = reason {
                self.begin_stop(&id, reason, now);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.first().map(|(at, _)| *at)
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
