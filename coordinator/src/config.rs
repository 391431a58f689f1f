//! Coordinator configuration: TOML file → [`RawConfig`] (serde, every key optional) →
//! [`Settings`] (validated). Every problem is reported at once, not the first only.

mod deployments;
mod listeners;
mod policy;
mod pool;
mod retention;
mod smtp;
mod store;

pub use deployments::RawDeployments;
pub use listeners::{ApiSettings, GatewaySettings, RawApi, RawGateway, RawSsh, SshSettings};
pub use policy::{Policy, RawPolicy};
pub use pool::RawPool;
pub use retention::RawRetention;
pub use smtp::{RawSmtp, SmtpSettings};
pub use store::{HaSettings, RawHa, RawStore};

use crate::core::crash_loop::CrashBackoff;
use crate::core::quotas::Quota;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path} is not valid TOML: {detail}")]
    Parse { path: String, detail: String },
    #[error("config is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub timers: RawTimers,
    #[serde(default)]
    pub pools: Vec<RawPool>,
    pub http: Option<SocketAddr>,
    pub quic: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub webhook: Option<RawWebhook>,
    #[serde(default)]
    pub snapshots: RawSnapshots,
    #[serde(default)]
    pub deployments: RawDeployments,
    #[serde(default)]
    pub logs: gpuspot_common::logcap::RawLogs,
    #[serde(default)]
    pub policy: RawPolicy,
    /// The SSH front door (docs/contracts.md#guests); off when absent.
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    pub accounts: RawAccounts,
    /// Where customers' notices are mailed (docs/contracts.md#messages); no mail when absent.
    pub smtp: Option<RawSmtp>,
    /// The serving gateway (docs/contracts.md#serving); off when absent.
    pub gateway: Option<RawGateway>,
    /// The HTTP API's connection limits and client timeouts (docs/contracts.md#limits).
    #[serde(default)]
    pub api: RawApi,
    /// How long ended work is kept (docs/contracts.md#retention).
    #[serde(default)]
    pub retention: RawRetention,
    /// Where state lives: SQLite in the data dir, or a shared PostgreSQL.
    #[serde(default)]
    pub store: RawStore,
    /// Leadership among coordinators sharing a PostgreSQL store.
    #[serde(default)]
    pub ha: RawHa,
}

/// `[accounts]`: the quota of every account the admin gave none
/// (docs/contracts.md#failures-and-quotas); absent keys are no limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccounts {
    pub default_max_gpus: Option<u32>,
    pub default_max_instances: Option<u32>,
}

/// The snapshot store (docs/contracts.md#snapshots).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshots {
    /// Largest packed snapshot accepted, in bytes (default 10 GiB).
    pub max_bytes: Option<u64>,
}

/// Where events are POSTed (the seeds' email/SMS notice).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    pub max_attempts: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub url: String,
    pub max_attempts: u32,
}

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

pub use crate::core::settings::{PoolSettings, Timers};

#[derive(Clone, Debug)]
pub struct Settings {
    pub timers: Timers,
    pub pools: Vec<PoolSettings>,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    pub webhook: Option<WebhookSettings>,
    pub snapshot_max_bytes: u64,
    pub crash_backoff: CrashBackoff,
    pub log_max_bytes: u64,
    pub policy: Policy,
    pub ssh: Option<SshSettings>,
    pub default_quota: Quota,
    pub smtp: Option<SmtpSettings>,
    /// `[gateway]`.
    pub gateway: Option<GatewaySettings>,
    /// `[api]`.
    pub api: ApiSettings,
    pub retention: crate::core::retention::Retention,
    /// `[store] url`.
    pub store: crate::store::url::StoreUrl,
    /// `[ha]`.
    pub ha: HaSettings,
}

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_QUIC: &str = "0.0.0.0:7443";

