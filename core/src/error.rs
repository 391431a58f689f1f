//! What a core operation can refuse, one enum per concern. Each says what went wrong in
//! words a user can act on; `api::error` decides the HTTP status and code, in one place.

use gpuspot_common::{AccountId, DeploymentId, InstanceId};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no instance {0}")]
    UnknownInstance(InstanceId),
    /// Seed 000: a spot instance cannot change billing method or be upgraded.
    #[error(
        "spot instances cannot change billing mode or be resized; create a new instance instead"
    )]
    SpotIsFixed,
    #[error(
        "billing mode and size are fixed once an instance is created; create a new instance instead"
    )]
    SizeIsFixed,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no account {0}")]
    Unknown(AccountId),
    #[error("a payment must be a positive amount")]
    NonPositivePayment,
    #[error("the payment would overflow the balance of account {0}; nothing was booked")]
    Overflow(AccountId),
    #[error("account {0} is disabled")]
    Disabled(AccountId),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error("no deployment {0}")]
    Unknown(DeploymentId),
    #[error("only a replicaset has replicas to scale")]
    NotAReplicaSet,
    /// `autoscaling` and `schedule` that do not fit the deployment or each other.
    #[error("{0}")]
    InvalidScaling(String),
    /// Gateway names are first come, first named across accounts, whatever their case
    /// (docs/contracts.md#serving).
    #[error(
        "the name {0:?} is in use by a live deployment (names differing only in case are \
         the same name); choose another"
    )]
    NameTaken(String),
    /// A name the caller sees on several accounts' deployments (the admin sees them all).
    #[error("{name:?} names deployments of several accounts ({}): give an id", list(ids))]
    AmbiguousName { name: String, ids: Vec<DeploymentId> },
}

/// A request that would pass the account's quota (docs/contracts.md#failures-and-quotas); the
/// message names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("quota_exceeded: {} would pass the account's max_gpus of {limit}", count(*wanted, "GPU"))]
    Gpus { wanted: u64, limit: u32 },
    #[error(
        "quota_exceeded: {} would pass the account's max_instances of {limit}",
        count(*wanted, "instance")
    )]
    Instances { wanted: u64, limit: u32 },
}

fn list(ids: &[DeploymentId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// "1 GPU", "3 GPUs".
fn count(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
