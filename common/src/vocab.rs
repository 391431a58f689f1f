//! The fixed vocabularies the agent, the coordinator and guests share: why an instance ended,
//! how it is billed, why a workload is stopped and how one failed. Each travels typed on the
//! wire and renders the text users have always read (`reclaimed_price`, `spot`,
//! `image_pull_failed: …`); the JSON names are the same words, so records written before these
//! types existed read back unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an instance ended, as the API, events and the guest socket name it
/// (docs/contracts.md#lifecycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    User,
    Exited,
    ReclaimedPrice,
    ReclaimedCapacity,
    Overdue,
    HostLost,
    /// The operator drained the host.
    HostMaintenance,
    Failed,
    /// Its owner (or the admin) rehearsed an interruption.
    Drill,
    /// Its GPU failed.
    GpuFault,
}

impl EndReason {
    /// Every reason, in wire order.
    pub const ALL: [EndReason; 10] = [
        EndReason::User,
        EndReason::Exited,
        EndReason::ReclaimedPrice,
        EndReason::ReclaimedCapacity,
        EndReason::Overdue,
        EndReason::HostLost,
        EndReason::HostMaintenance,
        EndReason::Failed,
        EndReason::Drill,
        EndReason::GpuFault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::User => "user",
            EndReason::Exited => "exited",
            EndReason::ReclaimedPrice => "reclaimed_price",
            EndReason::ReclaimedCapacity => "reclaimed_capacity",
            EndReason::Overdue => "overdue",
            EndReason::HostLost => "host_lost",
            EndReason::HostMaintenance => "host_maintenance",
            EndReason::Failed => "failed",
            EndReason::Drill => "drill",
            EndReason::GpuFault => "gpu_fault",
        }
    }

    /// The reason `text` names (as [`EndReason::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an instance is billed: at the regular price, or as spot under a bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    Regular,
    Spot,
}

impl BillingMode {
    pub const ALL: [BillingMode; 2] = [BillingMode::Regular, BillingMode::Spot];

    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::Regular => "regular",
            BillingMode::Spot => "spot",
        }
    }
}

impl fmt::Display for BillingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the coordinator tells an agent to stop a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The instance ends, for this reason.
    Ended(EndReason),
    /// The host runs a workload it should not (the instance was replaced after a loss of
    /// its host, or deleted).
    NotDesired,
}

impl From<EndReason> for StopReason {
    fn from(reason: EndReason) -> Self {
        StopReason::Ended(reason)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Ended(reason) => reason.fmt(f),
            StopReason::NotDesired => f.write_str("not desired"),
        }
    }
}

/// What kind of failure ended a workload, as the coordinator acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The container image could not be pulled: the workload never ran.
    ImagePull,
    /// The workload could not be started (bad command, missing binary, GPUs, engine…).
    Start,
    /// The snapshot of its data dir could not be restored, so its command never started.
    SnapshotRestore,
    /// The kernel's OOM killer ended it at its memory limit.
    OutOfMemory,
    /// The agent lost track of it and cannot say how it ended.
    Lost,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::ImagePull,
        FailureKind::Start,
        FailureKind::SnapshotRestore,
        FailureKind::OutOfMemory,
        FailureKind::Lost,
    ];

    /// The words a failure of this kind is read under, before its detail.
    fn lead(self) -> Option<&'static str> {
        match self {
            FailureKind::ImagePull => Some("image_pull_failed"),
            FailureKind::OutOfMemory => Some("out of memory"),
            FailureKind::Start | FailureKind::SnapshotRestore | FailureKind::Lost => None,
        }
    }
}

/// A failed workload: its kind, and the agent's sentence about it. Displayed as users read
/// it, `image_pull_failed: <detail>`, `out of memory: <detail>` or the detail alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.lead() {
            Some(lead) => write!(f, "{lead}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

#[cfg(test)]
#[path = "vocab_tests.rs"]
mod tests;
