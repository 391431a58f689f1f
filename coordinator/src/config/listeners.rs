//! The listeners' tables (docs/contracts.md#limits): `[api]`, `[gateway]` and `[ssh]`. Each bounds
//! the connections it holds open (`max_connections`, `max_connections_per_client`: one IPv4 address
//! or IPv6 /64) and how long a client may take: the API and the gateway to send a request head
//! (`header_timeout`) and body (`body_timeout`, extended at 1 KiB/s received), the SSH door to log
//! in (`login_timeout`). The gateway also keeps a noticed replica in its rotation until
//! `drain_margin` before the replica's deadline at the latest (docs/contracts.md#serving).

use crate::core::rotation::DEFAULT_DRAIN_MARGIN;
use crate::listen::Limits;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest any of these timeouts may be set to.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// `max_connections` and `max_connections_per_client` of `section`, or `defaults`.
fn limits(
    section: &str,
    total: Option<usize>,
    per_client: Option<usize>,
    defaults: Limits,
    problems: &mut Vec<String>,
) -> Limits {
    let limits = Limits {
        total: total.unwrap_or(defaults.total),
        per_client: per_client.unwrap_or(defaults.per_client),
    };
    if limits.total == 0 || limits.per_client == 0 {
        problems.push(format!("[{section}] connection limits must be at least 1"));
    }
    limits
}

/// `section.key`, or `default`; between zero and an hour.
fn timeout(
    section: &str,
    key: &str,
    value: Option<Duration>,
    default: Duration,
    problems: &mut Vec<String>,
) -> Duration {
    let value = value.unwrap_or(default);
    if value.is_zero() || value > MAX_TIMEOUT {
        problems.push(format!("{section}.{key}: must be more than 0s and at most 1h"));
    }
    value
}

/// `[api]`: the HTTP API's connection limits and client timeouts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiSettings {
    pub limits: Limits,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl RawApi {
    pub fn validate(&self, problems: &mut Vec<String>) -> ApiSettings {
        let defaults = Limits { total: 4096, per_client: 64 };
        let (total, per_client) = (self.max_connections, self.max_connections_per_client);
        ApiSettings {
            limits: limits("api", total, per_client, defaults, problems),
            header_timeout: timeout(
                "api",
                "header_timeout",
                self.header_timeout,
                HEADER_TIMEOUT,
                problems,
            ),
            body_timeout: timeout("api", "body_timeout", self.body_timeout, BODY_TIMEOUT, problems),
        }
    }
}

/// `[gateway]`: `listen = "ADDR"` serves `/d/{deployment}/…` there, with the limits above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub listen: SocketAddr,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
    /// A noticed replica leaves the rotation this long before its deadline at the latest.
    #[serde(default, with = "humantime_serde")]
    pub drain_margin: Option<Duration>,
}

/// The gateway's validated `[gateway]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    pub limits: Limits,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub drain_margin: Duration,
}

impl RawGateway {
    pub fn listening_on(listen: SocketAddr) -> Self {
        RawGateway {
            listen,
            max_connections: None,
            max_connections_per_client: None,
            header_timeout: None,
            body_timeout: None,
            drain_margin: None,
        }
    }

    pub fn validate(&self, problems: &mut Vec<String>) -> GatewaySettings {
        let defaults = Limits { total: 8192, per_client: 128 };
        let (total, per_client) = (self.max_connections, self.max_connections_per_client);
        GatewaySettings {
            listen: self.listen,
            limits: limits("gateway", total, per_client, defaults, problems),
            header_timeout: timeout(
                "gateway",
                "header_timeout",
                self.header_timeout,
                HEADER_TIMEOUT,
                problems,
            ),
            body_timeout: timeout(
                "gateway",
                "body_timeout",
                self.body_timeout,
                BODY_TIMEOUT,
                problems,
            ),
            drain_margin: drain_margin(self.drain_margin, problems),
        }
    }
}

/// `gateway.drain_margin`, or 30 s; at most an hour (0s: noticed replicas serve to the end).
fn drain_margin(value: Option<Duration>, problems: &mut Vec<String>) -> Duration {
    let value = value.unwrap_or(DEFAULT_DRAIN_MARGIN);
    if value > MAX_TIMEOUT {
        problems.push("gateway.drain_margin: must be at most 1h".into());
    }
    value
}

