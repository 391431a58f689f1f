//! `gpuspot-agent fleet`: many simulated hosts in one process, for load tests
//! (docs/contracts.md#hosts-and-units). Each host is a whole [`crate::host_agent::HostAgent`]: its
//! own join and certificate (kept under `<state-dir>/host-NNNNN`), its own QUIC connection,
//! heartbeats and supervisor. They share one quinn client endpoint (one UDP socket; quinn
//! multiplexes the connections) and a gate that bounds how many join or handshake at once, so
//! thousands of hosts start (and reconnect after a coordinator restart) without a thundering herd.

use crate::config::{RawAgentConfig, default_socket_dir};
use crate::discovery::{SimulatedDiscovery, SimulatedProfile};
use crate::host::{GpuKind, RuntimeKind, try_host_agent_with};
use crate::link::LinkStats;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How often the fleet writes `fleet-stats.json` into its state dir.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// How long hosts get to stop their workloads on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(40);

/// Options of `gpuspot-agent fleet`.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The coordinator's QUIC address, HOST:PORT
    #[arg(long, env = "GPUSPOT_COORDINATOR")]
    pub coordinator: String,
    /// The join token (needed only for hosts that have not joined yet); it must admit as
    /// many hosts as join with it (`token create --uses N`)
    #[command(flatten)]
    pub join_token: crate::join_token::JoinTokenArgs,
    /// How many simulated hosts to run
    #[arg(long)]
    pub hosts: usize,
    /// Simulated host profile (TOML) every host reports; its `name` prefixes the hostnames
    #[arg(long)]
    pub profile: PathBuf,
    /// Where each host keeps its credentials and instance data (`host-NNNNN/` each)
    #[arg(long, env = "GPUSPOT_STATE_DIR", default_value = "gpuspot-fleet")]
    pub state_dir: PathBuf,
    /// `process` runs real workloads; `fake` runs none (they end only when stopped)
    #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
    pub runtime: RuntimeKind,
    /// How long a link may be silent before the host reconnects, e.g. "15s"
    #[arg(long, value_parser = humantime::parse_duration)]
    pub link_timeout: Option<Duration>,
    /// Number of the first host (several fleets against one coordinator need distinct ones)
    #[arg(long, default_value_t = 1)]
    pub first: usize,
    /// How many hosts may join or handshake at the same time
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Host ports for the guests, FIRST-LAST. The hosts share this machine: with the process
    /// runtime each gets its own equal part of the range; fake hosts bind no port and each
    /// offers all of it
    #[arg(long, value_name = "FIRST-LAST", default_value = "20000-32767",
          value_parser = crate::config::parse_port_range)]
    pub ports: (u16, u16),
}

/// The ports host `nth` (0-based) of a fleet of `hosts` offers its guests: its own part of
/// `range` when guests bind real ports (parts wrap around when there are more hosts than
/// ports; the coordinator retries a port another host holds), else all of it.
fn host_ports(range: (u16, u16), binds: bool, hosts: usize, nth: usize) -> (u16, u16) {
    let (first, last) = range;
    if !binds {
        return range;
    }
    let len = usize::from(last - first) + 1;
    let per = (len / hosts.max(1)).max(1);
    let start = first as usize + (nth * per) % len;
    let end = (start + per - 1).min(usize::from(last));
    (start as u16, end as u16)
}

/// The hostname of fleet host `index`: `<profile name or "sim">-NNNNN`.
pub fn hostname(profile: &SimulatedProfile, index: usize) -> String {
    format!("{}-{index:05}", profile.name.as_deref().unwrap_or("sim"))
}

