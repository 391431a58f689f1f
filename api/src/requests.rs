//! What clients send: the bodies of the routes that create or change something. Fields a
//! wrong type of which must be refused with the field's name are taken as JSON values and
//! checked by the coordinator's validation; the rest are typed here.

use crate::instances::{Range, Readiness, SnapshotOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuBody {
    /// In order of preference; at most 16 entries (repeats count) of at most 64 characters.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingBody {
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<String>,
}

/// `POST /v1/instances`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceBody {
    #[schema(max_length = 63)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The admin may create for another account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub gpu: GpuBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingBody>,
    /// Optional with an image (it replaces the image's CMD), required without; at most
    /// 64 KiB in all (each argument with its NUL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Names `[A-Za-z_][A-Za-z0-9_]*`; at most 64 KiB in all (`NAME=value` and a NUL each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotOptions>,
    /// Taken as JSON so that a wrong type is refused with the field's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub image: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub data_disk_gib: Option<Value>,
    /// `"queue"` (default) or `"fail"`: end at once, `failed`, when nothing can take it
    /// now. JSON so that a wrong type names the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub on_unavailable: Option<Value>,
    /// Container ports to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<u16>>)]
    pub ports: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Readiness>)]
    pub readiness: Option<Value>,
}

/// One of a deployment's `specs`: where and how its instances may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecBody {
    pub gpu: GpuBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingBody>,
}

/// A deployment's `template`: what its instances run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub image: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub data_disk_gib: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<u16>>)]
    pub ports: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Readiness>)]
    pub readiness: Option<Value>,
}

/// `POST /v1/deployments`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBody {
    /// Unique among live deployments whatever its case; no leading or trailing dot.
    #[schema(max_length = 63, pattern = "^([A-Za-z0-9_-]([A-Za-z0-9._-]{0,61}[A-Za-z0-9_-])?)?$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_limit: Option<u32>,
    #[schema(max_items = 16)]
    pub specs: Vec<SpecBody>,
    pub template: TemplateBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Replica sets: scaling on load and on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Value>,
}

/// `PATCH /v1/deployments/{id}`: what it names is replaced, the rest stays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = DeploymentChange)]
#[serde(deny_unknown_fields)]
pub struct DeploymentChangeBody {
    /// A replica set's count (autoscaling keeps it within its bounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[schema(max_items = 16)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<SpecBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateBody>,
    /// A replica set's autoscaling, as at creation; `null` turns it off.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub autoscaling: Option<Option<Value>>,
    /// A replica set's schedule, as at creation (it applies from now on); `null` or `[]`
    /// clears it.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub schedule: Option<Option<Value>>,
}

/// `PATCH /v1/instances/{id}`: `name` and `env` change; the billing mode and the size are
/// fixed (409), so those keys are accepted only to be refused with a reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = InstanceChange)]
#[serde(deny_unknown_fields)]
pub struct InstanceChangeBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Refused: 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<Value>,
    /// Refused: 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Value>,
    /// Refused: 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<Value>,
    /// Refused: 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<Value>,
}

/// `POST /v1/accounts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = NewAccount)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `POST /v1/accounts/{id}/payments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Payment)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// A decimal above zero with at most 6 decimals, e.g. `10.00`.
    #[schema(example = "10.00", pattern = r"^[0-9]+(\.[0-9]{1,6})?$")]
    pub amount: String,
}

/// `PATCH /v1/accounts/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = AccountChange)]
#[serde(deny_unknown_fields)]
pub struct AccountChangeBody {
    /// Admin only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// An object changes the limits it names (`null` in one clears it); `null` here goes
    /// back to the configured default.
    /// Admin only: `{"max_gpus": N|null, "max_instances": N|null}`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub quota: Option<Option<QuotaChange>>,
    /// The account's own to change; `null` stops mail (the inbox stays).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Admin only, as at creation: where the account's events are POSTed (http(s), at
    /// most 2048 bytes); `null` stops them.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
}

/// A change of quota: a key present changes that limit (`null`: no limit), an absent key
/// keeps the limit the account has now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaChange {
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub max_gpus: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<Option<u32>>,
}

/// A key that is present, `null` included (`Some(None)`); an absent key is `None`.
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}
