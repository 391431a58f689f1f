//! Coordinator configuration: TOML file → [`RawConfig`] (serde, every key optional) →
//! [`Settings`] (validated). Every problem is reported at once, not the first only.

mod deployments;
mod listeners;
mod policy;
mod pool;
mod retention;
mod smtp;
mod store;
mod timers;

pub use deployments::RawDeployments;
pub use listeners::{ApiSettings, GatewaySettings, RawApi, RawGateway, RawSsh, SshSettings};
pub use policy::{Policy, RawPolicy};
pub use pool::RawPool;
pub use retention::RawRetention;
pub use smtp::{RawSmtp, SmtpSettings};
pub use store::{HaSettings, RawHa, RawStore};
pub use timers::RawTimers;

use crate::core::crash_loop::CrashBackoff;
use crate::core::quotas::Quota;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Where snapshot files live (default `<data-dir>/snapshots`): with several coordinators
    /// on one store, a directory every one of them reaches (NFS), so that a standby that
    /// takes over serves the snapshots the old leader stored.
    pub dir: Option<PathBuf>,
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
    /// `[snapshots] dir`, or the data dir's `snapshots`.
    pub snapshot_dir: PathBuf,
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
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("gpuspot-data"));
        Ok(Settings {
            timers,
            pools,
            http: self.http.unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default")),
            quic: self.quic.unwrap_or_else(|| DEFAULT_QUIC.parse().expect("valid default")),
            snapshot_dir: self.snapshots.dir.unwrap_or_else(|| data_dir.join("snapshots")),
            data_dir,
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

#[cfg(test)]
mod tests;
