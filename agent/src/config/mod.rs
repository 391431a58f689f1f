//! Agent configuration: TOML file → [`RawAgentConfig`] → [`AgentSettings`], with command-line
//! flags and `GPUSPOT_*` variables on top. Every problem is reported at once.

use crate::discovery::Reservation;
use gpuspot_common::logcap;
use gpuspot_common::protocol::GuestNetwork;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("agent config is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentConfig {
    /// `host:port` of the coordinator's QUIC listener.
    pub coordinator: Option<String>,
    /// Only until the host has joined; `--join-token-file` and `GPUSPOT_JOIN_TOKEN` come
    /// first (docs/contracts.md#limits). A file that holds it should be private (a warning says
    /// so).
    pub join_token: Option<String>,
    /// Credentials, instance data dirs and output live here.
    pub state_dir: Option<PathBuf>,
    /// Guest metadata sockets; keep it short (a socket path has at most 107 bytes).
    pub socket_dir: Option<PathBuf>,
    /// A simulated host profile instead of NVML.
    pub simulate: Option<PathBuf>,
    pub hostname: Option<String>,
    #[serde(default)]
    pub reserve: Reservation,
    /// How long the link may be silent before the agent reconnects.
    #[serde(default, with = "humantime_serde")]
    pub link_timeout: Option<Duration>,
    #[serde(default)]
    pub logs: gpuspot_common::logcap::RawLogs,
    #[serde(default)]
    pub containers: RawContainers,
    #[serde(default)]
    pub process: RawProcess,
    #[serde(default)]
    pub ports: RawPorts,
    /// Serve `/metrics` here (docs/contracts.md#operating-hosts); off when absent.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `[ports]`: the host ports guests listen on (docs/contracts.md#serving).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPorts {
    /// `FIRST-LAST`: host ports the coordinator hands to guests, one or more per instance.
    pub range: Option<String>,
    /// The address the gateway reaches this host's guests at (default: the address the
    /// coordinator sees the agent connect from).
    pub address: Option<String>,
}

/// `[containers]`: the host's container engine (docs/contracts.md#guests).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainers {
    /// Docker Engine API endpoint, e.g. `unix:///run/podman/podman.sock`; none: no containers.
    pub engine: Option<String>,
}

/// `[process]`: process guests (docs/contracts.md#guests).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcess {
    /// `FIRST-LAST`: the uids (and gids) given to process guests, one per instance.
    pub uid_range: Option<String>,
    /// Processes (and threads) one process guest may have (cgroup `pids.max`).
    pub pids_max: Option<u64>,
    /// Run process guests even where no memory, pids or CPU limit can be enforced.
    #[serde(default)]
    pub unlimited_ok: bool,
}

#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub coordinator: String,
    pub join_token: Option<String>,
    pub state_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub simulate: Option<PathBuf>,
    pub hostname: Option<String>,
    pub reserve: Reservation,
    pub link_timeout: Duration,
    /// Output each instance keeps on disk, `[logs] max_bytes`.
    pub log_max_bytes: u64,
    /// `[containers] engine`: where the Docker Engine API is served; `None`: no containers.
    pub container_engine: Option<String>,
    /// `[process] uid_range`, inclusive: one uid/gid per process guest.
    pub uid_range: (u32, u32),
    /// `[process] pids_max`: processes one process guest may have.
    pub pids_max: u64,
    /// `[process] unlimited_ok`: process guests run where no limit can be enforced.
    pub unlimited_ok: bool,
    /// `[ports]`: guests' host ports and where they are reached.
    pub network: GuestNetwork,
    /// `metrics`: where `/metrics` is served.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `[ports] range` when none is configured.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (20_000, 20_999);

/// `[process] uid_range` when none is configured.
pub const DEFAULT_UID_RANGE: (u32, u32) = (200_000, 299_999);
/// Processes one guest may have when `[process] pids_max` is not set.
pub const DEFAULT_PIDS_MAX: u64 = 4096;

/// Bounds of `[process] pids_max`: a shell and a few tools at least; no more than the
/// kernel's own pid limit.
pub const MIN_PIDS_MAX: u64 = 16;
pub const MAX_PIDS_MAX: u64 = 4_194_304;

/// The smallest `[logs] max_bytes`: one disk block.
pub const MIN_LOG_BYTES: u64 = 4096;

/// Longest socket dir: 107 bytes is the kernel's limit for a socket path, and
/// `/<instance>/metadata.sock` (`/i-<16 hex>/metadata.sock`) takes 33 of them.
pub const MAX_SOCKET_DIR: usize = 74;

impl RawAgentConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    pub fn validate(self) -> Result<AgentSettings, ConfigError> {
        let mut problems = Vec::new();
        let coordinator = self.coordinator.unwrap_or_default();
        if coordinator.trim().is_empty() {
            problems.push(
                "coordinator: set --coordinator HOST:PORT (the coordinator's QUIC address)"
                    .to_owned(),
            );
        }
        let (state_dir, socket_dir) = dirs(self.state_dir, self.socket_dir, &mut problems);
        let link_timeout = self.link_timeout.unwrap_or(Duration::from_secs(15));
        if link_timeout < Duration::from_millis(500) {
            problems.push("link_timeout: must be at least 500ms".to_owned());
        }
        let log_max_bytes = self.logs.max_bytes.unwrap_or(logcap::DEFAULT_MAX_BYTES);
        if log_max_bytes < MIN_LOG_BYTES {
            problems.push(format!("logs.max_bytes: must be at least {MIN_LOG_BYTES}"));
        }
        let (uid_range, pids_max) = process_limits(&self.process, &mut problems);
        let network = guest_network(self.ports, &mut problems);
        let container_engine =
            self.containers.engine.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(AgentSettings {
            coordinator: coordinator.trim().to_owned(),
            join_token: self.join_token,
            state_dir,
            socket_dir,
            simulate: self.simulate,
            hostname: self.hostname,
            reserve: self.reserve,
            link_timeout,
            log_max_bytes,
            container_engine,
            uid_range,
            pids_max,
            unlimited_ok: self.process.unlimited_ok,
            network,
            metrics: self.metrics,
        })
    }
}

