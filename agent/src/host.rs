//! Assembles one host's agent from settings: the discovery backend (NVML or a simulated
//! profile), the workload runtimes (real processes plus containers when the host has a
//! container engine, or the fake one for load tests) and the supervisor, ready to run its
//! link.

use crate::config::AgentSettings;
use crate::discovery::{
    GpuDiscovery, NvmlDiscovery, SimulatedDiscovery, SimulatedProfile, machine_hostname,
};
use crate::host_agent::HostAgent;
use crate::link::Link;
use crate::local_host::LocalHost;
use crate::runtime::{
    ContainerError, ContainerOptions, ContainerRuntime, FakeRuntime, GuestRuntimes, ProcessRuntime,
    RuntimeEvent, WorkloadRuntime,
};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often workload output is shipped to the coordinator.
pub const LOG_POLL: Duration = Duration::from_millis(250);

/// Which [`WorkloadRuntime`] runs the host's workloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// Real processes in their own session (the default).
    #[default]
    Process,
    /// No processes: workloads run until stopped, for load tests.
    Fake,
}

/// NVML unless a simulated profile is configured. Without a driver this fails with a clear
/// message rather than reporting a host with zero GPUs.
pub fn discovery(
    settings: &AgentSettings,
) -> Result<Arc<dyn GpuDiscovery>, crate::discovery::DiscoveryError> {
    match &settings.simulate {
        Some(path) => {
            let profile = SimulatedProfile::from_file(path)?;
            Ok(Arc::new(SimulatedDiscovery::new(profile, settings.hostname.clone())))
        }
        None => {
            let hostname = settings.hostname.clone().unwrap_or_else(machine_hostname);
            Ok(Arc::new(NvmlDiscovery::new(settings.reserve, hostname)?))
        }
    }
}

/// Why a host agent cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "{0}; fix [containers] engine / --container-engine, or remove it to run process guests only"
    )]
    ContainerEngine(#[from] ContainerError),
}

/// Whether the host's GPUs are real (NVML) or simulated (made-up UUIDs no container
/// engine could attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuKind {
    Real,
    Simulated,
}

impl GpuKind {
    /// Simulated when the settings name a profile. Callers that build a simulated
    /// discovery themselves (`gpuspot dev`) say so with [`try_host_agent_with`].
    pub fn of(settings: &AgentSettings) -> GpuKind {
        if settings.simulate.is_some() { GpuKind::Simulated } else { GpuKind::Real }
    }
}

/// A host agent running real processes, and containers when `settings.container_engine`
/// names one (which must answer). Call inside a tokio runtime.
pub fn try_host_agent(
    settings: &AgentSettings,
    discovery: Arc<dyn GpuDiscovery>,
    endpoint: quinn::Endpoint,
) -> Result<HostAgent, HostError> {
    let gpus = GpuKind::of(settings);
    try_host_agent_with(settings, discovery, endpoint, RuntimeKind::Process, gpus)
}

/// A host agent with the given runtime. The fake runtime writes no output, so its agent
/// does not poll for any, and runs no containers. Call inside a tokio runtime.
pub fn try_host_agent_with(
    settings: &AgentSettings,
    discovery: Arc<dyn GpuDiscovery>,
    endpoint: quinn::Endpoint,
    kind: RuntimeKind,
    gpus: GpuKind,
) -> Result<HostAgent, HostError> {
    let (events_tx, events) = mpsc::unbounded_channel();
    let runtime: Arc<dyn WorkloadRuntime> = match kind {
        RuntimeKind::Process => guest_runtimes(settings, gpus, events_tx)?,
        RuntimeKind::Fake => Arc::new(FakeRuntime::new(events_tx)),
    };
    // The fake runtime writes no output: nothing to poll or cap.
    let log_poll = (kind == RuntimeKind::Process).then_some(LOG_POLL);
    let supervisor =
        Supervisor::new(runtime, settings.state_dir.clone(), settings.socket_dir.clone())
            .with_log_limit(settings.log_max_bytes, log_poll)
            .with_start_workers(crate::supervisor::StartWorkers::for_host());
    let host = LocalHost {
        discovery,
        supervisor,
        events,
        snapshots: Default::default(),
        log_poll,
        network: settings.network.clone(),
        probes: Default::default(),
    };
    Ok(HostAgent::new(Link::new(settings, endpoint), host))
}

/// Processes, plus containers when an engine is configured (connected and checked now, so
/// that a wrong URL stops the agent at start rather than failing every image later).
fn guest_runtimes(
    settings: &AgentSettings,
    gpus: GpuKind,
    events: mpsc::UnboundedSender<RuntimeEvent>,
) -> Result<Arc<dyn WorkloadRuntime>, HostError> {
    let process: Arc<dyn WorkloadRuntime> =
        Arc::new(ProcessRuntime::for_host(events.clone(), settings));
    let container = match &settings.container_engine {
        None => None,
        Some(url) => {
            let options = ContainerOptions {
                agent: settings.state_dir.display().to_string(),
                real_gpus: gpus == GpuKind::Real,
                log_max_bytes: settings.log_max_bytes,
                guest_uids: Some(settings.uid_range),
            };
            let runtime = ContainerRuntime::connect(url, options, events)?;
            Some(Arc::new(runtime) as Arc<dyn WorkloadRuntime>)
        }
    };
    Ok(Arc::new(GuestRuntimes::new(process, container)))
}
