//! `gpuspot dev`: a whole local cluster in one process. A real coordinator (SQLite, CA,
//! HTTP API) and one real agent per simulated host, joined with a real token over loopback
//! QUIC; workloads are real processes. Only the GPU inventory is simulated.

use anyhow::Context as _;
use gpuspot_agent::config::{AgentSettings, default_socket_dir};
use gpuspot_agent::discovery::{Reservation, SimulatedDiscovery, SimulatedProfile};
use gpuspot_agent::host::{GpuKind, RuntimeKind};
use gpuspot_common::protocol::GuestNetwork;
use gpuspot_coordinator::config::{RawConfig, RawGateway};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_CONFIG: &str = include_str!("../../config/dev.toml");
const DEFAULT_HOSTS: &str = include_str!("../../config/dev-hosts.toml");

/// Options of `gpuspot dev`.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// HTTP API listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The serving gateway: `http://ADDR/d/{deployment}/…` reaches a replica set's replicas
    /// [default: 127.0.0.1:8088, or a free port when that one is taken]. Its address is also
    /// written as `gateway` into the coordinator's endpoints.json.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<SocketAddr>,
    /// QUIC listen address for the agents.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7443")]
    pub quic: SocketAddr,
    /// Coordinator and agent state (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Coordinator config (default: config/dev.toml, built in).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Simulated hosts, a TOML file of [[hosts]] profiles (default: seed 004's A, B, C).
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Container engine (Docker Engine API) for every simulated host, e.g.
    /// unix:///run/podman/podman.sock: the hosts then run image requests too.
    #[arg(long, value_name = "URL", env = "GPUSPOT_CONTAINER_ENGINE")]
    pub container_engine: Option<String>,
    /// Log lines (on stderr) as `text` (coloured only on a terminal) or `json` (one object
    /// per line), as the coordinator and the agent write them.
    #[arg(long, env = "GPUSPOT_LOG_FORMAT", default_value = "text",
          value_parser = gpuspot_common::process::LOG_FORMATS)]
    pub log_format: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    hosts: Vec<SimulatedProfile>,
}

fn load_hosts(path: Option<&Path>) -> anyhow::Result<Vec<SimulatedProfile>> {
    let (text, origin) = match path {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading hosts file {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEFAULT_HOSTS.to_owned(), "built-in hosts".to_owned()),
    };
    let file: HostsFile =
        toml::from_str(&text).with_context(|| format!("{origin} is not a valid [[hosts]] file"))?;
    anyhow::ensure!(!file.hosts.is_empty(), "{origin} lists no hosts");
    Ok(file.hosts)
}

fn coordinator_settings(
    args: &DevArgs,
    data_dir: &Path,
) -> anyhow::Result<gpuspot_coordinator::config::Settings> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::from_toml(DEFAULT_CONFIG)
            .map_err(|e| anyhow::anyhow!("built-in dev config: {e}"))?,
    };
    raw.http = Some(args.http);
    raw.quic = Some(args.quic);
    let listen = gateway_addr(args);
    let gateway = raw.gateway.take().map(|configured| RawGateway { listen, ..configured });
    raw.gateway = Some(gateway.unwrap_or_else(|| RawGateway::listening_on(listen)));
    raw.data_dir = Some(data_dir.join("coordinator"));
    if let Ok(token) = std::env::var("GPUSPOT_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        raw.admin_token = Some(token.trim().to_owned());
    }
    Ok(raw.validate()?)
}

/// `--gateway`, else the default port when it is free (another dev cluster may hold it),
/// else any free port: a busy default must not keep the cluster from starting.
fn gateway_addr(args: &DevArgs) -> SocketAddr {
    if let Some(addr) = args.gateway {
        return addr;
    }
    let default: SocketAddr = DEFAULT_GATEWAY.parse().expect("a valid default");
    match std::net::TcpListener::bind(default) {
        Ok(_) => default,
        Err(_) => {
            eprintln!("gpuspot dev: {DEFAULT_GATEWAY} is taken; the gateway takes a free port");
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

const DEFAULT_GATEWAY: &str = "127.0.0.1:8088";

/// Runs the local cluster until Ctrl-C.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    gpuspot_common::process::init_tracing_as(&args.log_format);
    gpuspot_common::pki::install_crypto_provider();
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("gpuspot-dev-{}", std::process::id())),
    };
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let settings = coordinator_settings(&args, &data_dir)?;
    let profiles = load_hosts(args.hosts.as_deref())?;
    let engine = args.container_engine.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    if let Some(url) = &engine {
        check_engine(url)?;
    }
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
    })
    .block_on(cluster(settings, profiles, data_dir, engine))
}

