//! The `gpuspot-agent` command line. Flags and `GPUSPOT_*` variables override the config file.

use crate::config::{AgentSettings, RawAgentConfig};
use crate::join_token::JoinTokenArgs;
use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "gpuspot-agent",
    version,
    about = "gpuspot host agent: finds GPUs, runs guest workloads, reports to the coordinator",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line)
    #[arg(long, global = true, env = "GPUSPOT_LOG_FORMAT", default_value = "text",
          value_parser = gpuspot_common::process::LOG_FORMATS)]
    pub log_format: String,
    /// The coordinator's QUIC address, HOST:PORT
    #[arg(long, env = "GPUSPOT_COORDINATOR")]
    pub coordinator: Option<String>,
    #[command(flatten)]
    pub join_token: JoinTokenArgs,
    /// Agent TOML config
    #[arg(long, env = "GPUSPOT_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Simulated host profile (TOML) instead of NVML, for hosts without NVIDIA GPUs
    #[arg(long)]
    pub simulate: Option<PathBuf>,
    /// Where credentials, instance data and output are kept
    #[arg(long, env = "GPUSPOT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where guest metadata sockets are created (short path)
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
    /// Host name to report (default: the machine's, or the profile's `name`)
    #[arg(long)]
    pub hostname: Option<String>,
    /// How long the link may be silent before reconnecting, e.g. "15s"
    #[arg(long, value_parser = humantime::parse_duration)]
    pub link_timeout: Option<Duration>,
    /// Bytes of output each instance keeps on this host (`[logs] max_bytes`, default 64 MiB)
    #[arg(long)]
    pub log_max_bytes: Option<u64>,
    /// Docker Engine API of the host's container engine, e.g. unix:///run/podman/podman.sock
    /// (`[containers] engine`); without one the host runs process guests only
    #[arg(long, env = "GPUSPOT_CONTAINER_ENGINE")]
    pub container_engine: Option<String>,
    /// Host ports handed to guests, FIRST-LAST (`[ports] range`, default 20000-20999)
    #[arg(long, env = "GPUSPOT_PORTS")]
    pub ports: Option<String>,
    /// Address the gateway reaches this host's guests at (`[ports] address`; default: the
    /// address the coordinator sees)
    #[arg(long, env = "GPUSPOT_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// Serve Prometheus metrics on ADDR, e.g. 127.0.0.1:9464 (`metrics`; off by default)
    #[arg(long, value_name = "ADDR", env = "GPUSPOT_AGENT_METRICS")]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs many simulated hosts in one process, each with its own QUIC connection (load tests)
    Fleet(crate::fleet::FleetArgs),
    /// Prints what the GPU fault watch sees on this NVIDIA host: each GPU's fault events
    /// (critical Xid, double-bit ECC) and health; no fault is injected. Exits 1 when a GPU's
    /// health query fails or NVML is missing
    GpuCheck,
}

impl Args {
    /// The settings, with the join token from `--join-token-file`, else `token_from_env`
    /// (`GPUSPOT_JOIN_TOKEN`), else the config file.
    pub fn settings(&self, token_from_env: Option<String>) -> anyhow::Result<AgentSettings> {
        let mut raw = match &self.config {
            Some(path) => RawAgentConfig::from_file(path)?,
            None => RawAgentConfig::default(),
        };
        if let (Some(path), Some(_)) = (&self.config, &raw.join_token) {
            crate::join_token::warn_if_config_exposed(path);
        }
        raw.coordinator = self.coordinator.clone().or(raw.coordinator);
        raw.join_token = self.join_token.resolve(token_from_env)?.or(raw.join_token);
        raw.simulate = self.simulate.clone().or(raw.simulate);
        raw.state_dir = self.state_dir.clone().or(raw.state_dir);
        raw.socket_dir = self.socket_dir.clone().or(raw.socket_dir);
        raw.hostname = self.hostname.clone().or(raw.hostname);
        raw.link_timeout = self.link_timeout.or(raw.link_timeout);
        raw.logs.max_bytes = self.log_max_bytes.or(raw.logs.max_bytes);
        raw.containers.engine = self.container_engine.clone().or(raw.containers.engine);
        raw.ports.range = self.ports.clone().or(raw.ports.range);
        raw.ports.address = self.advertise_address.clone().or(raw.ports.address);
        raw.metrics = self.metrics.or(raw.metrics);
        Ok(raw.validate()?)
    }
}

