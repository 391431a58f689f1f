//! How the process runtime runs guests on this host: isolation, limits, disks, network,
//! and where workloads left by an earlier agent process are found.

use crate::runtime::cgroup::Cgroups;
use crate::runtime::disk::DataDisks;
use crate::runtime::network::Networking;
use crate::runtime::uids::Isolation;
use std::path::PathBuf;

/// How a [`super::ProcessRuntime`] runs guests on this host.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    pub isolation: Isolation,
    pub cgroups: Cgroups,
    pub disks: DataDisks,
    /// Whether namespaced guests get their own network.
    pub network: Networking,
    /// `<state_dir>/instances`, where [`crate::runtime::WorkloadRuntime::adopt`] looks for workloads an
    /// earlier agent process left running; `None`: nothing is adopted.
    pub instances_dir: Option<PathBuf>,
}

impl ProcessOptions {
    /// What the host allows: own uids and namespaces when root, cgroup limits and data
    /// disks where usable; adoption from the agent's state dir.
    pub fn for_host(settings: &crate::config::AgentSettings) -> Self {
        let isolation = Isolation::detect(settings.uid_range);
        Self {
            network: Networking::detect(matches!(isolation, Isolation::Uids(_))),
            isolation,
            cgroups: Cgroups::detect_with(settings.pids_max, settings.unlimited_ok),
            disks: DataDisks::detect(),
            instances_dir: Some(settings.state_dir.join("instances")),
        }
    }
}