/// A container engine that does not answer, said before anything starts (each dev host
/// would fail on it otherwise), with how to start one.
fn check_engine(url: &str) -> anyhow::Result<()> {
    use gpuspot_agent::runtime::ContainerError;
    match gpuspot_agent::runtime::container::Engine::connect(url) {
        Ok(_) => Ok(()),
        Err(error @ ContainerError::Url(_)) => Err(anyhow::anyhow!("{error}")),
        Err(error) => {
            let socket = url.strip_prefix("unix://").unwrap_or(url);
            // Podman's own unit serves only its default socket.
            let systemd = match socket {
                "/run/podman/podman.sock" => " or `systemctl start podman.socket`",
                _ => "",
            };
            anyhow::bail!(
                "{error}\nhint: start Podman's Docker Engine API service on it, e.g. \
                 `scripts/container-engine.sh --socket {socket} --idle 0` (root; Podman and \
                 runc){systemd}; or leave out --container-engine (and GPUSPOT_CONTAINER_ENGINE) \
                 to run process guests only"
            )
        }
    }
}

/// Everything the dev hosts' agents share.
struct HostsSetup {
    data_dir: PathBuf,
    coordinator_dir: PathBuf,
    link_timeout: Duration,
    log_max_bytes: u64,
    container_engine: Option<String>,
}

async fn cluster(
    settings: gpuspot_coordinator::config::Settings,
    profiles: Vec<SimulatedProfile>,
    data_dir: PathBuf,
    container_engine: Option<String>,
) -> anyhow::Result<()> {
    // One process serves every guest socket of the dev hosts: give it all the descriptors
    // it may have, and the coordinator's log cap to its hosts.
    if let Err(error) = gpuspot_agent::metadata::raise_fd_limit() {
        tracing::warn!(%error, "cannot raise the open-file limit");
    }
    let setup = HostsSetup {
        data_dir,
        coordinator_dir: settings.data_dir.clone(),
        link_timeout: (settings.timers.heartbeat * 3).max(Duration::from_secs(3)),
        log_max_bytes: settings.log_max_bytes,
        container_engine,
    };
    let mut running = gpuspot_coordinator::server::start_unopened(settings).await?;
    let served = serve(&mut running, profiles, &setup).await;
    // Also after an error: actors dropped before they ran would panic outside the runtime.
    running.stop().await;
    served
}

