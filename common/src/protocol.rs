//! The agent ↔ coordinator messages: one exhaustive enum per direction. Every command names
//! its instance, so applying it twice changes nothing (reconnects replay freely).

use crate::{HostId, HostInventory, InstanceId, Money};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a message changes shape; the hello is refused on mismatch.
pub const PROTOCOL_VERSION: u32 = 2;

/// Agent → coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// On a connection without a client certificate: exchange a join token and a CSR for a
    /// host certificate. Nothing else is accepted on such a connection.
    Join {
        token: String,
        csr_pem: String,
        hostname: String,
    },
    /// First message on an authenticated connection: who we are and everything we run.
    Hello {
        version: u32,
        agent_version: String,
        inventory: HostInventory,
        instances: Vec<InstanceReport>,
        /// How this host can run guests (DESIGN §14); image requests go only to `Container`.
        runtimes: Vec<GuestRuntime>,
    },
    Heartbeat {
        gpus: Vec<GpuStatus>,
    },
    /// A workload changed state (started, exited, failed, stopped).
    InstanceUpdate(InstanceReport),
    /// The outcome of packing and uploading an instance's data dir when it stopped; sent
    /// before that instance's final `InstanceUpdate`, so the next run can restore it.
    SnapshotSaved {
        instance_id: InstanceId,
        result: Result<SnapshotRef, String>,
    },
    /// Workload output, at its byte offset in the instance's log (writes are idempotent).
    Log {
        instance_id: InstanceId,
        offset: u64,
        data: Vec<u8>,
    },
}

/// Coordinator → agent.
// An `Assignment` is large beside the other variants, but a message is decoded, handled and
// dropped one at a time: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CoordinatorMessage {
    Joined {
        host_id: HostId,
        cert_pem: String,
        ca_pem: String,
    },
    /// The connection is refused (bad token, bad version, unknown certificate).
    Refused {
        reason: String,
    },
    /// Answer to a hello: the complete desired state of this host. Anything the agent runs
    /// that is not listed must stop; anything listed that does not run must start.
    Welcome {
        host_id: HostId,
        heartbeat_interval_ms: u64,
        desired: Vec<Assignment>,
    },
    Start(Assignment),
    Stop {
        instance_id: InstanceId,
        reason: String,
        kill_timeout_ms: u64,
    },
    /// New guest-visible metadata (termination time, price…); wakes the guest's long-poll.
    Metadata(GuestMetadata),
}

/// What an agent must run for one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub instance_id: InstanceId,
    pub gpu_uuids: Vec<String>,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub metadata: GuestMetadata,
    /// How many bytes of output the coordinator already holds: resume from here.
    pub log_offset: u64,
    pub kill_timeout_ms: u64,
    /// Snapshots of the data dir (DESIGN §8); None when disabled.
    pub snapshot: Option<SnapshotPlan>,
    /// Run in an OCI container from this image (DESIGN §14); `None`: a process guest.
    pub image: Option<String>,
    /// Size limit of the data dir, GiB (seed 004's 50 GB data disk).
    pub data_disk_gib: u64,
}

/// The ways a host can run a guest (DESIGN §14), as `GET /v1/hosts` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestRuntime {
    /// A process under its own uid (no `image`).
    Process,
    /// An OCI container through the host's engine.
    Container,
}

/// First frame on an exec stream, a bidirectional stream the coordinator opens to the agent
/// (DESIGN §14 "Getting in"). The agent answers with [`ExecOutput`] frames ending in `Exit`
/// or `Error`; the coordinator may send [`ExecInput`] frames while it runs. Closing the
/// stream (either side) ends the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub instance_id: InstanceId,
    /// argv; must not be empty.
    pub command: Vec<String>,
    /// Allocate a terminal (interactive sessions); stdout and stderr are merged either way.
    pub tty: bool,
    /// Terminal size (columns, rows) when `tty`.
    pub size: Option<(u16, u16)>,
    /// Whether stdin frames follow; without it the command's stdin is empty.
    pub stdin: bool,
    /// The agent kills the command after this long.
    pub timeout_ms: u64,
}

/// Agent → coordinator on an exec stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecOutput {
    /// Output bytes (stdout and stderr merged, in order of arrival).
    Data(Vec<u8>),
    /// The command ended; `code` is None when a signal or the timeout ended it.
    Exit { code: Option<i32>, timed_out: bool },
    /// The command could not run (unknown instance, not running, bad command).
    Error { reason: String },
}

/// Coordinator → agent on an exec stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    /// No more stdin.
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
}

/// What to do with an instance's data dir: restore one before the command starts, and/or
/// save one when the instance stops (for any reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    pub save: bool,
    pub restore: Option<SnapshotRef>,
    /// Largest packed snapshot accepted, in bytes.
    pub max_bytes: u64,
}

/// A stored snapshot: `<id>.tar.zst` in the coordinator's snapshot store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
    /// sha256 of the packed file, hex.
    pub sha256: String,
    pub size: u64,
}

/// First frame on a snapshot stream (a bidirectional stream the agent opens next to its
/// control stream). An upload's raw bytes follow the frame; the coordinator answers with
/// one [`SnapshotStreamReply`]. A download's reply is followed by the raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStreamRequest {
    Upload { instance_id: InstanceId, sha256: String, size: u64 },
    Download { snapshot_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStreamReply {
    /// Upload stored and its checksum verified.
    Stored(SnapshotRef),
    /// Download follows: exactly `size` bytes.
    Sending(SnapshotRef),
    Rejected {
        reason: String,
    },
}

/// What the guest sees on its metadata socket (DESIGN §6). `None` answers 404.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestMetadata {
    pub instance_id: InstanceId,
    pub host_id: HostId,
    pub gpu_uuids: Vec<String>,
    pub spot_termination_time: Option<DateTime<Utc>>,
    pub termination_reason: Option<String>,
    pub hold_until: Option<DateTime<Utc>>,
    pub billing_mode: Option<String>,
    pub bid: Option<Money>,
    pub price: Option<Money>,
    pub deployment_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub instance_id: InstanceId,
    pub state: WorkloadState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadState {
    Running,
    /// The command ended by itself. `code` is None when a signal ended it.
    Exited {
        code: Option<i32>,
    },
    /// Stopped on the coordinator's order.
    Stopped,
    /// Could not be started or was lost (bad command, missing binary…).
    Failed {
        message: String,
    },
}

impl WorkloadState {
    pub fn is_final(&self) -> bool {
        !matches!(self, WorkloadState::Running)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuStatus {
    pub uuid: String,
    pub healthy: bool,
    pub utilization_percent: Option<u32>,
}
