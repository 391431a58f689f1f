//! What users ask for (docs/contracts.md#placement, #http-api) and the names of the states and end
//! reasons they see; the instance itself and its lifecycle are in [`super::instance`].

use gpuspot_common::{BillingMode, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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
    pub fn mode(&self) -> BillingMode {
        match self {
            Billing::Regular => BillingMode::Regular,
            Billing::Spot { .. } => BillingMode::Spot,
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotOptions {
    #[serde(default)]
    pub enabled: bool,
    /// Restore this snapshot before the command starts (default: the latest of the
    /// instance's deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
}

/// Seed 004: every instance comes with a 50 GB data disk.
pub const DEFAULT_DATA_DISK_GIB: u64 = 50;

/// serde's default for records and specs written before `data_disk_gib` existed.
pub fn default_data_disk_gib() -> u64 {
    DEFAULT_DATA_DISK_GIB
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
    /// Run in a container from this image (docs/contracts.md#guests); `None`: a process guest.
    #[serde(default)]
    pub image: Option<String>,
    /// Size limit of the data dir (seed 004's data disk); absent in older records.
    #[serde(default = "default_data_disk_gib")]
    pub data_disk_gib: u64,
    /// What happens when it cannot be placed at once (docs/contracts.md#failures-and-quotas);
    /// absent in older records.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// Container ports to publish on host ports (docs/contracts.md#serving).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The agent's readiness probe (docs/contracts.md#serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<super::serving::Readiness>,
}

/// `"queue"`: wait for capacity (seed 004); `"fail"`: end `failed` with `out_of_stock: …`
/// when the first placement attempt finds nothing (seed 001).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    #[default]
    Queue,
    Fail,
}

impl OnUnavailable {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queue" => Some(OnUnavailable::Queue),
            "fail" => Some(OnUnavailable::Fail),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Queue => "queue",
            OnUnavailable::Fail => "fail",
        }
    }
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
    /// Ended without ever running (docs/contracts.md#failures-and-quotas), e.g. `image_pull_failed:
    /// …`.
    Failed,
}

impl InstanceState {
    /// Every state, in lifecycle order (what `?state=` may name).
    pub const ALL: [InstanceState; 7] = [
        InstanceState::Queued,
        InstanceState::Scheduled,
        InstanceState::Running,
        InstanceState::TerminationScheduled,
        InstanceState::Stopping,
        InstanceState::Terminated,
        InstanceState::Failed,
    ];

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

/// Why an instance ended (docs/contracts.md#lifecycle): the wire's word, shared with agents and
/// guests.
pub use gpuspot_common::vocab::EndReason;

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
    fn on_unavailable_defaults_to_queue_in_older_records() {
        let old = serde_json::json!({
            "name": "n", "gpu": {"models": ["H100"], "count": 1}, "cpu_cores": {},
            "memory_gib": {}, "billing": {"mode": "regular"}, "command": ["true"], "env": {},
            "snapshot": {},
        });
        let request: InstanceRequest = serde_json::from_value(old).unwrap();
        assert_eq!(request.on_unavailable, OnUnavailable::Queue);
        assert_eq!(OnUnavailable::parse("fail"), Some(OnUnavailable::Fail));
        assert_eq!(OnUnavailable::parse("later"), None);
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