/// Starts the dev hosts' agents on `running`, opens its API once they are connected, and
/// serves until Ctrl-C.
async fn serve(
    running: &mut gpuspot_coordinator::server::Running,
    profiles: Vec<SimulatedProfile>,
    setup: &HostsSetup,
) -> anyhow::Result<()> {
    let names: Vec<String> = (profiles.iter().enumerate())
        .map(|(i, p)| p.name.clone().unwrap_or_else(|| format!("host-{}", i + 1)))
        .collect();
    let token = join_token(&setup.coordinator_dir, &setup.data_dir.join("hosts"), &names)?;
    let mut quic = running.quic_addr;
    if quic.ip().is_unspecified() {
        quic.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    prepare_dirs(&setup.data_dir)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (mut agents, mut locks) = (Vec::new(), Vec::new());
    // One machine, several hosts, maybe several dev clusters: each host its own ports.
    let ports = crate::dev_ports::DevPorts::claim(&std::env::temp_dir());
    let hosts = profiles.len();
    for (profile, name) in profiles.into_iter().zip(names) {
        let network = ports.network(agents.len(), hosts);
        let settings = agent_settings(setup, &name, quic, &token, network);
        gpuspot_agent::config::create_guest_reachable_dir(&settings.state_dir)?;
        locks.push(gpuspot_agent::lock::StateLock::acquire(&settings.state_dir)?);
        let discovery = std::sync::Arc::new(SimulatedDiscovery::new(profile, Some(name)));
        let endpoint = gpuspot_common::transport::client_endpoint(quic)?;
        let agent = gpuspot_agent::host::try_host_agent_with(
            &settings,
            discovery,
            endpoint,
            RuntimeKind::Process,
            GpuKind::Simulated,
        )?;
        let mut stop = stop_rx.clone();
        // A dev cluster lives and dies with this process: its workloads stop with it.
        agents.push(tokio::spawn(agent.run_stopping_workloads(async move {
            let _ = stop.changed().await;
        })));
    }
    await_hosts(running, hosts).await;
    running.open_api();
    print_banner(running, &setup.data_dir, agents.len(), setup.container_engine.as_deref());
    gpuspot_common::process::shutdown_signal().await;
    println!("gpuspot dev: stopping workloads and the coordinator");
    let _ = stop_tx.send(true);
    for agent in agents {
        let _ = tokio::time::timeout(Duration::from_secs(40), agent).await;
    }
    Ok(())
}

/// The dev hosts' directories, reachable by guests; a warning when a parent is not.
fn prepare_dirs(data_dir: &Path) -> anyhow::Result<()> {
    // Process guests run under their own uids and must traverse these to reach their data
    // dirs and sockets; what lies inside stays private by its own modes.
    gpuspot_agent::config::restrict_umask();
    for dir in [data_dir.to_owned(), data_dir.join("hosts")] {
        gpuspot_agent::config::create_guest_reachable_dir(&dir)?;
    }
    if let Some(closed) = closed_ancestor(data_dir) {
        eprintln!(
            "gpuspot dev: warning: {} is not traversable by other users, so guests (which run \
             under their own uids) cannot reach their data dirs below {}; chmod o+x it or \
             pick another --data-dir",
            closed.display(),
            data_dir.display()
        );
    }
    Ok(())
}

/// One dev host's agent settings.
fn agent_settings(
    setup: &HostsSetup,
    name: &str,
    quic: SocketAddr,
    token: &Option<String>,
    network: GuestNetwork,
) -> AgentSettings {
    let state_dir = setup.data_dir.join("hosts").join(name);
    AgentSettings {
        coordinator: quic.to_string(),
        join_token: token.clone(),
        socket_dir: default_socket_dir(&state_dir),
        state_dir,
        simulate: None,
        hostname: Some(name.to_owned()),
        reserve: Reservation::default(),
        link_timeout: setup.link_timeout,
        log_max_bytes: setup.log_max_bytes,
        container_engine: setup.container_engine.clone(),
        uid_range: gpuspot_agent::config::DEFAULT_UID_RANGE,
        pids_max: gpuspot_agent::runtime::cgroup::DEFAULT_PIDS_MAX,
        // A laptop without root has no cgroup to limit guests with: dev runs them anyway.
        unlimited_ok: true,
        network,
        metrics: None,
    }
}

/// How long dev waits for its hosts before it answers API requests anyway.
const HOSTS_WITHIN: Duration = Duration::from_secs(30);

/// Waits until `hosts` hosts are connected (or [`HOSTS_WITHIN`] passed, said on stderr), so
/// that whoever sees the API answer also sees the cluster's hosts.
async fn await_hosts(running: &gpuspot_coordinator::server::Running, hosts: usize) {
    let deadline = tokio::time::Instant::now() + HOSTS_WITHIN;
    loop {
        match running.connected_hosts().await {
            Ok(connected) if connected >= hosts => return,
            Ok(_) if tokio::time::Instant::now() < deadline => {}
            Ok(connected) => {
                eprintln!("gpuspot dev: warning: {connected} of {hosts} hosts connected so far");
                return;
            }
            Err(error) => {
                eprintln!("gpuspot dev: warning: {error:#}");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A join token with one use for each dev host that has not joined yet (hosts kept from an
/// earlier run on the same `--data-dir` reconnect with their certificates); None when all
/// have joined. Tokens are single-use by default (docs/contracts.md#tokens), so the count matters.
fn join_token(
    coordinator_dir: &Path,
    hosts_dir: &Path,
    names: &[String],
) -> anyhow::Result<Option<String>> {
    let joined = |name: &String| {
        matches!(gpuspot_common::pki::HostCredentials::load(&hosts_dir.join(name)), Ok(Some(_)))
    };
    let joining = names.iter().filter(|name| !joined(name)).count();
    if joining == 0 {
        return Ok(None);
    }
    let uses = u32::try_from(joining).unwrap_or(u32::MAX);
    let ttl = gpuspot_coordinator::server::JOIN_TOKEN_TTL;
    let (token, _) =
        gpuspot_coordinator::server::create_join_token_with(coordinator_dir, ttl, Some(uses))?;
    Ok(Some(token.to_string()))
}

/// The first directory above `dir` that other users cannot traverse, when running as root
/// (process guests get their own uids only then).
fn closed_ancestor(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    dir.ancestors()
        .skip(1)
        .find(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_owned)
}

fn print_banner(
    running: &gpuspot_coordinator::server::Running,
    data_dir: &Path,
    hosts: usize,
    engine: Option<&str>,
) {
    let api = format!("http://{}", running.http_addr);
    println!("gpuspot dev: local cluster with {hosts} simulated hosts");
    if let Some(engine) = engine {
        println!("  containers:  through {engine} (requests with --image)");
    }
    println!("  API:         {api}");
    println!("  admin token: {}", running.admin_token);
    println!("  QUIC:        {}", running.quic_addr);
    if let Some(gateway) = running.gateway_addr {
        println!("  gateway:     http://{gateway}/d/<deployment>/");
    }
    println!("  data dir:    {}", data_dir.display());
    println!("Use it from another terminal:");
    println!("  export GPUSPOT_API={api} GPUSPOT_TOKEN={}", running.admin_token);
    println!(
        "  gpuspot hosts && gpuspot instances create --gpu 'RTX 5090' -- sh -c 'nvidia-smi -L || env | grep GPUSPOT; sleep 600'"
    );
    println!("Ctrl-C stops the cluster.");
}
