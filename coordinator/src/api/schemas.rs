//! The answers' JSON shapes as OpenAPI schemas (DESIGN §11). The views in [`super::views`]
//! and the route modules build their JSON by hand from core records; these structs only
//! describe that JSON, field for field, so the document has response schemas without the
//! views changing shape. `tests/tests/openapi.rs` compares them with real answers, so a
//! field added to a view and not here (or the reverse) fails a test.
//!
//! Nested objects whose shape is the request's own (`specs`, `template`, `readiness`,
//! `autoscaling`) are given loosely: they echo what was asked for.

// Never built: these types exist for their schemas alone.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every failure: `{"error":{"code","message"}}`.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "instance i-1 not found"}}))]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `invalid_request`, `not_found`, `conflict`, `quota_exceeded`.
    code: String,
    /// A sentence for people; validation errors name every field at fault.
    message: String,
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
    /// `leader`, or `standby` (several coordinators on one PostgreSQL).
    #[schema(example = "leader")]
    role: String,
    /// The leader's API URL; null while no coordinator leads.
    #[schema(example = "http://10.0.0.1:8080")]
    leader: Option<String>,
}

#[derive(ToSchema)]
pub struct GpuAsk {
    models: Vec<String>,
    count: u32,
}

/// An instance as it changes.
#[derive(ToSchema)]
pub struct Instance {
    id: String,
    name: String,
    account_id: String,
    /// `queued`, `scheduled`, `running`, `termination_scheduled`, `stopping`, `terminated`.
    state: String,
    /// Why it waits or why it ended.
    reason: Option<String>,
    host_id: Option<String>,
    gpu_uuids: Vec<String>,
    gpu_model: Option<String>,
    gpu: GpuAsk,
    cpu_cores: Option<u32>,
    memory_gib: Option<u64>,
    billing: Billing,
    /// Decimal string per hour.
    price: Option<String>,
    hold_until: Option<DateTime<Utc>>,
    termination_time: Option<DateTime<Utc>>,
    termination_reason: Option<String>,
    exit_code: Option<i32>,
    deployment_id: Option<String>,
    spec_index: Option<u32>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    snapshot: Value,
    image: Option<String>,
    data_disk_gib: u64,
    /// `queue` or `fail`.
    on_unavailable: String,
    ports: Vec<u16>,
    /// Container port → host port, once placed.
    host_ports: Value,
    readiness: Value,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    /// The `ssh` command line that reaches it, when the SSH door is on.
    ssh: Option<String>,
}

/// `{"mode":"regular"}` or `{"mode":"spot","max_price":"1.20"}`.
#[derive(ToSchema)]
pub struct Billing {
    /// `spot` or `regular`.
    mode: String,
    /// The spot bid per GPU-hour (spot only).
    max_price: Option<String>,
}

#[derive(ToSchema, serde::Serialize)]
pub struct Quota {
    max_gpus: Option<u32>,
    max_instances: Option<u32>,
}

#[derive(ToSchema, serde::Serialize)]
pub struct Usage {
    gpus: u32,
    instances: u32,
}

#[derive(ToSchema)]
pub struct HostGpu {
    index: u32,
    uuid: String,
    model: String,
    memory_mib: u64,
    pci_bus_id: String,
    healthy: bool,
    instance_id: Option<String>,
}

#[derive(ToSchema)]
pub struct HostUnit {
    cpu_cores: u32,
    memory_gib: u64,
}

