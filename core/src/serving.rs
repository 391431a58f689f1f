//! Guests that serve (docs/contracts.md#serving): the ports and readiness probe a request asks for,
//! the rules for them, and how many host ports an instance is given when it is placed (which ones:
//! [`super::ports`]). A process guest always gets one host port (its `PORT`); a container gets one
//! per declared port. Pure: validation and placement call it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Most ports one container may publish.
pub const MAX_CONTAINER_PORTS: usize = 16;
/// Longest probe path accepted.
const MAX_PATH_BYTES: usize = 1024;
/// A probe's interval when none is given, and the bounds of one that is.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_INTERVALS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(300));

/// `template.readiness`: the agent GETs `http_path` on the instance's first port every
/// `interval`; the instance is ready (and takes gateway traffic) while it answers 2xx/3xx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    pub http_path: String,
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    DEFAULT_PROBE_INTERVAL
}

/// Checks a probe as given at `field` (`readiness`, `template.readiness`).
pub fn check_readiness(field: &str, probe: &Readiness) -> Result<(), String> {
    let path = &probe.http_path;
    if !path.starts_with('/') || path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "{field}.http_path must be a path starting with / (at most {MAX_PATH_BYTES} bytes)"
        ));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{field}.http_path must not contain whitespace or control characters"));
    }
    let (min, max) = PROBE_INTERVALS;
    if probe.interval < min || probe.interval > max {
        return Err(format!("{field}.interval must be between 100ms and 5m"));
    }
    Ok(())
}

/// Checks the container ports at `field`: only with an image (a process guest listens on
/// its `PORT`), 1-65535, no repeats, at most [`MAX_CONTAINER_PORTS`].
pub fn check_ports(field: &str, ports: &[u16], has_image: bool) -> Result<(), String> {
    if ports.is_empty() {
        return Ok(());
    }
    if !has_image {
        return Err(format!(
            "{field} are for containers (with an image); a process guest listens on the host \
             port given in $PORT"
        ));
    }
    if ports.len() > MAX_CONTAINER_PORTS {
        return Err(format!("{field} may list at most {MAX_CONTAINER_PORTS} ports"));
    }
    if ports.contains(&0) {
        return Err(format!("{field} must be ports 1-65535"));
    }
    let distinct: BTreeSet<&u16> = ports.iter().collect();
    if distinct.len() != ports.len() {
        return Err(format!("{field} must not repeat a port"));
    }
    Ok(())
}

/// How many host ports a guest needs: its container ports, or one `PORT` for a process.
pub fn ports_needed(container_ports: &[u16], has_image: bool) -> usize {
    if has_image { container_ports.len() } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_for_containers_and_checked() {
        assert!(check_ports("ports", &[8000], true).is_ok());
        assert!(check_ports("ports", &[], false).is_ok());
        for (ports, image, needle) in [
            (vec![8000], false, "$PORT"),
            (vec![0], true, "1-65535"),
            (vec![80, 80], true, "repeat"),
            ((1..=17).collect(), true, "at most"),
        ] {
            let problem = check_ports("template.ports", &ports, image).unwrap_err();
            assert!(problem.contains(needle) && problem.starts_with("template.ports"), "{problem}");
        }
        assert_eq!(ports_needed(&[], false), 1);
        assert_eq!(ports_needed(&[80, 443], true), 2);
    }

    #[test]
    fn probes_are_checked() {
        let probe = |path: &str, ms: u64| Readiness {
            http_path: path.into(),
            interval: Duration::from_millis(ms),
        };
        assert!(check_readiness("readiness", &probe("/healthz", 2000)).is_ok());
        for bad in [probe("healthz", 2000), probe("/a b", 2000), probe("/", 10)] {
            assert!(check_readiness("readiness", &bad).unwrap_err().starts_with("readiness."));
        }
    }
}
