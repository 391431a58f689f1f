//! The agent ↔ coordinator messages: one exhaustive enum per direction. Every command names
//! its instance, so applying it twice changes nothing (reconnects replay freely).

use crate::{HostId, HostInventory, InstanceId, Money};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a message changes shape; the hello is refused on mismatch, in the
/// [`CoordinatorMessage::LegacyRefused`] form that agents of every version decode.
/// 3: refusals carry a [`RefusalCode`]. 4: guest ports and readiness (DESIGN §18).
/// 5: an agent refuses a start whose host port is taken ([`AgentMessage::StartRefused`]).
/// 6: GPU faults ([`AgentMessage::Faults`], [`CoordinatorMessage::Faults`]).
pub const PROTOCOL_VERSION: u32 = 6;

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
        /// The host ports guests are given and where they are reached (DESIGN §18).
        network: GuestNetwork,
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
    /// The readiness probe of an instance changed its verdict (sent again after each hello).
    Readiness {
        instance_id: InstanceId,
        ready: bool,
    },
    /// The guest's socket now shows the termination time just sent (for notice latency).
    NoticeShown {
        instance_id: InstanceId,
    },
    /// A `Start` the agent did not carry out, for a reason the coordinator can act on (a
    /// corrected `Start` is welcome): nothing of the instance runs or is remembered here.
    StartRefused {
        instance_id: InstanceId,
        code: StartRefusal,
        /// The sentence for logs.
        reason: String,
    },
    /// A GPU failed, or (after each hello) whether faults may be injected here.
    Faults(crate::faults::FaultNote),
}

/// Why an agent refused a start, as the coordinator acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartRefusal {
    /// A program that is no guest of this instance holds this host port of the
    /// assignment: the coordinator picks another (DESIGN §18).
    PortBusy { port: u16 },
}

/// Where a host's guests listen: the host ports the coordinator may hand out (inclusive)
/// and the address others reach them at (None: the address the coordinator sees).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    pub ports: (u16, u16),
    pub address: Option<String>,
}

/// One published port: `host` on the host, `guest` inside a container (a process guest
/// listens on the host port itself, named by `PORT`, and has `guest: None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host: u16,
    pub guest: Option<u16>,
}

/// An HTTP readiness probe the agent runs against the instance's first port: ready while
/// `GET http_path` answers 2xx or 3xx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessProbe {
    pub http_path: String,
    pub interval_ms: u64,
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
    /// Protocol 2's refusal: the sentence alone. Bincode names a variant by its index, so
    /// it keeps this place and this shape for good: it is what a peer whose version is not
    /// ours (or not known) is sent, see [`CoordinatorMessage::refusal`].
    LegacyRefused {
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
    /// The connection is refused: `code` says what the agent should do about it, `reason`
    /// is the sentence its operator reads. Only for a peer that speaks [`PROTOCOL_VERSION`].
    Refused {
        code: RefusalCode,
        reason: String,
    },
    /// Inject a fault into a simulated GPU, or clear one.
    Faults(crate::faults::FaultCommand),
}

impl CoordinatorMessage {
    /// The refusal a peer whose hello named `peer_version` can decode: typed when it speaks
    /// our version, the sentence-only legacy form otherwise or when it named none (joins).
    pub fn refusal(
        code: RefusalCode,
        reason: impl Into<String>,
        peer_version: Option<u32>,
    ) -> Self {
        let reason = reason.into();
        match peer_version {
            Some(PROTOCOL_VERSION) => CoordinatorMessage::Refused { code, reason },
            _ => CoordinatorMessage::LegacyRefused { reason },
        }
    }
}

/// Why the coordinator refuses a connection, as a program reads it (the sentence next to it
/// is for people). Serialized in snake_case; new codes go before `Other`, which is what an
/// agent makes of a code newer than itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The hello named another protocol version.
    VersionMismatch,
    /// The certificate was never issued here (or the store could not say): join again.
    UnknownCertificate,
    /// The operator deleted this host; its certificate is refused for good.
    Revoked,
    /// A session was attempted without a host certificate.
    CertificateRequired,
    /// The first frame of an authenticated connection was not a hello.
    ExpectedHello,
    /// The join token does not parse.
    InvalidToken,
    /// The join token was issued by another coordinator.
    ForeignToken,
    /// The join token is not one this coordinator knows.
    UnknownToken,
    /// The operator revoked the join token.
    TokenRevoked,
    /// The join token expired.
    TokenExpired,
    /// The join token has been used as often as it may.
    TokenUsedUp,
    /// The CSR sent with the join could not be signed.
    BadCsr,
    /// The coordinator failed on its side (store, task).
    Internal,
    /// A GPU model of the host has no pool on the coordinator, so it could not be priced;
    /// the agent retries (the operator adds the pool and restarts the coordinator).
    NoPool,
    /// A code this build does not know (sent by a newer coordinator).
    #[serde(other)]
    Other,
}

impl RefusalCode {
    /// Every code, in wire order.
    pub const ALL: [RefusalCode; 15] = [
        RefusalCode::VersionMismatch,
        RefusalCode::UnknownCertificate,
        RefusalCode::Revoked,
        RefusalCode::CertificateRequired,
        RefusalCode::ExpectedHello,
        RefusalCode::InvalidToken,
        RefusalCode::ForeignToken,
        RefusalCode::UnknownToken,
        RefusalCode::TokenRevoked,
        RefusalCode::TokenExpired,
        RefusalCode::TokenUsedUp,
        RefusalCode::BadCsr,
        RefusalCode::Internal,
        RefusalCode::NoPool,
        RefusalCode::Other,
    ];

    /// The serialized name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::VersionMismatch => "version_mismatch",
            RefusalCode::UnknownCertificate => "unknown_certificate",
            RefusalCode::Revoked => "revoked",
            RefusalCode::CertificateRequired => "certificate_required",
            RefusalCode::ExpectedHello => "expected_hello",
            RefusalCode::InvalidToken => "invalid_token",
            RefusalCode::ForeignToken => "foreign_token",
            RefusalCode::UnknownToken => "unknown_token",
            RefusalCode::TokenRevoked => "token_revoked",
            RefusalCode::TokenExpired => "token_expired",
            RefusalCode::TokenUsedUp => "token_used_up",
            RefusalCode::BadCsr => "bad_csr",
            RefusalCode::Internal => "internal",
            RefusalCode::NoPool => "no_pool",
            RefusalCode::Other => "other",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// Host ports given to this instance (DESIGN §18); the first is `PORT`.
    pub ports: Vec<PortMapping>,
    pub readiness: Option<ReadinessProbe>,
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
    /// Memory in use, MiB (NVML; None on simulated hosts).
    pub memory_used_mib: Option<u64>,
    pub temperature_celsius: Option<u32>,
}