/// A host with its units and GPUs (admin only).
#[derive(ToSchema)]
pub struct Host {
    id: String,
    hostname: String,
    state: String,
    agent_version: String,
    /// `process`, and `container` when the host has a container engine.
    runtimes: Vec<String>,
    cpu_cores: u32,
    memory_gib: u64,
    gpus: Vec<HostGpu>,
    unit: Option<HostUnit>,
    units_total: u32,
    units_healthy: u32,
    units_free: u32,
    joined_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// One GPU model's market.
#[derive(ToSchema)]
pub struct Pool {
    model: String,
    list_price: String,
    market_price: String,
    available: u32,
    /// e.g. `Currently available (3)`.
    availability: String,
    total: u32,
    /// e.g. `2m`.
    notice_period: String,
    notice_period_seconds: u64,
    /// `market` or `fixed_at_start`.
    pricing: String,
}

#[derive(ToSchema)]
pub struct PricePoint {
    at: DateTime<Utc>,
    price: String,
}

/// An account with its quota and what it holds.
#[derive(ToSchema, serde::Serialize)]
pub struct Account {
    id: String,
    name: String,
    /// Decimal string.
    balance: String,
    overdue: bool,
    overdue_since: Option<DateTime<Utc>>,
    overdue_deadline: Option<DateTime<Utc>>,
    webhook_url: Option<String>,
    email: Option<String>,
    disabled: bool,
    created_at: DateTime<Utc>,
    /// The effective quota: the account's own, else the config default; null is no limit.
    quota: Quota,
    /// What the account holds now, queued requests included.
    usage: Usage,
}

/// An account and its new API token, shown this once. (`Serialize` only so that
/// `#[serde(flatten)]` is understood.)
#[derive(ToSchema, serde::Serialize)]
pub struct AccountWithToken {
    #[serde(flatten)]
    account: Account,
    token: String,
}

/// `GET /v1/whoami`: the token's account (for the admin token, the operator account it
/// acts for) and its role.
#[derive(ToSchema, serde::Serialize)]
pub struct Whoami {
    #[serde(flatten)]
    account: Account,
    /// `admin` for the admin token, `account` for an account's token.
    #[schema(example = "account")]
    role: String,
}

/// Signed: payments positive, charges negative.
#[derive(ToSchema)]
pub struct LedgerEntry {
    id: u64,
    at: DateTime<Utc>,
    kind: String,
    amount: String,
    instance_id: Option<String>,
    balance_after: String,
}

#[derive(ToSchema)]
pub struct PaymentReceipt {
    entry: LedgerEntry,
    account: Account,
}

/// A deployment and its instances.
#[derive(ToSchema)]
pub struct Deployment {
    id: String,
    name: String,
    account_id: String,
    /// `replicaset`, `job` or `container`.
    mode: String,
    replicas: u32,
    completions: u32,
    parallelism: u32,
    retry_limit: u32,
    succeeded: u32,
    failed: u32,
    restarts: u32,
    /// `waiting`, `running`, `completed`, `failed` or `deleted`.
    state: String,
    reason: Option<String>,
    specs: Vec<Value>,
    template: Value,
    created_at: DateTime<Utc>,
    autoscaling: Value,
    schedule: Value,
    instances: Vec<Instance>,
    /// After a change: how many instances were moved to new specs.
    moved: Option<u32>,
}

/// Where a deployment's instance serves.
#[derive(ToSchema)]
pub struct Endpoint {
    instance_id: String,
    host_id: Option<String>,
    hostname: Option<String>,
    address: Option<String>,
    ready: bool,
    draining: bool,
    gpu_uuids: Vec<String>,
    spec_index: Option<u32>,
    billing: Billing,
    started_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct Snapshot {
    id: String,
    size: u64,
    sha256: String,
    instance_id: String,
    deployment_id: Option<String>,
    account_id: String,
    created_at: DateTime<Utc>,
}

/// An inbox message.
#[derive(ToSchema)]
pub struct Message {
    id: String,
    at: DateTime<Utc>,
    subject: String,
    body: String,
    instance_id: Option<String>,
    read: bool,
    /// Whether it was mailed: e.g. `none`, `pending`, `sent`, `failed`.
    mail: String,
}

/// A finished command (`POST …/exec`).
#[derive(ToSchema)]
pub struct ExecResult {
    exit_code: Option<i32>,
    /// UTF-8 (lossy), at most 1 MiB.
    output: String,
    truncated: bool,
    timed_out: bool,
}

/// `readiness`: the agent GETs `http_path` on the first port every `interval`.
#[derive(ToSchema)]
pub struct ReadinessDoc {
    #[schema(example = "/healthz")]
    http_path: String,
    /// A duration such as `5s`.
    interval: Option<String>,
}
