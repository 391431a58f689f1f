//! The payload of each event kind, one struct per shape. Fields are declared in
//! alphabetical order because the payloads were `serde_json::Value` maps (sorted keys)
//! before they were typed: the JSON stays byte for byte what users and stored rows had.
//! States and reasons are their API names (`instance_terminated`'s `state`, `reason`).

use chrono::{DateTime, Utc};
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::{DeploymentId, Money};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// `{}`: the kind says it all (`instance_created`, `instance_running`, `host_lost`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

/// `instance_placed`: the GPUs it got and its price per GPU-hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placed {
    pub gpu_uuids: Vec<String>,
    #[schema(value_type = String)]
    pub price: Money,
}

/// `instance_changed` when its agent refused the start: queued again, waiting for this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requeued {
    pub requeued: String,
}

/// `termination_scheduled`: why, and when it will be stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Noticed {
    pub reason: String,
    pub termination_time: DateTime<Utc>,
}

/// `termination_cancelled`, `instance_stopping`, `snapshot_failed`: why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Because {
    pub reason: String,
}

/// `instance_terminated`, `instance_failed`: how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    pub detail: String,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub state: String,
}

/// `price_changed`: a pool's new market price per GPU-hour, and the one before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceChanged {
    pub model: String,
    #[schema(value_type = Option<String>)]
    pub previous: Option<Money>,
    #[schema(value_type = String)]
    pub price: Money,
}

/// `host_deleted`, `host_cordoned`, `host_uncordoned`, `host_draining`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostNamed {
    pub hostname: String,
}

/// `host_joined`: the token that let it in and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostJoined {
    pub address: String,
    pub hostname: String,
    pub token_id: String,
}

/// `host_connected`: the ways it runs guests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostConnected {
    pub hostname: String,
    #[schema(value_type = Vec<String>)]
    pub runtimes: Vec<GuestRuntime>,
}

/// `host_health_changed`: each GPU as its agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostHealth {
    pub gpus: Vec<GpuHealth>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuHealth {
    pub healthy: bool,
    pub memory_used_mib: Option<u64>,
    pub temperature_celsius: Option<u32>,
    pub utilization_percent: Option<u32>,
    pub uuid: String,
}

/// Account events (`account_created`, `account_overdue`, `token_rotated`, …): where the
/// account stands after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountNews {
    #[schema(value_type = String)]
    pub balance: Money,
    pub name: String,
    pub overdue_deadline: Option<DateTime<Utc>>,
}

/// `payment`: the amount booked, and where the account stands after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentNews {
    #[schema(value_type = String)]
    pub amount: Money,
    #[schema(value_type = String)]
    pub balance: Money,
    pub name: String,
    pub overdue_deadline: Option<DateTime<Utc>>,
}

/// `account_overdue_shutdown`: how many queued requests ended with the account's work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverdueShutdown {
    #[schema(value_type = String)]
    pub balance: Money,
    pub cancelled_requests: u64,
    pub name: String,
    pub overdue_deadline: Option<DateTime<Utc>>,
}

/// Deployment events (`deployment_created`, `_changed`, `_rebuilt`, `_ended`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentNews {
    #[schema(value_type = String)]
    pub deployment_id: DeploymentId,
    pub failed: u32,
    pub restarts: u32,
    pub state: String,
    pub succeeded: u32,
}

/// `deployment_scaled`: the replica count before and after, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaled {
    #[schema(value_type = String)]
    pub deployment_id: DeploymentId,
    pub from: u32,
    pub reason: String,
    pub to: u32,
}

/// `snapshot_saved`: the packed data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSaved {
    pub sha256: String,
    pub size: u64,
    pub snapshot_id: String,
}

/// An event's payload. It serializes as the payload alone (no tag: the event's `kind`
/// says which); reading one back takes the shape it has exactly, else keeps it as is.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventData {
    Placed(Placed),
    Requeued(Requeued),
    Noticed(Noticed),
    Because(Because),
    Ended(Ended),
    PriceChanged(PriceChanged),
    HostNamed(HostNamed),
    HostJoined(HostJoined),
    HostConnected(HostConnected),
    HostHealth(HostHealth),
    AccountNews(AccountNews),
    PaymentNews(PaymentNews),
    OverdueShutdown(OverdueShutdown),
    DeploymentNews(DeploymentNews),
    Scaled(Scaled),
    SnapshotSaved(SnapshotSaved),
    Nothing(Nothing),
    /// A stored payload of no shape above (written by another version): kept as it was.
    Other(serde_json::Value),
}

impl EventData {
    /// The `reason` the payload gives, if it has one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            EventData::Noticed(Noticed { reason, .. })
            | EventData::Because(Because { reason })
            | EventData::Ended(Ended { reason, .. })
            | EventData::Scaled(Scaled { reason, .. }) => Some(reason),
            EventData::Other(value) => value.get("reason").and_then(|r| r.as_str()),
            _ => None,
        }
    }

    /// The shape `value` has exactly (it serializes back to `value`), else `Other`.
    pub fn from_value(value: serde_json::Value) -> EventData {
        macro_rules! exactly {
            ($($shape:ident),+) => {$(
                if let Ok(payload) = $shape::deserialize(&value) {
                    let typed = EventData::$shape(payload);
                    if serde_json::to_value(&typed).is_ok_and(|back| back == value) {
                        return typed;
                    }
                }
            )+};
        }
        exactly!(Nothing, Placed, Requeued, Noticed, Because, Ended, PriceChanged, HostNamed);
        exactly!(HostJoined, HostConnected, HostHealth, AccountNews, PaymentNews);
        exactly!(OverdueShutdown, DeploymentNews, Scaled, SnapshotSaved);
        EventData::Other(value)
    }
}

impl<'de> Deserialize<'de> for EventData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(EventData::from_value)
    }
}

impl Default for EventData {
    fn default() -> Self {
        EventData::Nothing(Nothing {})
    }
}

#[cfg(test)]
#[path = "payloads_tests.rs"]
mod tests;
