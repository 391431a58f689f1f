//! `[timers]`: the cluster's clocks (hold and notice periods, price and meter ticks, heartbeats,
//! the kill timeout, autoscaling, the notice of a failed GPU); each absent key keeps its
//! [`Timers`] default, and the ones that must be nonzero or ordered are checked.

use super::Timers;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimers {
    #[serde(default, with = "humantime_serde")]
    pub hold_period: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub notice_period: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub overdue_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub price_tick: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub price_history: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub host_lost_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub kill_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub meter_tick: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub autoscale_interval: Option<Duration>,
    /// The notice of an instance whose GPU failed (docs/architecture.md, faults).
    #[serde(default, with = "humantime_serde")]
    pub fault_notice: Option<Duration>,
}

impl RawTimers {
    pub(super) fn validate(&self, problems: &mut Vec<String>) -> Timers {
        let defaults = Timers::default();
        let pick = |value: Option<Duration>, default: Duration| value.unwrap_or(default);
        let timers = Timers {
            hold_period: pick(self.hold_period, defaults.hold_period),
            notice_period: pick(self.notice_period, defaults.notice_period),
            overdue_grace: pick(self.overdue_grace, defaults.overdue_grace),
            price_tick: pick(self.price_tick, defaults.price_tick),
            price_history: pick(self.price_history, defaults.price_history),
            heartbeat: pick(self.heartbeat, defaults.heartbeat),
            host_lost_after: pick(self.host_lost_after, defaults.host_lost_after),
            kill_timeout: pick(self.kill_timeout, defaults.kill_timeout),
            meter_tick: pick(self.meter_tick, defaults.meter_tick),
            autoscale_interval: pick(self.autoscale_interval, defaults.autoscale_interval),
            fault_notice: pick(self.fault_notice, defaults.fault_notice),
        };
        if timers.fault_notice > Duration::from_secs(3600) {
            problems.push("timers.fault_notice: at most 1h (a failed GPU is not billed)".into());
        }
        for (name, value) in [
            ("price_tick", timers.price_tick),
            ("heartbeat", timers.heartbeat),
            ("host_lost_after", timers.host_lost_after),
            ("meter_tick", timers.meter_tick),
            ("autoscale_interval", timers.autoscale_interval),
        ] {
            if value.is_zero() {
                problems.push(format!("timers.{name}: must be greater than zero"));
            }
        }
        if timers.host_lost_after <= timers.heartbeat {
            problems.push(format!(
                "timers.host_lost_after ({}) must be longer than timers.heartbeat ({})",
                humantime::format_duration(timers.host_lost_after),
                humantime::format_duration(timers.heartbeat)
            ));
        }
        timers
    }
}
