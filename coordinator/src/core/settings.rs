//! What the core is configured with: its timers and its pools. The config file's parsing
//! (`crate::config`) builds these; the core never reads the file's types.

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
}
