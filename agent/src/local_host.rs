//! What one host has and runs, as a link session drives it: its GPUs, the supervisor of its
//! workloads and their runtime's events, snapshot transfers and readiness probes. The link
//! (see [`crate::link`]) carries the coordinator's orders in and this host's reports out;
//! [`crate::host_agent::HostAgent`] puts the two together.

use crate::discovery::GpuDiscovery;
use crate::probes::Probes;
use crate::runtime::RuntimeEvent;
use crate::snapshots::SnapshotTasks;
use crate::supervisor::Supervisor;
use gpuspot_common::protocol::GuestNetwork;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a host that stops its workloads waits for their ends.
const STOP_ALL_TIMEOUT: Duration = Duration::from_secs(35);

/// The parts of a host a session works on (fields are the session's to use).
pub(crate) struct LocalHost {
    pub(crate) discovery: Arc<dyn GpuDiscovery>,
    pub(crate) supervisor: Supervisor,
    pub(crate) events: UnboundedReceiver<RuntimeEvent>,
    /// Snapshot restores and saves in flight; they outlive a session.
    pub(crate) snapshots: SnapshotTasks,
    /// How often workload output is shipped; `None` when the runtime writes none.
    pub(crate) log_poll: Option<Duration>,
    /// The host ports guests get and where they are reached, told in each hello.
    pub(crate) network: GuestNetwork,
    /// Readiness probes of the workloads that have one.
    pub(crate) probes: Probes,
}

impl LocalHost {
    /// Stops every workload and waits (bounded) for them to end.
    pub(crate) async fn stop_workloads(&mut self) {
        self.supervisor.stop_all();
        let deadline = tokio::time::Instant::now() + STOP_ALL_TIMEOUT;
        while !self.supervisor.running_ids().is_empty() {
            // A start still on a worker ends there first, then as stopped (see `stop_all`).
            let next = async {
                tokio::select! {
                    event = self.events.recv() => match event {
                        Some(event) => drop(self.supervisor.on_runtime_event(event)),
                        None => return false,
                    },
                    started = self.supervisor.next_started() => {
                        drop(self.supervisor.started(started));
                    }
                }
                true
            };
            if !matches!(tokio::time::timeout_at(deadline, next).await, Ok(true)) {
                break;
            }
        }
        self.supervisor.deletions_done().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{SimulatedDiscovery, SimulatedProfile};
    use crate::runtime::{DataDisks, FakeRuntime};
    use crate::supervisor::tests::assignment;
    use gpuspot_common::InstanceId;
    use gpuspot_common::protocol::{InstanceReport, WorkloadState};

    #[tokio::test]
    async fn stopping_the_host_stops_every_workload_and_waits_for_their_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let runtime = Arc::new(FakeRuntime::new(tx));
        let sockets = tmp.path().join("s");
        std::fs::create_dir_all(&sockets).unwrap();
        let supervisor = Supervisor::new(runtime.clone(), tmp.path().join("state"), sockets)
            .with_data_disks(DataDisks::disabled());
        let profile = SimulatedProfile {
            name: None,
            model: "NVIDIA H100".into(),
            gpu_count: 1,
            gpu_memory_mib: 1024,
            cpu_cores: 4,
            memory_gib: 8,
        };
        let mut host = LocalHost {
            discovery: Arc::new(SimulatedDiscovery::new(profile, Some("h".into()))),
            supervisor,
            events,
            snapshots: Default::default(),
            log_poll: None,
            network: GuestNetwork { ports: (40_000, 40_010), address: None },
            probes: Default::default(),
        };
        for id in ["i-1", "i-2"] {
            let mut start = assignment(id, false, None);
            start.snapshot = None;
            host.supervisor.start(start);
        }
        assert_eq!(host.supervisor.running_ids().len(), 2);

        host.stop_workloads().await;
        assert!(host.supervisor.running_ids().is_empty(), "every end was waited for");
        let stopped: Vec<InstanceId> = runtime.stopped().into_iter().map(|(id, _)| id).collect();
        assert_eq!(stopped, [InstanceId::from("i-1"), InstanceId::from("i-2")]);
        let ended =
            |id: &str| InstanceReport { instance_id: id.into(), state: WorkloadState::Stopped };
        assert_eq!(host.supervisor.reports(), [ended("i-1"), ended("i-2")]);
    }
}
