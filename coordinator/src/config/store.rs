//! `[store]` and `[ha]` (docs/architecture.md, standby coordinators): where state lives
//! (`url`: `sqlite`, the default, or `postgres://…`), and, with PostgreSQL, how long the
//! leader's lease lasts and the addresses standbys send clients and agents to.

use crate::store::url::StoreUrl;
use serde::Deserialize;
use std::time::Duration;

/// The lease's default length: a dead leader is replaced within about this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite` or `postgres://USER[:PASS]@HOST:PORT/DB`; `--store` / `GPUSPOT_STORE` win.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    /// How long a leader's lease lasts without renewal (renewed every quarter of it).
    #[serde(default, with = "humantime_serde")]
    pub lease: Option<Duration>,
    /// The API URL standbys redirect clients to (default `http://` and the bound address).
    pub advertise_http: Option<String>,
    /// The QUIC address standbys send agents to (default the bound address).
    pub advertise_quic: Option<String>,
}

/// Validated `[ha]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    pub lease: Duration,
    pub advertise_http: Option<String>,
    pub advertise_quic: Option<String>,
}

impl RawStore {
    pub fn validate(&self, problems: &mut Vec<String>) -> StoreUrl {
        match self.url.as_deref().map(StoreUrl::parse) {
            None => StoreUrl::Sqlite,
            Some(Ok(url)) => url,
            Some(Err(e)) => {
                problems.push(format!("store.url: {e}"));
                StoreUrl::Sqlite
            }
        }
    }
}

impl RawHa {
    pub fn validate(self, problems: &mut Vec<String>) -> HaSettings {
        let lease = self.lease.unwrap_or(DEFAULT_LEASE);
        if lease < Duration::from_millis(400) {
            problems.push("ha.lease: must be at least 400ms (it is renewed every quarter)".into());
        }
        if let Some(url) = &self.advertise_http
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!("ha.advertise_http: {url:?} must be an http:// or https:// URL"));
        }
        if let Some(addr) = &self.advertise_quic
            && addr.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            problems.push(format!("ha.advertise_quic: {addr:?} must be HOST:PORT"));
        }
        let trim = |url: Option<String>| url.map(|u| u.trim_end_matches('/').to_owned());
        HaSettings {
            lease,
            advertise_http: trim(self.advertise_http),
            advertise_quic: self.advertise_quic,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RawConfig;
    use crate::store::url::StoreUrl;
    use std::time::Duration;

    #[test]
    fn sqlite_and_a_ten_second_lease_are_the_defaults_and_bad_values_are_named() {
        let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
        assert_eq!(settings.store, StoreUrl::Sqlite);
        assert_eq!(settings.ha.lease, Duration::from_secs(10));
        let raw = "[store]\nurl = \"postgres://u@db:5432/g\"\n[ha]\nlease = \"2s\"";
        let settings = RawConfig::from_toml(raw).unwrap().validate().unwrap();
        assert_eq!(settings.store, StoreUrl::Postgres("postgres://u@db:5432/g".into()));
        assert_eq!(settings.ha.lease, Duration::from_secs(2));
        let bad = "[store]\nurl = \"mysql://x\"\n[ha]\nlease = \"1ms\"\nadvertise_http = \"x\"";
        let error = RawConfig::from_toml(bad).unwrap().validate().unwrap_err().to_string();
        for field in ["store.url", "ha.lease", "ha.advertise_http"] {
            assert!(error.contains(field), "{field} in {error}");
        }
    }

    #[test]
    fn the_sample_configs_store_and_ha_lines_are_real_keys() {
        let sample = include_str!("../../../config/coordinator.toml");
        let start = sample.find("# [store]").expect("the sample documents [store]");
        let section: String = sample[start..]
            .lines()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .filter(|l| !l.starts_with("#  "))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let settings = RawConfig::from_toml(&section).unwrap().validate().unwrap();
        assert_eq!(settings.store, StoreUrl::Sqlite);
        assert_eq!(settings.ha.lease, Duration::from_secs(10));
        assert_eq!(settings.ha.advertise_quic.as_deref(), Some("10.0.0.1:7443"));
    }
}
