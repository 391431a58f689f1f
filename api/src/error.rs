//! The body of every failure, `{"error":{"code","message"}}`, and `GET /healthz`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every failure: `{"error":{"code","message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "instance i-1 not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `invalid_request`, `not_found`, `conflict`, `quota_exceeded`.
    pub code: String,
    /// A sentence for people; validation errors name every field at fault.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.into(), message: message.into() } }
    }
}

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// `leader`, or `standby` (several coordinators on one PostgreSQL).
    pub role: CoordinatorRole,
    /// The leader's API URL; null while no coordinator leads (or when it is this one and it
    /// advertises none).
    #[schema(example = "http://10.0.0.1:8080")]
    pub leader: Option<String>,
}

/// Whether a coordinator leads (commits, serves) or stands by (redirects to the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorRole {
    Leader,
    Standby,
}
