//! Accounts as the API shows them, with their quota, usage, tokens and ledgers.

use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An account with its quota and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    /// Decimal string.
    #[schema(value_type = String)]
    pub balance: Money,
    pub overdue: bool,
    pub overdue_since: Option<DateTime<Utc>>,
    pub overdue_deadline: Option<DateTime<Utc>>,
    pub webhook_url: Option<String>,
    pub email: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// The effective quota: the account's own, else the config default; null is no limit.
    pub quota: Quota,
    /// What the account holds now, queued requests included.
    pub usage: Usage,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub max_gpus: Option<u32>,
    pub max_instances: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub gpus: u64,
    pub instances: u64,
}

/// An account and its new API token, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountWithToken {
    #[serde(flatten)]
    pub account: Account,
    pub token: String,
}

/// `GET /v1/whoami`: the token's account (for the admin token, the operator account it
/// acts for) and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    #[serde(flatten)]
    pub account: Account,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The admin token.
    Admin,
    /// An account's token.
    Account,
}

vocabulary!(Role { Admin => "admin", Account => "account" });

/// Signed: payments positive, charges negative.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    #[schema(value_type = String)]
    pub amount: Money,
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    #[schema(value_type = String)]
    pub balance_after: Money,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Payment,
    Charge,
}

vocabulary!(EntryKind { Payment => "payment", Charge => "charge" });

/// `POST /v1/accounts/{id}/payments`: the ledger entry and the account after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentReceipt {
    pub entry: LedgerEntry,
    pub account: Account,
}
