//! Events as the API shows them (GET /v1/events, the SSE stream, webhooks, the stored
//! log): what happened ([`EventKind`]), to whom, and its typed payload ([`EventData`],
//! one struct per shape in [`payloads`]). The JSON is the one the core wrote with `json!`
//! before the payloads were typed, byte for byte; rows stored before then still load.

pub mod payloads;

use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, HostId, InstanceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use payloads::EventData;

/// What happened; users filter on these names (`?kind=`, SSE `event:`, the webhook header).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    InstanceCreated,
    InstancePlaced,
    InstanceRunning,
    InstanceChanged,
    InstanceStopping,
    InstanceTerminated,
    InstanceFailed,
    TerminationScheduled,
    TerminationCancelled,
    PriceChanged,
    /// A new host was let in by a join token (docs/contracts.md); the operator's alone.
    HostJoined,
    HostConnected,
    HostDisconnected,
    HostHealthChanged,
    HostLost,
    HostDeleted,
    HostCordoned,
    HostUncordoned,
    HostDraining,
    AccountCreated,
    AccountChanged,
    AccountOverdue,
    /// The overdue deadline passed: the account's instances were shut down (docs/contracts.md).
    AccountOverdueShutdown,
    AccountSettled,
    AccountDisabled,
    AccountEnabled,
    Payment,
    TokenRotated,
    DeploymentCreated,
    DeploymentChanged,
    DeploymentRebuilt,
    DeploymentEnded,
    /// The autoscaler (or a schedule) changed the replica count, with its reason.
    DeploymentScaled,
    SnapshotSaved,
    SnapshotFailed,
}

impl EventKind {
    /// The name on the wire (SSE `event:`, the webhook header, the store).
    pub fn as_str(self) -> &'static str {
        use EventKind::*;
        match self {
            InstanceCreated => "instance_created",
            InstancePlaced => "instance_placed",
            InstanceRunning => "instance_running",
            InstanceChanged => "instance_changed",
            InstanceStopping => "instance_stopping",
            InstanceTerminated => "instance_terminated",
            InstanceFailed => "instance_failed",
            TerminationScheduled => "termination_scheduled",
            TerminationCancelled => "termination_cancelled",
            PriceChanged => "price_changed",
            HostJoined => "host_joined",
            HostConnected => "host_connected",
            HostDisconnected => "host_disconnected",
            HostHealthChanged => "host_health_changed",
            HostLost => "host_lost",
            HostDeleted => "host_deleted",
            HostCordoned => "host_cordoned",
            HostUncordoned => "host_uncordoned",
            HostDraining => "host_draining",
            AccountCreated => "account_created",
            AccountChanged => "account_changed",
            AccountOverdue => "account_overdue",
            AccountOverdueShutdown => "account_overdue_shutdown",
            AccountSettled => "account_settled",
            AccountDisabled => "account_disabled",
            AccountEnabled => "account_enabled",
            Payment => "payment",
            TokenRotated => "token_rotated",
            DeploymentCreated => "deployment_created",
            DeploymentChanged => "deployment_changed",
            DeploymentRebuilt => "deployment_rebuilt",
            DeploymentEnded => "deployment_ended",
            DeploymentScaled => "deployment_scaled",
            SnapshotSaved => "snapshot_saved",
            SnapshotFailed => "snapshot_failed",
        }
    }

    /// Market-wide news every account may see.
    pub fn is_public(self) -> bool {
        self == EventKind::PriceChanged
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened, for the event log, the SSE stream and webhooks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    #[schema(value_type = Option<String>)]
    pub account_id: Option<AccountId>,
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    #[schema(value_type = Option<String>)]
    pub host_id: Option<HostId>,
    /// Its payload; its shape depends on `kind`.
    pub data: EventData,
    /// The subject of the message this event put in its account's inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// That message's text, for webhooks that forward it (an SMS gateway, a chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_under_their_wire_names() {
        for kind in [EventKind::PriceChanged, EventKind::TerminationScheduled, EventKind::Payment] {
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
    }
}
