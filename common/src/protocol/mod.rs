//! The agent ↔ coordinator messages: one exhaustive enum per direction. Every command names
//! its instance, so applying it twice changes nothing (reconnects replay freely). What they
//! carry lives beside them: [`workload`] (assignments, metadata, states), [`refusal`] (typed
//! refusals), [`streams`] (exec and snapshot streams); the shared words (end reasons,
//! billing modes, failure kinds) are [`crate::vocab`]'s.

mod refusal;
mod streams;
mod workload;

pub use refusal::{RefusalCode, StartRefusal};
pub use streams::{ExecInput, ExecOutput, ExecRequest, SnapshotStreamReply, SnapshotStreamRequest};
pub use workload::{
    Assignment, GpuStatus, GuestMetadata, GuestNetwork, GuestRuntime, InstanceReport, PortMapping,
    ReadinessProbe, SnapshotPlan, SnapshotRef, WorkloadState,
};

use crate::vocab::StopReason;
use crate::{HostId, HostInventory, InstanceId};
use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes shape; the hello is refused on mismatch, in the
/// [`CoordinatorMessage::LegacyRefused`] form that agents of every version decode.
/// 3: refusals carry a [`RefusalCode`]. 4: guest ports and readiness (docs/contracts.md#serving).
/// 5: an agent refuses a start whose host port is taken ([`AgentMessage::StartRefused`]).
/// 6 (also): a standby sends agents on to the leader ([`CoordinatorMessage::NotLeader`]).
/// 6 (also): GPU faults ([`AgentMessage::Faults`], [`CoordinatorMessage::Faults`]).
/// 6: end reasons, billing modes, deployment ids, stop reasons and failure kinds are typed
/// ([`crate::vocab`]) where they were strings.
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
        /// How this host can run guests (docs/contracts.md#guests); image requests go only to
        /// `Container`.
        runtimes: Vec<GuestRuntime>,
        /// The host ports guests are given and where they are reached (docs/contracts.md#serving).
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
        reason: StopReason,
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
    /// A standby coordinator's answer to a hello or a join: it serves no agents, `leader`
    /// (its `[ha] advertise_quic`, `HOST:PORT`) does, and the agent goes there at once.
    /// While none leads the standby refuses with [`RefusalCode::NoLeader`] instead.
    NotLeader {
        leader: String,
        reason: String,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent keeps each assignment as JSON (`assignment.json`): what an agent of
    /// protocol 5 wrote, with strings for reason, mode and deployment, reads back typed.
    #[test]
    fn guest_metadata_written_with_strings_reads_back_typed() {
        let written = serde_json::json!({
            "instance_id": "i-1", "host_id": "h-1", "gpu_uuids": ["GPU-a"],
            "spot_termination_time": "2026-04-08T05:00:00Z", "termination_reason": "reclaimed_price",
            "hold_until": null, "billing_mode": "spot", "bid": "2.50", "price": "1.20",
            "deployment_id": "d-7",
        });
        let read: GuestMetadata = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(read.termination_reason, Some(crate::EndReason::ReclaimedPrice));
        assert_eq!(read.billing_mode, Some(crate::BillingMode::Spot));
        assert_eq!(read.deployment_id, Some(crate::DeploymentId::from("d-7")));
        let again = serde_json::to_value(&read).unwrap();
        assert_eq!(again["termination_reason"], written["termination_reason"]);
        assert_eq!(again["billing_mode"], written["billing_mode"]);
        assert_eq!(again["deployment_id"], written["deployment_id"]);
    }
}