/// `[ssh]`: `listen = "ADDR"`, the host name users are told to connect to (default: the
/// listen address when it names one, else this machine's hostname), and the limits above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub listen: SocketAddr,
    pub host: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub login_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SshSettings {
    pub listen: SocketAddr,
    pub host: Option<String>,
    pub limits: Limits,
    /// A connection not logged in by then is closed.
    pub login_timeout: Duration,
}

impl RawSsh {
    pub fn validate(self, problems: &mut Vec<String>) -> SshSettings {
        let host = self.host.map(|h| h.trim().to_owned());
        if host.as_ref().is_some_and(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            problems.push("ssh.host: must be a host name without spaces".into());
        }
        // Logins are rare and sessions few; a shell per window is plenty per address.
        let defaults = Limits { total: 1024, per_client: 16 };
        let (total, per_client) = (self.max_connections, self.max_connections_per_client);
        let login = Duration::from_secs(10);
        SshSettings {
            listen: self.listen,
            host,
            limits: limits("ssh", total, per_client, defaults, problems),
            login_timeout: timeout("ssh", "login_timeout", self.login_timeout, login, problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, RawConfig};
    use std::time::Duration;

    fn problems(toml: &str) -> Vec<String> {
        match RawConfig::from_toml(toml).unwrap().validate() {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn listeners_have_bounded_defaults() {
        let raw = "[ssh]\nlisten = \"127.0.0.1:22\"\n[gateway]\nlisten = \"127.0.0.1:80\"\n";
        let settings = RawConfig::from_toml(raw).unwrap().validate().unwrap();
        let ssh = settings.ssh.expect("ssh");
        assert_eq!((ssh.limits.total, ssh.limits.per_client), (1024, 16));
        assert_eq!(ssh.login_timeout, Duration::from_secs(10));
        let gateway = settings.gateway.expect("gateway");
        assert_eq!((gateway.limits.total, gateway.limits.per_client), (8192, 128));
        assert_eq!(gateway.body_timeout, Duration::from_secs(30));
        assert_eq!(gateway.drain_margin, Duration::from_secs(30));
        assert_eq!(settings.api.limits.per_client, 64);
        assert_eq!(settings.api.header_timeout, Duration::from_secs(10));
    }

    #[test]
    fn zero_limits_and_timeouts_are_refused_by_name() {
        let found = problems(
            "[api]\nbody_timeout = \"0s\"\nmax_connections_per_client = 0\n\
             [ssh]\nlisten = \"127.0.0.1:22\"\nlogin_timeout = \"2h\"\n\
             [gateway]\nlisten = \"127.0.0.1:80\"\nheader_timeout = \"0s\"\n\
             drain_margin = \"2h\"\n",
        );
        let names = ["api.body_timeout", "[api] connection", "ssh.login_timeout", "gateway.header"];
        for name in names.into_iter().chain(["gateway.drain_margin"]) {
            assert!(found.iter().any(|p| p.contains(name)), "{name} in {found:?}");
        }
        assert!(RawConfig::from_toml("[api]\nmax_connections = -1").is_err());
        assert!(RawConfig::from_toml("[api]\nidle = \"1s\"").is_err());
    }

    #[test]
    fn the_sample_configs_listener_lines_are_real_keys() {
        let sample = include_str!("../../../config/coordinator.toml");
        let mut section = String::new();
        for table in ["# [api]", "# [ssh]", "# [gateway]"] {
            let start = sample.find(table).unwrap_or_else(|| panic!("the sample has {table}"));
            for line in sample[start..].lines().take_while(|l| l.starts_with("# ")) {
                section.push_str(line.trim_start_matches("# "));
                section.push('\n');
            }
        }
        let settings = RawConfig::from_toml(&section).unwrap().validate().unwrap();
        assert_eq!(settings.ssh.expect("ssh").login_timeout, Duration::from_secs(10));
        let gateway = settings.gateway.expect("gateway");
        assert_eq!(gateway.body_timeout, Duration::from_secs(30));
        assert_eq!(gateway.drain_margin, Duration::from_secs(30));
        assert_eq!(settings.api.body_timeout, Duration::from_secs(30));
    }
}