/// Runs the fleet until SIGINT/SIGTERM; then every host stops its workloads.
/// `token_from_env`: `GPUSPOT_JOIN_TOKEN`, used when no `--join-token-file` is given.
pub fn run(args: FleetArgs, token_from_env: Option<String>) -> anyhow::Result<()> {
    anyhow::ensure!(args.hosts > 0, "--hosts must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let profile = SimulatedProfile::from_file(&args.profile)?;
    let token = args.join_token.resolve(token_from_env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(fleet(args, token, profile))
}

async fn fleet(
    args: FleetArgs,
    token: Option<String>,
    profile: SimulatedProfile,
) -> anyhow::Result<()> {
    let state_dir = std::path::absolute(&args.state_dir).unwrap_or(args.state_dir.clone());
    crate::config::create_private_dir(&state_dir)
        .with_context(|| format!("creating state dir {}", state_dir.display()))?;
    let target = crate::link::resolve(&args.coordinator).await?;
    let endpoint = gpuspot_common::transport::client_endpoint(target)?;
    let shared = Shared {
        endpoint: endpoint.clone(),
        gate: Arc::new(Semaphore::new(args.concurrency)),
        stats: Arc::new(LinkStats::default()),
        token,
        profile,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut hosts = JoinSet::new();
    for index in args.first..args.first + args.hosts {
        let (name, agent) = host(&args, &shared, &state_dir, index)?;
        let mut stop = stop_rx.clone();
        hosts.spawn(async move {
            let result =
                agent.run_stopping_workloads(async move { drop(stop.changed().await) }).await;
            (name, result)
        });
    }
    let stats = shared.stats;
    tracing::info!(hosts = args.hosts, runtime = ?args.runtime, coordinator = %args.coordinator, "fleet started");
    supervise(&mut hosts, &stats, &state_dir, args.hosts).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = hosts.join_next().await {
            log_end(done);
        }
    })
    .await;
    endpoint.close(0u32.into(), b"fleet stopped");
    write_stats(&state_dir, &stats, args.hosts, hosts.len());
    Ok(())
}

/// What the hosts of a fleet share.
struct Shared {
    endpoint: quinn::Endpoint,
    /// Bounds how many hosts join or handshake at once.
    gate: Arc<Semaphore>,
    stats: Arc<LinkStats>,
    token: Option<String>,
    profile: SimulatedProfile,
}

/// Fleet host `index`: its name and its agent, with its own state dir and ports.
fn host(
    args: &FleetArgs,
    shared: &Shared,
    state_dir: &Path,
    index: usize,
) -> anyhow::Result<(String, crate::host_agent::HostAgent)> {
    let name = hostname(&shared.profile, index);
    let host_dir = state_dir.join(format!("host-{index:05}"));
    let binds = args.runtime != RuntimeKind::Fake;
    let ports = host_ports(args.ports, binds, args.hosts, index - args.first);
    let settings = host_settings(args, shared.token.clone(), &host_dir, &name, ports)?;
    crate::config::create_private_dir(&host_dir)
        .with_context(|| format!("creating {}", host_dir.display()))?;
    let discovery = Arc::new(SimulatedDiscovery::new(shared.profile.clone(), Some(name.clone())));
    let (endpoint, kind) = (shared.endpoint.clone(), args.runtime);
    let agent = try_host_agent_with(&settings, discovery, endpoint, kind, GpuKind::Simulated)?
        .with_connect_gate(shared.gate.clone())
        .with_stats(shared.stats.clone());
    Ok((name, agent))
}

/// Settings for one fleet host, through the same validation as a single agent's.
fn host_settings(
    args: &FleetArgs,
    join_token: Option<String>,
    host_dir: &Path,
    name: &str,
    (first, last): (u16, u16),
) -> anyhow::Result<crate::config::AgentSettings> {
    let raw = RawAgentConfig {
        coordinator: Some(args.coordinator.clone()),
        join_token,
        state_dir: Some(host_dir.to_owned()),
        socket_dir: Some(default_socket_dir(host_dir)),
        simulate: Some(args.profile.clone()),
        hostname: Some(name.to_owned()),
        reserve: Default::default(),
        link_timeout: args.link_timeout,
        logs: Default::default(),
        containers: Default::default(),
        process: Default::default(),
        ports: crate::config::RawPorts { range: Some(format!("{first}-{last}")), address: None },
        metrics: None,
    };
    Ok(raw.validate()?)
}

/// Writes stats every [`STATS_EVERY`] and reports hosts that stop, until a signal.
async fn supervise(
    hosts: &mut JoinSet<(String, Result<(), crate::link::LinkError>)>,
    stats: &LinkStats,
    state_dir: &Path,
    total: usize,
) {
    let mut every = tokio::time::interval(STATS_EVERY);
    let shutdown = async {
        gpuspot_common::process::shutdown_signal().await;
        tracing::info!("shutting down; every fleet host stops its workloads");
    };
    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut all_up = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = every.tick() => {
                write_stats(state_dir, stats, total, hosts.len());
                let open = stats.sessions.load(Ordering::Relaxed) as usize;
                if !all_up && open >= total {
                    all_up = true;
                    tracing::info!(hosts = total, seconds = started.elapsed().as_secs_f64(), "every fleet host is connected");
                }
            }
            Some(done) = hosts.join_next() => log_end(done),
        }
    }
}

