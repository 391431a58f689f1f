//! Assembles one host's agent from settings: the discovery backend (NVML or a simulated
//! profile), the workload runtime (real processes, or the fake one for load tests) and the
//! supervisor, ready to run its link.

use crate::config::AgentSettings;
use crate::discovery::{
    GpuDiscovery, NvmlDiscovery, SimulatedDiscovery, SimulatedProfile, machine_hostname,
};
use crate::link::{HostAgent, LinkStats};
use crate::runtime::{FakeRuntime, ProcessRuntime, WorkloadRuntime};
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

/// A host agent running real processes. Call inside a tokio runtime.
pub fn host_agent(
    settings: &AgentSettings,
    discovery: Arc<dyn GpuDiscovery>,
    endpoint: quinn::Endpoint,
) -> HostAgent {
    host_agent_with(settings, discovery, endpoint, RuntimeKind::Process)
}

/// A host agent with the given runtime. The fake runtime writes no output, so its agent
/// does not poll for any. Call inside a tokio runtime.
pub fn host_agent_with(
    settings: &AgentSettings,
    discovery: Arc<dyn GpuDiscovery>,
    endpoint: quinn::Endpoint,
    kind: RuntimeKind,
) -> HostAgent {
    if let Err(error) = crate::config::create_private_dir(&settings.state_dir) {
        tracing::warn!(%error, dir = %settings.state_dir.display(), "cannot make the state dir private");
    }
    let (events_tx, events) = mpsc::unbounded_channel();
    let runtime: Arc<dyn WorkloadRuntime> = match kind {
        RuntimeKind::Process => {
            kill_orphans(settings);
            Arc::new(ProcessRuntime::new(events_tx))
        }
        RuntimeKind::Fake => Arc::new(FakeRuntime::new(events_tx)),
    };
    // The fake runtime writes no output: nothing to poll or cap.
    let log_poll = (kind == RuntimeKind::Process).then_some(LOG_POLL);
    HostAgent {
        coordinator: settings.coordinator.clone(),
        join_token: settings.join_token.clone(),
        state_dir: settings.state_dir.clone(),
        link_timeout: settings.link_timeout,
        endpoint,
        discovery,
        supervisor: Supervisor::new(
            runtime,
            settings.state_dir.clone(),
            settings.socket_dir.clone(),
        )
        .with_log_limit(settings.log_max_bytes, log_poll),
        events,
        snapshots: Default::default(),
        log_poll,
        connect_gate: None,
        stats: Arc::new(LinkStats::default()),
        welcomed: false,
    }
}

fn kill_orphans(settings: &AgentSettings) {
    let killed = crate::runtime::kill_orphans(&settings.state_dir.join("instances"));
    if killed > 0 {
        tracing::warn!(
            killed,
            "killed workloads left by an earlier agent process; the coordinator will restart what it still wants"
        );
    }
}
