//! `[deployments]`: replica sets' crash-loop backoff, validated into the core's
//! [`CrashBackoff`].

use crate::core::crash_loop::CrashBackoff;
use serde::Deserialize;
use std::time::Duration;

/// Replica sets' crash-loop backoff (docs/contracts.md#deployments).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployments {
    /// The wait before replacing a crashed replica (default 10s), doubling per crash in a row.
    #[serde(default, with = "humantime_serde")]
    pub crash_backoff: Option<Duration>,
    /// The longest such wait (default 5m).
    #[serde(default, with = "humantime_serde")]
    pub crash_backoff_max: Option<Duration>,
    /// A run this long resets the doubling (default 10m).
    #[serde(default, with = "humantime_serde")]
    pub crash_reset_after: Option<Duration>,
}

impl RawDeployments {
    pub(super) fn validate(&self, problems: &mut Vec<String>) -> CrashBackoff {
        let defaults = CrashBackoff::default();
        let backoff = CrashBackoff {
            base: self.crash_backoff.unwrap_or(defaults.base),
            max: self.crash_backoff_max.unwrap_or(defaults.max),
            reset_after: self.crash_reset_after.unwrap_or(defaults.reset_after),
        };
        if backoff.base.is_zero() {
            problems.push("deployments.crash_backoff: must be greater than zero".into());
        }
        if backoff.max < backoff.base {
            problems.push("deployments.crash_backoff_max: must not be below crash_backoff".into());
        }
        backoff
    }
}

#[cfg(test)]
mod tests {
    use super::super::RawConfig;
    use super::*;

    #[test]
    fn the_backoff_comes_from_the_deployments_config_section() {
        let text = "[deployments]\ncrash_backoff = \"1s\"\ncrash_backoff_max = \"4s\"\n\
                    crash_reset_after = \"30s\"\n";
        let settings = RawConfig::from_toml(text).unwrap().validate().unwrap();
        let backoff = settings.crash_backoff;
        assert_eq!((backoff.delay(1), backoff.delay(4)), (Duration::from_secs(1), backoff.max));
        assert_eq!(
            (backoff.max, backoff.reset_after),
            (Duration::from_secs(4), Duration::from_secs(30))
        );
        let defaults = RawConfig::from_toml("").unwrap().validate().unwrap().crash_backoff;
        assert_eq!(defaults, CrashBackoff::default());
        let bad = "[deployments]\ncrash_backoff = \"0s\"\n";
        assert!(
            RawConfig::from_toml(bad).unwrap().validate().is_err(),
            "a zero backoff is refused"
        );
    }
}
