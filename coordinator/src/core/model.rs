//! Instances as users see them: the request (DESIGN §3/§11), the lifecycle state and the
//! reason it waits or ended. Serialized as-is into the store and the API.

use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, HostId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

impl Range {
    pub fn contains(&self, value: u64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }

    pub fn is_valid(&self) -> bool {
        match (self.min, self.max) {
            (Some(min), Some(max)) => min <= max,
            _ => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Billing {
    Regular,
    Spot { max_price: Money },
}

impl Billing {
    pub fn mode(&self) -> &'static str {
        match self {
            Billing::Regular => "regular",
            Billing::Spot { .. } => "spot",
        }
    }

    pub fn bid(&self) -> Option<Money> {
        match self {
            Billing::Regular => None,
            Billing::Spot { max_price } => Some(*max_price),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuRequest {
    pub models: Vec<String>,
    pub count: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOptions {
    #[serde(default)]
    pub enabled: bool,
    /// Restore this snapshot before the command starts (default: the latest of the
    /// instance's deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
}

/// A validated request for one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRequest {
    pub name: String,
    pub gpu: GpuRequest,
    pub cpu_cores: Range,
    pub memory_gib: Range,
    pub billing: Billing,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub snapshot: SnapshotOptions,
    /// Run in a container from this image (DESIGN §14); `None`: a process guest.
    #[serde(default)]
    pub image: Option<String>,
    /// Size limit of the data dir (seed 004's data disk); absent in older records.
    #[serde(default = "super::guest::default_data_disk_gib")]
    pub data_disk_gib: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Queued,
    Scheduled,
    Running,
    TerminationScheduled,
    Stopping,
    Terminated,
    /// Ended without ever running (DESIGN §16), e.g. `image_pull_failed: …`.
    Failed,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Queued => "queued",
            InstanceState::Scheduled => "scheduled",
            InstanceState::Running => "running",
            InstanceState::TerminationScheduled => "termination_scheduled",
            InstanceState::Stopping => "stopping",
            InstanceState::Terminated => "terminated",
            InstanceState::Failed => "failed",
        }
    }

    /// `terminated` or `failed`: nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, InstanceState::Terminated | InstanceState::Failed)
    }

    /// Holds units on a host (placed and not yet released).
    pub fn holds_units(self) -> bool {
        matches!(
            self,
            InstanceState::Scheduled
                | InstanceState::Running
                | InstanceState::TerminationScheduled
                | InstanceState::Stopping
        )
    }
}

/// Why an instance ended (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    User,
    Exited,
    ReclaimedPrice,
    ReclaimedCapacity,
    Overdue,
    HostLost,
    Failed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::User => "user",
            EndReason::Exited => "exited",
            EndReason::ReclaimedPrice => "reclaimed_price",
            EndReason::ReclaimedCapacity => "reclaimed_capacity",
            EndReason::Overdue => "overdue",
            EndReason::HostLost => "host_lost",
            EndReason::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub account_id: AccountId,
    pub request: InstanceRequest,
    pub state: InstanceState,
    /// Why it waits (queued) or how it ended (terminated); a sentence for humans.
    pub reason: Option<String>,
    pub host_id: Option<HostId>,
    pub gpu_uuids: Vec<String>,
    pub gpu_model: Option<String>,
    pub cpu_cores: Option<u32>,
    pub memory_gib: Option<u64>,
    pub price: Option<Money>,
    pub hold_until: Option<DateTime<Utc>>,
    pub termination_time: Option<DateTime<Utc>>,
    pub termination_reason: Option<EndReason>,
    pub exit_code: Option<i32>,
    pub deployment_id: Option<String>,
    /// Which of its deployment's specs this instance took.
    #[serde(default)]
    pub spec_index: Option<usize>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Monotonic creation order: the queue is served oldest first.
    pub seq: u64,
    /// What this instance has cost so far, and what of it is charged.
    #[serde(default)]
    pub meter: super::billing::Meter,
}

impl Instance {
    pub fn new(
        id: InstanceId,
        account_id: AccountId,
        request: InstanceRequest,
        now: DateTime<Utc>,
        seq: u64,
    ) -> Self {
        Self {
            id,
            account_id,
            request,
            state: InstanceState::Queued,
            reason: Some("waiting for placement".into()),
            host_id: None,
            gpu_uuids: Vec::new(),
            gpu_model: None,
            cpu_cores: None,
            memory_gib: None,
            price: None,
            hold_until: None,
            termination_time: None,
            termination_reason: None,
            exit_code: None,
            deployment_id: None,
            spec_index: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            seq,
            meter: Default::default(),
        }
    }

    /// Whether it has ended, `terminated` or `failed`: both are final and hold nothing.
    pub fn is_terminated(&self) -> bool {
        self.state.is_final()
    }

    pub fn state(&self) -> InstanceState {
        self.state
    }

    /// Why it waits (queued) or how it ended; a sentence for humans.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn host_id(&self) -> Option<&HostId> {
        self.host_id.as_ref()
    }

    pub fn gpu_uuids(&self) -> &[String] {
        &self.gpu_uuids
    }

    pub fn gpu_model(&self) -> Option<&str> {
        self.gpu_model.as_deref()
    }

    pub fn cpu_cores(&self) -> Option<u32> {
        self.cpu_cores
    }

    pub fn memory_gib(&self) -> Option<u64> {
        self.memory_gib
    }

    /// What it pays per GPU-hour now (once placed).
    pub fn price(&self) -> Option<Money> {
        self.price
    }

    pub fn hold_until(&self) -> Option<DateTime<Utc>> {
        self.hold_until
    }

    /// The deadline of its notice, while noticed.
    pub fn termination_time(&self) -> Option<DateTime<Utc>> {
        self.termination_time
    }

    /// Why it is being stopped or ended.
    pub fn termination_reason(&self) -> Option<EndReason> {
        self.termination_reason
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    pub fn deployment_id(&self) -> Option<&str> {
        self.deployment_id.as_deref()
    }

    pub fn spec_index(&self) -> Option<usize> {
        self.spec_index
    }

    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }

    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.ended_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_open_ended() {
        let r = Range { min: Some(100), max: Some(200) };
        assert!(r.contains(100) && r.contains(200) && !r.contains(99) && !r.contains(201));
        assert!(Range::default().contains(0));
        assert!(!Range { min: Some(3), max: Some(2) }.is_valid());
    }

    #[test]
    fn billing_serializes_as_the_api_shows_it() {
        let spot = Billing::Spot { max_price: Money(1_200_000) };
        assert_eq!(
            serde_json::to_value(&spot).unwrap(),
            serde_json::json!({"mode": "spot", "max_price": "1.20"})
        );
        assert_eq!(
            serde_json::to_value(Billing::Regular).unwrap(),
            serde_json::json!({"mode": "regular"})
        );
    }
}