fn log_end(done: Result<(String, Result<(), crate::link::LinkError>), tokio::task::JoinError>) {
    match done {
        Ok((_, Ok(()))) => {}
        Ok((name, Err(e))) => tracing::error!(host = %name, error = %e, "fleet host stopped"),
        Err(e) => tracing::error!(error = %e, "fleet host task failed"),
    }
}

/// `fleet-stats.json`: hosts, hosts still running, sessions open, connects and heartbeats.
fn write_stats(state_dir: &Path, stats: &LinkStats, total: usize, running: usize) {
    let body = serde_json::json!({
        "at_unix_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "hosts": total,
        "running": running,
        "sessions": stats.sessions.load(Ordering::Relaxed),
        "connects": stats.connects.load(Ordering::Relaxed),
        "heartbeats": stats.heartbeats.load(Ordering::Relaxed),
    });
    let path = state_dir.join("fleet-stats.json");
    let tmp = state_dir.join("fleet-stats.json.tmp");
    let written =
        std::fs::write(&tmp, body.to_string()).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "cannot write fleet stats");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_the_profile_name_and_are_distinct() {
        let mut profile = SimulatedProfile {
            name: Some("h100".into()),
            model: "NVIDIA H100 80GB HBM3".into(),
            gpu_count: 8,
            gpu_memory_mib: 81_920,
            cpu_cores: 64,
            memory_gib: 512,
        };
        assert_eq!(hostname(&profile, 7), "h100-00007");
        profile.name = None;
        assert_eq!(hostname(&profile, 12_345), "sim-12345");
        let uuid = |i| {
            let d = SimulatedDiscovery::new(profile.clone(), Some(hostname(&profile, i)));
            crate::discovery::GpuDiscovery::inventory(&d).expect("inventory").gpus[0].uuid.clone()
        };
        assert_ne!(uuid(1), uuid(2));
    }

    #[test]
    fn host_settings_are_validated_per_host() {
        let args = FleetArgs {
            coordinator: "127.0.0.1:7443".into(),
            join_token: Default::default(),
            hosts: 2,
            profile: PathBuf::from("p.toml"),
            state_dir: PathBuf::from("/tmp/fleet"),
            runtime: RuntimeKind::Fake,
            link_timeout: Some(Duration::from_secs(9)),
            first: 1,
            concurrency: 4,
            ports: (30_000, 30_009),
        };
        let dir = Path::new("/tmp/fleet/host-00001");
        let settings = host_settings(&args, Some("t".into()), dir, "sim-00001", (30_000, 30_004))
            .expect("settings");
        assert_eq!(settings.network.ports, (30_000, 30_004));
        assert_eq!(settings.join_token.as_deref(), Some("t"));
        assert_eq!(settings.link_timeout, Duration::from_secs(9));
        assert_eq!(settings.socket_dir, PathBuf::from("/tmp/fleet/host-00001/sock"));
        assert_eq!(settings.hostname.as_deref(), Some("sim-00001"));
    }

    #[test]
    fn hosts_whose_guests_bind_ports_get_parts_of_the_range_of_their_own() {
        let range = (20_000, 20_999);
        assert_eq!(host_ports(range, false, 250, 7), range, "fake hosts bind none: all of it");
        let parts: Vec<_> = (0..4).map(|n| host_ports(range, true, 4, n)).collect();
        assert_eq!(
            parts,
            vec![(20_000, 20_249), (20_250, 20_499), (20_500, 20_749), (20_750, 20_999)]
        );
        assert_eq!(
            host_ports((20_000, 20_002), true, 5, 4),
            (20_001, 20_001),
            "more hosts than ports wrap"
        );
    }
}
