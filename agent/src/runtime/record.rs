//! What a restarted agent needs to take a process workload over, kept in its instance dir
//! (the parent of its data dir), all root-owned 0600:
//! - `process.json`: the watcher (the agent's child that waits for the workload) and the
//!   workload, each by pid and start time, with the boot they belong to; the guest's uid,
//!   cgroup, paths and environment.
//! - `exit-status`: written by the watcher: the workload's pid, then its raw wait status
//!   once it has ended. It outlives the agent, so an exit while the agent was down is known.
//! - `stopping`: present once a stop was requested, so an end seen after a restart still
//!   counts as stopped.

use gpuspot_common::InstanceId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const RECORD: &str = "process.json";
pub const STATUS: &str = "exit-status";
pub const STOPPING: &str = "stopping";

/// One process, by pid and start time (a pid alone may be reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: u32,
    /// Clock ticks since boot; 0 when the process was gone before it could be read.
    pub start_time: u64,
}

impl ProcRef {
    pub fn of(pid: u32) -> Self {
        Self { pid, start_time: super::group::start_time(pid).unwrap_or(0) }
    }

    /// Whether this very process still runs (not a zombie, not a successor on its pid).
    pub fn alive(&self) -> bool {
        self.start_time != 0
            && super::group::start_time(self.pid) == Some(self.start_time)
            && super::group::process_alive(self.pid)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub instance_id: InstanceId,
    /// `/proc/sys/kernel/random/boot_id` at start: after a reboot no pid means anything.
    pub boot_id: String,
    pub watcher: ProcRef,
    /// Leader of its own session and process group: the workload, or the init of its
    /// namespaces when `namespaced`.
    pub workload: ProcRef,
    /// Whether the guest runs in its own namespaces (commands run in it join them).
    #[serde(default)]
    pub namespaced: bool,
    /// The helper that connects the guest's own network (see [`super::network`]);
    /// `None`: the host's network.
    #[serde(default)]
    pub net_helper: Option<ProcRef>,
    /// The host ports published into its network, for a helper started again.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// (uid, gid) of an isolated guest; `None`: it runs as the agent's user.
    pub ids: Option<(u32, u32)>,
    /// Its cgroups, one per hierarchy.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub metadata_socket: PathBuf,
    /// The guest's environment, for commands run in it later (exec).
    pub env: Vec<(String, String)>,
}

impl ProcessRecord {
    /// Writes the record atomically (a crash leaves the old one or the new one).
    pub fn save(&self, instance_dir: &Path) -> std::io::Result<()> {
        crate::state_file::save_json(instance_dir, RECORD, self)
    }

    pub fn load(instance_dir: &Path) -> Option<Self> {
        crate::state_file::load_json(instance_dir, RECORD)
    }
}

/// What the watcher wrote: the workload's pid, and its raw wait status once it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<u32>,
    pub wait_status: Option<i32>,
}

pub fn read_status(path: &Path) -> Status {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().map(str::trim);
    Status {
        pid: lines.next().and_then(|l| l.parse().ok()),
        wait_status: lines.next().and_then(|l| l.parse().ok()),
    }
}

/// The exit code in a raw wait status; `None` when a signal ended the process.
pub fn exit_code(wait_status: i32) -> Option<i32> {
    libc::WIFEXITED(wait_status).then(|| libc::WEXITSTATUS(wait_status))
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// The instance dir of a workload: its data dir's parent.
pub fn instance_dir(data_dir: &Path) -> PathBuf {
    data_dir.parent().map_or_else(|| PathBuf::from("/"), Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_statuses_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let record = ProcessRecord {
            instance_id: InstanceId::from("i-1"),
            boot_id: boot_id(),
            watcher: ProcRef::of(std::process::id()),
            workload: ProcRef { pid: 1, start_time: 0 },
            namespaced: true,
            net_helper: Some(ProcRef { pid: 2, start_time: 0 }),
            ports: vec![21_000],
            ids: Some((200_001, 200_001)),
            cgroups: vec![tmp.path().join("cg")],
            data_dir: tmp.path().join("data"),
            metadata_socket: tmp.path().join("s"),
            env: vec![("A".into(), "b".into())],
        };
        record.save(tmp.path()).unwrap();
        assert_eq!(ProcessRecord::load(tmp.path()), Some(record.clone()));
        assert!(record.watcher.alive());
        assert!(!record.workload.alive(), "no start time: never taken for alive");
        assert!(!boot_id().is_empty());

        let status = tmp.path().join(STATUS);
        std::fs::write(&status, "1234\n").unwrap();
        assert_eq!(read_status(&status), Status { pid: Some(1234), wait_status: None });
        std::fs::write(&status, "1234\n768\n").unwrap();
        let ended = read_status(&status).wait_status.unwrap();
        assert_eq!(exit_code(ended), Some(3));
        assert_eq!(exit_code(libc::SIGKILL), None);
        assert_eq!(read_status(&tmp.path().join("none")), Status::default());
    }
}
