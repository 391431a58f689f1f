//! `[[pools]]`: one spot market per GPU model (docs/contracts.md#market) — its list price, the
//! surplus price's ratios, its notice period and how running instances are priced.

use crate::core::settings::{PoolPricing, PoolSettings, Timers};
use gpuspot_common::Money;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub model: String,
    pub list_price: String,
    pub floor_ratio: Option<f64>,
    pub busy_ratio: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub notice_period: Option<Duration>,
    /// `"market"` (default) or `"fixed_at_start"`; checked with the other problems.
    pub pricing: Option<String>,
}

impl RawPool {
    pub(super) fn validate(
        &self,
        i: usize,
        timers: &Timers,
        problems: &mut Vec<String>,
    ) -> Option<PoolSettings> {
        let at = format!("pools[{i}] ({:?})", self.model);
        let before = problems.len();
        if self.model.trim().is_empty() {
            problems.push(format!("{at}: model must not be empty"));
        }
        let list_price = match self.list_price.parse::<Money>() {
            Ok(price) if price.micros() > 0 => price,
            Ok(_) => {
                problems.push(format!("{at}: list_price must be positive"));
                Money::ZERO
            }
            Err(e) => {
                problems.push(format!("{at}: list_price: {e}"));
                Money::ZERO
            }
        };
        let floor = self.floor_ratio.unwrap_or(0.1);
        let busy = self.busy_ratio.unwrap_or(0.2);
        if !(0.0..=1.0).contains(&floor) || !(0.0..=1.0).contains(&busy) || floor > busy {
            problems
                .push(format!("{at}: need 0 <= floor_ratio ({floor}) <= busy_ratio ({busy}) <= 1"));
        }
        let pricing = self.pricing.as_deref().map_or(Ok(PoolPricing::default()), str::parse);
        let pricing = pricing.unwrap_or_else(|e| {
            problems.push(format!("{at}: {e}"));
            PoolPricing::default()
        });
        (problems.len() == before).then(|| PoolSettings {
            model: self.model.trim().to_owned(),
            list_price,
            floor_ppm: (floor * 1e6).round() as i64,
            busy_ppm: (busy * 1e6).round() as i64,
            notice_period: self.notice_period.unwrap_or(timers.notice_period),
            pricing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, RawConfig};
    use super::*;

    fn pool_toml(pricing: &str) -> String {
        format!("[[pools]]\nmodel = \"H100\"\nlist_price = \"2.58\"\n{pricing}")
    }

    #[test]
    fn pricing_defaults_to_market_and_takes_fixed_at_start() {
        let settings = RawConfig::from_toml(&pool_toml("")).unwrap().validate().unwrap();
        assert_eq!(settings.pools[0].pricing, PoolPricing::Market);
        let fixed = pool_toml("pricing = \"fixed_at_start\"");
        let settings = RawConfig::from_toml(&fixed).unwrap().validate().unwrap();
        assert_eq!(settings.pools[0].pricing, PoolPricing::FixedAtStart);
    }

    #[test]
    fn an_unknown_pricing_is_a_problem_reported_with_the_others() {
        let raw = pool_toml("pricing = \"fixed\"\nfloor_ratio = 0.9\nbusy_ratio = 0.1");
        let ConfigError::Invalid(problems) =
            RawConfig::from_toml(&raw).unwrap().validate().unwrap_err()
        else {
            panic!("expected Invalid")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("\"market\" or \"fixed_at_start\"")));
    }
}
