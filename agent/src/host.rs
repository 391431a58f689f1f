//! Assembles one host's agent from settings: the discovery backend (NVML or a simulated
//! profile), the process runtime and the supervisor, ready to run its link.

use crate::config::AgentSettings;
use crate::discovery::{
    GpuDiscovery, NvmlDiscovery, SimulatedDiscovery, SimulatedProfile, machine_hostname,
};
use crate::link::HostAgent;
use crate::runtime::{ProcessRuntime, WorkloadRuntime};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use tokio::sync::mpsc;

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
    let killed = crate::runtime::kill_orphans(&settings.state_dir.join("instances"));
    if killed > 0 {
        tracing::warn!(
            killed,
            "killed workloads left by an earlier agent process; the coordinator will restart what it still wants"
        );
    }
    let (events_tx, events) = mpsc::unbounded_channel();
    let runtime: Arc<dyn WorkloadRuntime> = Arc::new(ProcessRuntime::new(events_tx));
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
        ),
        events,
    }
}
