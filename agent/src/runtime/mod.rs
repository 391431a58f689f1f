//! Guest workloads behind one trait: [`ProcessRuntime`] runs real processes (own session
//! and namespaces, cgroup v1 or v2 limits where the host allows), [`FakeRuntime`] only records, for load tests.
//!
//! Contract shared by both: `start` either fails synchronously (nothing runs, nothing will be
//! reported; the caller reports `Failed`) or succeeds, and then exactly one final
//! [`RuntimeEvent`] arrives on the channel given at construction. A runtime whose start
//! completes later (containers: pull, create, start) first sends a `Running` event when the
//! workload actually runs; the process runtime runs it before `start` returns and sends none. A stop that was requested
//! always ends as [`WorkloadState::Stopped`], whatever the exit status.

pub mod cgroup;
pub mod container;
pub mod disk;
mod dispatch;
mod fake;
mod group;
mod network;
mod process;
mod procfs;
mod record;
mod sweep;
pub mod uids;

pub use cgroup::{Cgroups, InstanceCgroup, Limit, Share};
pub use container::{ContainerError, ContainerOptions, ContainerRuntime};
pub use disk::DataDisks;
pub use dispatch::GuestRuntimes;
pub use fake::FakeRuntime;
pub use network::Networking;
pub use process::helper::helper_main as spawn_helper_main;
pub use process::orphans::kill_orphans;
pub use process::{ProcessOptions, ProcessRuntime};
pub use uids::Isolation;

use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{ExecInput, GuestRuntime, WorkloadState};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to run one instance's command on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub instance_id: InstanceId,
    /// argv; must not be empty.
    pub command: Vec<String>,
    /// The user's environment; cannot override the `GPUSPOT_*` and `*_VISIBLE_DEVICES` variables.
    pub env: BTreeMap<String, String>,
    pub gpu_uuids: Vec<String>,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    /// `GPUSPOT_DATA_DIR`, `HOME` and the working directory; created if missing.
    pub data_dir: PathBuf,
    /// `GPUSPOT_METADATA_SOCKET`.
    pub metadata_socket: PathBuf,
    /// stdout and stderr are both appended here.
    pub log_path: PathBuf,
    /// Run in a container from this image (docs/contracts.md#guests); `None`: a process guest.
    pub image: Option<String>,
    /// Size limit of the data dir, GiB, where the filesystem can enforce one.
    pub data_disk_gib: u64,
    /// Host ports it listens on (docs/contracts.md#serving): a process guest's first is its `PORT`,
    /// a container's are published to its own ports.
    pub ports: Vec<gpuspot_common::protocol::PortMapping>,
}

/// A command to run inside a running instance (docs/contracts.md#guests "Getting in").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv; must not be empty.
    pub command: Vec<String>,
    pub tty: bool,
    /// (columns, rows) when `tty`.
    pub size: Option<(u16, u16)>,
    /// Whether input arrives on [`ExecSession::input`]; otherwise stdin is empty.
    pub stdin: bool,
}

/// A running exec. Dropping `cancel` (or the whole session) kills the command.
pub struct ExecSession {
    /// Output (stdout and stderr merged); closes when the command is done.
    pub output: tokio::sync::mpsc::Receiver<Vec<u8>>,
    pub input: tokio::sync::mpsc::Sender<ExecInput>,
    /// The exit code (None: ended by a signal), or why it could not be followed.
    pub exit: tokio::sync::oneshot::Receiver<Result<Option<i32>, String>>,
    pub cancel: tokio::sync::oneshot::Sender<()>,
}

/// The end of a workload (final states only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub instance_id: InstanceId,
    pub state: WorkloadState,
}

pub trait WorkloadRuntime: Send + Sync + 'static {
    /// Starts the workload. Its end is reported once on the events channel given at construction.
    fn start(&self, spec: WorkloadSpec) -> Result<(), RuntimeError>;
    /// SIGTERM to the whole process group, SIGKILL after kill_timeout; the end is reported as
    /// WorkloadState::Stopped. Unknown id: no-op.
    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration);
    fn running(&self) -> Vec<InstanceId>;
    /// Called once at start: takes over the workloads an earlier agent process on this host
    /// left running, which from then on are supervised (and their ends reported) like any
    /// other. Returns their ids.
    fn adopt(&self) -> Vec<InstanceId>;
    /// Runs a command inside a running instance (its uid and cgroup, or its container).
    fn exec(&self, instance_id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError>;
    /// The guest runtimes this host offers, as reported in the hello.
    fn runtimes(&self) -> Vec<GuestRuntime>;
    /// Whether its guests listen on real host ports: only then does the supervisor check
    /// an assignment's ports before the start (a runtime without guests binds none, and
    /// its checks would only race the other hosts of a fleet for the machine's ports).
    fn binds_host_ports(&self) -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("instance {0} has an empty command")]
    EmptyCommand(InstanceId),
    #[error("instance {0} is already running")]
    AlreadyRunning(InstanceId),
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("instance {0} does not run here")]
    NotRunning(InstanceId),
    #[error("{0}")]
    Exec(String),
    #[error("process guests are refused on this host: {0}")]
    Unlimited(String),
    /// A host port was taken between the supervisor's check and the start: the start is
    /// refused (and sent again with another port), not failed.
    #[error("cannot publish host port {port}: {reason}")]
    PortBusy { port: u16, reason: String },
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}
