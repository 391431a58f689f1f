//! Per GPU model: how many units exist and are free, and the surplus price
//! (docs/contracts.md#market): `floor_ratio` × list when idle, rising linearly to `busy_ratio` ×
//! list when full.

use super::registry::Registry;
use crate::settings::PoolSettings;
use gpuspot_common::Money;
use gpuspot_common::inventory::model_matches;
use std::collections::HashMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Healthy units on hosts that are not lost.
    pub total: usize,
    /// Healthy free units on hosts that take placements.
    pub free: usize,
    /// Healthy units that hold an instance or are promised to a queued request. The rest
    /// of `total` is free on hosts that take no placements (cordoned, draining,
    /// disconnected).
    pub used: usize,
}

impl PoolUsage {
    /// Free units that cannot be placed on: neither free nor used.
    pub fn unavailable(&self) -> usize {
        self.total.saturating_sub(self.free + self.used)
    }
}

/// Sums the registry index's per-model counts over the GPU models `model` names.
pub fn usage(registry: &Registry, model: &str) -> PoolUsage {
    let mut usage = PoolUsage::default();
    for (name, counts) in registry.index().models() {
        if model_matches(model, name) {
            usage.total += counts.total;
            usage.free += counts.free;
            usage.used += counts.used;
        }
    }
    usage
}

/// The price of idle capacity at this utilisation, in integer arithmetic.
pub fn surplus_price(pool: &PoolSettings, usage: &PoolUsage) -> Money {
    let (used, total) = ((usage.total - usage.free) as i64, usage.total.max(1) as i64);
    let ratio_ppm = pool.floor_ppm + (pool.busy_ppm - pool.floor_ppm) * used / total;
    pool.list_price.mul_ratio(ratio_ppm, 1_000_000)
}

/// The pool whose model names this GPU (first configured match wins).
pub fn pool_for<'a>(pools: &'a [PoolSettings], gpu_model: &str) -> Option<&'a PoolSettings> {
    pools.iter().find(|p| model_matches(&p.model, gpu_model))
}

/// Which pool prices each GPU model the hosts have: matched by substring once, when a
/// host registers or its inventory changes ([`PoolIndex::learn`]), and looked up by name
/// on every tick after that.
#[derive(Debug, Default)]
pub struct PoolIndex {
    by_model: HashMap<String, Option<usize>>,
}

impl PoolIndex {
    /// Resolves the models of `gpus` it does not know yet.
    pub fn learn<'a>(&mut self, pools: &[PoolSettings], gpus: impl IntoIterator<Item = &'a str>) {
        for model in gpus {
            if !self.by_model.contains_key(model) {
                let pool = pools.iter().position(|p| model_matches(&p.model, model));
                self.by_model.insert(model.to_owned(), pool);
            }
        }
    }

    /// The pool that prices `gpu_model`; a model no host brought is matched now.
    pub fn pool<'a>(&self, pools: &'a [PoolSettings], gpu_model: &str) -> Option<&'a PoolSettings> {
        match self.by_model.get(gpu_model) {
            Some(known) => known.map(|i| &pools[i]),
            None => pool_for(pools, gpu_model),
        }
    }
}

/// Why a host with `inventory` cannot join: a GPU model no pool prices
/// (docs/contracts.md#operating-hosts: its instances would otherwise run at price 0).
pub fn unpriced(
    pools: &[PoolSettings],
    inventory: &gpuspot_common::HostInventory,
) -> Option<String> {
    let mut missing: Vec<&str> = inventory
        .gpus
        .iter()
        .map(|g| g.model.as_str())
        .filter(|model| pool_for(pools, model).is_none())
        .collect();
    missing.sort();
    missing.dedup();
    (!missing.is_empty()).then(|| {
        format!(
            "no [[pools]] entry prices GPU model {}: add one (model, list_price) to the \
             coordinator's config and restart it; until then this host cannot join",
            missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool() -> PoolSettings {
        PoolSettings {
            model: "H100".into(),
            list_price: Money(2_580_000),
            floor_ppm: 100_000,
            busy_ppm: 200_000,
            notice_period: Duration::from_secs(60),
            pricing: Default::default(),
        }
    }

    #[test]
    fn each_gpu_model_is_matched_to_its_pool_once() {
        let a100 = PoolSettings { model: "A100".into(), ..pool() };
        let pools = [pool(), a100];
        let mut index = PoolIndex::default();
        index.learn(&pools, ["NVIDIA H100 80GB HBM3", "NVIDIA L4", "NVIDIA A100-SXM4"]);
        let pool_of = |model| index.pool(&pools, model).map(|p| p.model.as_str());
        assert_eq!(pool_of("NVIDIA H100 80GB HBM3"), Some("H100"));
        assert_eq!(pool_of("NVIDIA A100-SXM4"), Some("A100"));
        assert_eq!(pool_of("NVIDIA L4"), None, "known to have no pool");
        assert_eq!(pool_of("h100 pcie"), Some("H100"), "a model no host brought is matched");
        assert_eq!(index.by_model.len(), 3, "only what hosts brought is kept");
    }

    #[test]
    fn surplus_price_rises_from_floor_to_busy() {
        let p = pool();
        assert_eq!(surplus_price(&p, &PoolUsage { total: 8, free: 8, used: 0 }), Money(258_000));
        assert_eq!(surplus_price(&p, &PoolUsage { total: 8, free: 4, used: 4 }), Money(387_000));
        assert_eq!(surplus_price(&p, &PoolUsage { total: 8, free: 0, used: 8 }), Money(516_000));
        assert_eq!(surplus_price(&p, &PoolUsage::default()), Money(258_000));
    }

    #[test]
    fn pool_lookup_is_by_substring() {
        let pools = vec![pool()];
        assert!(pool_for(&pools, "NVIDIA H100 80GB HBM3").is_some());
        assert!(pool_for(&pools, "NVIDIA A100").is_none());
    }
}