/// The state and socket dirs, absolute: guests run in their own data dir and must still
/// find their socket.
fn dirs(
    state_dir: Option<PathBuf>,
    socket_dir: Option<PathBuf>,
    problems: &mut Vec<String>,
) -> (PathBuf, PathBuf) {
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let state_dir = absolute(state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/gpuspot-agent")));
    let socket_dir = absolute(socket_dir.unwrap_or_else(|| default_socket_dir(&state_dir)));
    if socket_dir.as_os_str().len() > MAX_SOCKET_DIR {
        problems.push(format!(
            "socket_dir: {} is too long for unix sockets (at most {MAX_SOCKET_DIR} bytes: \
             sockets are <socket_dir>/<instance>/metadata.sock, 107 bytes at most)",
            socket_dir.display()
        ));
    }
    (state_dir, socket_dir)
}

/// `[process] uid_range` and `pids_max`, checked.
fn process_limits(raw: &RawProcess, problems: &mut Vec<String>) -> ((u32, u32), u64) {
    let uid_range = match raw.uid_range.as_deref().map(parse_uid_range) {
        None => DEFAULT_UID_RANGE,
        Some(Ok(range)) => range,
        Some(Err(problem)) => {
            problems.push(format!("process.uid_range: {problem}"));
            DEFAULT_UID_RANGE
        }
    };
    let pids_max = raw.pids_max.unwrap_or(DEFAULT_PIDS_MAX);
    if !(MIN_PIDS_MAX..=MAX_PIDS_MAX).contains(&pids_max) {
        problems.push(format!(
            "process.pids_max: must be {MIN_PIDS_MAX} to {MAX_PIDS_MAX}, not {pids_max}"
        ));
    }
    (uid_range, pids_max)
}

fn guest_network(raw: RawPorts, problems: &mut Vec<String>) -> GuestNetwork {
    let ports = match raw.range.as_deref().map(parse_port_range) {
        None => DEFAULT_PORT_RANGE,
        Some(Ok(range)) => range,
        Some(Err(problem)) => {
            problems.push(format!("ports.range: {problem}"));
            DEFAULT_PORT_RANGE
        }
    };
    let address = raw.address.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    if let Some(address) = &address
        && (address.contains(['/', ' ']) || address.parse::<std::net::SocketAddr>().is_ok())
    {
        problems.push(format!("ports.address: {address:?} must be a host name or IP, no port"));
    }
    GuestNetwork { ports, address }
}

/// `"FIRST-LAST"`, unprivileged ports (1024 and up) with FIRST ≤ LAST.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (first, last) = parse_uid_range(text)?;
    match (u16::try_from(first), u16::try_from(last)) {
        (Ok(first), Ok(last)) if first >= 1024 => Ok((first, last)),
        _ => Err(format!("{text:?} must lie within 1024-65535, e.g. \"20000-20999\"")),
    }
}

/// `"FIRST-LAST"`, both above 0 (root) and FIRST ≤ LAST.
fn parse_uid_range(text: &str) -> Result<(u32, u32), String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not FIRST-LAST, e.g. \"200000-299999\""))?;
    let parse = |n: &str| n.trim().parse::<u32>().map_err(|e| format!("{n:?}: {e}"));
    let (first, last) = (parse(first)?, parse(last)?);
    if first == 0 || first > last {
        return Err(format!("{text:?} must be FIRST-LAST with 0 < FIRST <= LAST"));
    }
    Ok((first, last))
}

/// Creates `dir` (and missing parents) private to the agent's user, 0700, and restricts it
/// to 0700 if it already existed: credentials, instance data and output live there.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates `dir` (and missing parents) for the agent, reachable but not listable by guests:
/// 0711 when the agent is root (guests with their own uids must traverse it to reach their
/// data dir and socket, docs/contracts.md#guests), else 0700 like [`create_private_dir`]. What lies
/// in it stays private by its own modes (keys and records 0600, data dirs 0700 of their guest).
pub fn create_guest_reachable_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions.
    let mode = if unsafe { libc::geteuid() } == 0 { 0o711 } else { 0o700 };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Files the agent creates are its own (0600/0700) unless it says otherwise: its state dir
/// is traversable by guests, so nothing in it may be readable by default. Guests get 022
/// back before they exec.
pub fn restrict_umask() {
    // SAFETY: umask has no preconditions.
    unsafe {
        libc::umask(0o077);
    }
}

/// `<state_dir>/sock` when that is short enough, else a per-state-dir folder in /tmp.
pub fn default_socket_dir(state_dir: &Path) -> PathBuf {
    let beside = state_dir.join("sock");
    if beside.as_os_str().len() <= MAX_SOCKET_DIR {
        return beside;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state_dir.hash(&mut hasher);
    PathBuf::from(format!("/tmp/gpuspot-sock-{:016x}", hasher.finish()))
}

#[cfg(test)]
mod tests;