impl RawConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
            .map_err(|detail| ConfigError::Parse { path: path.display().to_string(), detail })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let timers = self.timers.validate(&mut problems);
        let crash_backoff = self.deployments.validate(&mut problems);
        let pools = self
            .pools
            .iter()
            .enumerate()
            .filter_map(|(i, pool)| pool.validate(i, &timers, &mut problems))
            .collect::<Vec<_>>();
        for (i, pool) in pools.iter().enumerate() {
            if pools[..i].iter().any(|p| p.model.eq_ignore_ascii_case(&pool.model)) {
                problems.push(format!("pools: model {:?} is configured twice", pool.model));
            }
        }
        if let Some(token) = &self.admin_token
            && token.trim().len() < 8
        {
            problems.push("admin_token: must be at least 8 characters".into());
        }
        let webhook = self.webhook.map(|w| {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                problems
                    .push(format!("webhook.url: {:?} must be an http:// or https:// URL", w.url));
            }
            WebhookSettings { url: w.url, max_attempts: w.max_attempts.unwrap_or(8).max(1) }
        });
        let log_max_bytes =
            self.logs.max_bytes.unwrap_or(gpuspot_common::logcap::DEFAULT_MAX_BYTES);
        if log_max_bytes == 0 {
            problems.push("logs.max_bytes: must be greater than zero".into());
        }
        let ssh = self.ssh.map(|raw| raw.validate(&mut problems));
        let smtp = self.smtp.and_then(|raw| raw.validate(&mut problems));
        let gateway = self.gateway.map(|raw| raw.validate(&mut problems));
        let api = self.api.validate(&mut problems);
        let retention = self.retention.validate(&mut problems);
        let store = self.store.validate(&mut problems);
        let ha = self.ha.validate(&mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Settings {
            timers,
            pools,
            http: self.http.unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default")),
            quic: self.quic.unwrap_or_else(|| DEFAULT_QUIC.parse().expect("valid default")),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("gpuspot-data")),
            admin_token: self.admin_token,
            webhook,
            snapshot_max_bytes: self
                .snapshots
                .max_bytes
                .unwrap_or(crate::core::cluster::DEFAULT_SNAPSHOT_MAX_BYTES),
            crash_backoff,
            log_max_bytes,
            policy: self.policy.validate(),
            ssh,
            default_quota: Quota {
                max_gpus: self.accounts.default_max_gpus,
                max_instances: self.accounts.default_max_instances,
            },
            smtp,
            gateway,
            api,
            retention,
            store,
            ha,
        })
    }
}

impl RawTimers {
    fn validate(&self, problems: &mut Vec<String>) -> Timers {
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

#[cfg(test)]
mod tests {
    use super::*;
    use gpuspot_common::Money;

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
        assert_eq!(settings.timers, Timers::default());
        assert_eq!(settings.timers.hold_period, Duration::from_secs(3600));
        assert!(settings.pools.is_empty());
    }

    #[test]
    fn pools_and_timers_parse() {
        let raw = RawConfig::from_toml(
            r#"
            [timers]
            notice_period = "3s"
            heartbeat = "1s"
            host_lost_after = "5s"
            [[pools]]
            model = "H100"
            list_price = "2.58"
            [[pools]]
            model = "A100"
            list_price = "1.50"
            notice_period = "5m"
            "#,
        )
        .unwrap();
        let settings = raw.validate().unwrap();
        assert_eq!(settings.pools[0].list_price, Money(2_580_000));
        assert_eq!(settings.pools[0].floor_ppm, 100_000);
        assert_eq!(settings.pools[0].notice_period, Duration::from_secs(3));
        assert_eq!(settings.pools[1].notice_period, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig::from_toml(
            r#"
            [timers]
            heartbeat = "10s"
            host_lost_after = "5s"
            [[pools]]
            model = "H100"
            list_price = "abc"
            floor_ratio = 0.5
            busy_ratio = 0.2
            "#,
        )
        .unwrap();
        let ConfigError::Invalid(problems) = raw.validate().unwrap_err() else {
            panic!("expected Invalid")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn ssh_is_off_unless_configured() {
        assert_eq!(RawConfig::from_toml("").unwrap().validate().unwrap().ssh, None);
        let raw = RawConfig::from_toml("[ssh]\nlisten = \"127.0.0.1:2222\"").unwrap();
        let ssh = raw.validate().unwrap().ssh.expect("ssh settings");
        assert_eq!(ssh.listen, "127.0.0.1:2222".parse().unwrap());
        assert!(RawConfig::from_toml("[ssh]\nlisten = \"x\"").is_err());
    }

    #[test]
    fn account_quotas_default_to_unlimited() {
        let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
        assert_eq!(settings.default_quota, Quota::UNLIMITED);
        let raw = RawConfig::from_toml("[accounts]\ndefault_max_gpus = 4").unwrap();
        let quota = raw.validate().unwrap().default_quota;
        assert_eq!(quota, Quota { max_gpus: Some(4), max_instances: None });
        assert!(RawConfig::from_toml("[accounts]\ndefault_max_gpus = -1").is_err());
        assert!(RawConfig::from_toml("[accounts]\nmax_gpus = 1").is_err());
        // The sample config's commented `[accounts]` lines are real keys.
        let sample = include_str!("../../config/coordinator.toml");
        let section: String = sample
            .lines()
            .filter(|l| l.starts_with("# [accounts]") || l.starts_with("# default_max_"))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let documented = RawConfig::from_toml(&section).unwrap().validate().unwrap();
        assert_eq!(documented.default_quota, Quota { max_gpus: Some(8), max_instances: Some(20) });
    }

    #[test]
    fn the_sample_configs_smtp_lines_are_real_keys() {
        let sample = include_str!("../../config/coordinator.toml");
        let start = sample.find("# [smtp]").expect("the sample documents [smtp]");
        let section: String = sample[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let smtp = RawConfig::from_toml(&section).unwrap().validate().unwrap().smtp;
        let smtp = smtp.expect("smtp settings");
        assert_eq!(smtp.max_retry, Duration::from_secs(600));
        assert!(RawConfig::from_toml("").unwrap().validate().unwrap().smtp.is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(RawConfig::from_toml("[timers]\nhold = \"1h\"").is_err());
    }
}