/// Entry point of the `gpuspot-agent` binary.
pub fn main() -> ExitCode {
    // A guest's watcher or init re-exec'd from the agent binary: none of the rest.
    crate::runtime::spawn_helper_main();
    // Before any thread exists, and before anything the agent starts could inherit it.
    let token_from_env = crate::join_token::take_from_env();
    gpuspot_common::pki::install_crypto_provider();
    let args = Args::parse();
    refuse_token_on_command_line(&args);
    gpuspot_common::process::init_tracing_as(&args.log_format);
    raise_fd_limit();
    let result = match args.command {
        Some(Command::Fleet(fleet)) => crate::fleet::run(fleet, token_from_env),
        Some(Command::GpuCheck) => gpu_check(),
        None => run(args, token_from_env),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpuspot-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--join-token TOKEN` is a usage error (status 2), for the agent and for `fleet`.
fn refuse_token_on_command_line(args: &Args) {
    let mut command = Args::command();
    match &args.command {
        Some(Command::Fleet(fleet)) => {
            let fleet_command = command.find_subcommand_mut("fleet").cloned();
            let fleet_command = fleet_command.map(|c| c.bin_name("gpuspot-agent fleet"));
            fleet.join_token.refuse_command_line(fleet_command.unwrap_or(command));
        }
        Some(Command::GpuCheck) | None => args.join_token.refuse_command_line(command),
    }
}

/// `gpu-check`: the fault watch's view of each GPU (scripts/gpu-check.sh runs it).
fn gpu_check() -> anyhow::Result<()> {
    let gpus = crate::discovery::nvml_events::check()?;
    for gpu in &gpus {
        println!("{}", crate::discovery::nvml_events::describe(gpu));
    }
    if let Some(sick) = gpus.iter().find(|g| g.health.is_err()) {
        anyhow::bail!("GPU {} fails its health query", sick.index);
    }
    Ok(())
}

fn run(args: Args, token_from_env: Option<String>) -> anyhow::Result<()> {
    let settings = args.settings(token_from_env)?;
    // The state dir is traversable by guests: what the agent writes there is private.
    crate::config::restrict_umask();
    crate::config::create_guest_reachable_dir(&settings.state_dir)
        .with_context(|| format!("creating state dir {}", settings.state_dir.display()))?;
    // Before anything touches the state dir: a second agent would take the first one's
    // workloads. Held until the process ends.
    let _lock = crate::lock::StateLock::acquire(&settings.state_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let discovery = crate::host::discovery(&settings)?;
        let inventory = discovery.inventory()?;
        tracing::info!(hostname = %inventory.hostname, gpus = inventory.gpus.len(), cores = inventory.cpu_cores,
            memory_gib = inventory.memory_gib, "inventory");
        let target = crate::link::resolve(&settings.coordinator).await?;
        let endpoint = gpuspot_common::transport::client_endpoint(target)?;
        let agent = crate::host::try_host_agent(&settings, discovery.clone(), endpoint)?;
        let _metrics = match settings.metrics {
            Some(addr) => {
                let sources = crate::metrics::Sources { discovery, stats: agent.stats() };
                let (local, task) = crate::metrics::serve(addr, sources)
                    .await
                    .with_context(|| format!("binding the metrics listener on {addr}"))?;
                println!("gpuspot-agent: metrics on http://{local}/metrics");
                Some(task)
            }
            None => None,
        };
        agent.run(shutdown_signal()).await?;
        Ok(())
    })
}

/// Guests' sockets and workloads take descriptors: use all we may, before any socket opens
/// (the guests' share of descriptors is set from the limit in force then).
fn raise_fd_limit() {
    match crate::metadata::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// Resolves on SIGINT or SIGTERM. The agent then exits and its workloads keep running:
/// the next agent on the state dir adopts them (docs/contracts.md#guests).
async fn shutdown_signal() {
    gpuspot_common::process::shutdown_signal().await;
    tracing::info!("shutting down; workloads keep running and the next agent adopts them");
}
