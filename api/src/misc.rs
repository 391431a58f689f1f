//! Smaller answers: snapshots, inbox messages and the result of a command.

use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, InstanceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: String,
    pub size: u64,
    pub sha256: String,
    #[schema(value_type = String)]
    pub instance_id: InstanceId,
    #[schema(value_type = Option<String>)]
    pub deployment_id: Option<DeploymentId>,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
}

/// An inbox message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub body: String,
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    pub read: bool,
    /// Whether it was mailed.
    pub mail: MailState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Not mailed: no address, or no `[smtp]`.
    None,
    Pending,
    Sent,
    Failed,
}

vocabulary!(MailState { None => "none", Pending => "pending", Sent => "sent", Failed => "failed" });

/// A finished command (`POST …/exec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    pub exit_code: Option<i32>,
    /// UTF-8 (lossy), at most 1 MiB.
    pub output: String,
    pub truncated: bool,
    pub timed_out: bool,
}

/// The last text frame of an interactive session (`GET …/exec`, a WebSocket):
/// `{"exit_code":N,"timed_out":B}` or `{"error":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SessionEnd {
    Exit { exit_code: Option<i32>, timed_out: bool },
    Error { error: String },
}
