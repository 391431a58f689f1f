//! What the core is configured with: its timers and its pools (and how each prices). The config file's parsing
//! (the coordinator's `config`) builds these; the core never reads the file's types.

use gpuspot_common::Money;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Timers {
    pub hold_period: Duration,
    pub notice_period: Duration,
    pub overdue_grace: Duration,
    pub price_tick: Duration,
    pub price_history: Duration,
    pub heartbeat: Duration,
    pub host_lost_after: Duration,
    pub kill_timeout: Duration,
    pub meter_tick: Duration,
    /// How often replica sets with `autoscaling` or a `schedule` are looked at
    /// (docs/contracts.md#serving).
    pub autoscale_interval: Duration,
    /// The notice an instance gets when its GPU fails (docs/architecture.md, faults).
    pub fault_notice: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Self {
            hold_period: min(60),
            notice_period: min(30),
            overdue_grace: min(5),
            price_tick: min(5),
            price_history: min(48 * 60),
            heartbeat: Duration::from_secs(5),
            host_lost_after: Duration::from_secs(30),
            kill_timeout: Duration::from_secs(30),
            meter_tick: Duration::from_secs(60),
            autoscale_interval: Duration::from_secs(15),
            fault_notice: Duration::from_secs(30),
        }
    }
}

/// One market per GPU model. Ratios are kept in parts per million so that prices are
/// computed in integers.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    pub model: String,
    pub list_price: Money,
    pub floor_ppm: i64,
    pub busy_ppm: i64,
    pub notice_period: Duration,
    pub pricing: PoolPricing,
}

/// What a running spot instance of a pool pays (docs/contracts.md#market).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolPricing {
    /// The market price of each moment, capped by the bid; a bid below it is reclaimed.
    #[default]
    Market,
    /// The price at the instance's start, for its whole life (seed 003): no price
    /// reclaims it, only capacity.
    FixedAtStart,
}

impl PoolPricing {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolPricing::Market => "market",
            PoolPricing::FixedAtStart => "fixed_at_start",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("pricing must be \"market\" or \"fixed_at_start\", not {0:?}")]
pub struct UnknownPricing(pub String);

impl std::str::FromStr for PoolPricing {
    type Err = UnknownPricing;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "market" => Ok(PoolPricing::Market),
            "fixed_at_start" => Ok(PoolPricing::FixedAtStart),
            other => Err(UnknownPricing(other.to_owned())),
        }
    }
}
