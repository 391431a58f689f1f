//! `[retention]` (docs/contracts.md#retention): how long ended work is kept. `ended` (default 7d)
//! for instances that ran or were stopped and for final deployments, `failed` (24h) for requests
//! that never ran (they count against the quota until then), `events` (30d) for events and the
//! inbox messages they made, `max_ended_per_account` (1000) ended instances (and as many final
//! deployments) and `max_events_per_account` (100,000) events per account at most. The ledger is
//! never pruned.

use crate::core::retention::Retention;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    #[serde(default, with = "humantime_serde")]
    pub ended: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub failed: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub events: Option<Duration>,
    pub max_ended_per_account: Option<usize>,
    pub max_events_per_account: Option<usize>,
}

impl RawRetention {
    pub fn validate(&self, problems: &mut Vec<String>) -> Retention {
        let defaults = Retention::default();
        let retention = Retention {
            ended: self.ended.unwrap_or(defaults.ended),
            failed: self.failed.unwrap_or(defaults.failed),
            events: self.events.unwrap_or(defaults.events),
            max_ended_per_account: self
                .max_ended_per_account
                .unwrap_or(defaults.max_ended_per_account),
            max_events_per_account: self
                .max_events_per_account
                .unwrap_or(defaults.max_events_per_account),
        };
        for (name, value) in
            [("ended", retention.ended), ("failed", retention.failed), ("events", retention.events)]
        {
            if value.is_zero() {
                problems.push(format!("retention.{name}: must be greater than zero"));
            }
        }
        for (name, value) in [
            ("max_ended_per_account", retention.max_ended_per_account),
            ("max_events_per_account", retention.max_events_per_account),
        ] {
            if value == 0 {
                problems.push(format!("retention.{name}: must be at least 1"));
            }
        }
        retention
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, RawConfig};
    use crate::core::retention::Retention;
    use std::time::Duration;

    #[test]
    fn the_defaults_are_a_week_a_day_and_a_month() {
        let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
        assert_eq!(settings.retention, Retention::default());
        let day = Duration::from_secs(86_400);
        assert_eq!(settings.retention.ended, 7 * day);
        assert_eq!(settings.retention.failed, day);
        assert_eq!(settings.retention.events, 30 * day);
        assert_eq!(settings.retention.max_ended_per_account, 1000);
        assert_eq!(settings.retention.max_events_per_account, 100_000);
    }

    #[test]
    fn the_sample_configs_retention_lines_are_real_keys() {
        let sample = include_str!("../../../config/coordinator.toml");
        let start = sample.find("# [retention]").expect("the sample documents [retention]");
        let section: String = sample[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let documented = RawConfig::from_toml(&section).unwrap().validate().unwrap();
        assert_eq!(documented.retention, Retention::default(), "the sample shows the defaults");
    }

    #[test]
    fn every_bad_retention_key_is_reported() {
        let raw = RawConfig::from_toml(
            "[retention]\nended = \"0s\"\nevents = \"0s\"\nmax_ended_per_account = 0\n\
             max_events_per_account = 0",
        )
        .unwrap();
        let ConfigError::Invalid(problems) = raw.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("retention.max_ended_per_account")));
        assert!(problems.iter().any(|p| p.contains("retention.max_events_per_account")));
        assert!(RawConfig::from_toml("[retention]\nfailed = \"soon\"").is_err());
        assert!(RawConfig::from_toml("[retention]\nledger = \"1d\"").is_err());
    }
}
