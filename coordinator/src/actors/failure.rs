//! Why the cluster actor refused a request, in the domain's words: the core's typed errors
//! and what the actor decides itself (visibility, overdue and disabled accounts, the store).
//! `api::error` turns each into an HTTP status and code, in one place.

use crate::core::admission::Refusal;
use crate::core::error::{AccountError, DeploymentError, LifecycleError, QuotaError};
use crate::store::StoreError;
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Absent, or not visible in the caller's scope: the same answer, so that another
    /// account's ids stay hidden.
    #[error("{0} not found")]
    NotFound(Missing),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    /// It would pass the account's quota (docs/contracts.md#failures-and-quotas); nothing was
    /// created.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    #[error(transparent)]
    Drill(#[from] crate::core::drills::DrillError),
    #[error(transparent)]
    Fault(#[from] crate::core::faults::FaultError),
    /// An overdue account may not start instances until it pays (docs/contracts.md#limits).
    #[error("account {account} is overdue (balance {balance}): pay to start new instances")]
    OverdueForInstances { account: AccountId, balance: Money },
    /// Nor deployments.
    #[error("account {0} is overdue: pay to start new work")]
    OverdueForDeployments(AccountId),
    /// The admin named accounts by a name several of them have.
    #[error("account name {name:?} names {} accounts ({}): give an id", ids.len(), join(ids))]
    AmbiguousAccountName { name: String, ids: Vec<AccountId> },
    /// The operator account is the coordinator's own and stays as configured.
    #[error("the operator account cannot be changed")]
    OperatorIsFixed,
    /// A list's `?after=` names nothing the caller may see in it (never existed, another
    /// account's, or forgotten since): the same answer for each.
    #[error("after: {0} is not in this list (start again without `after`)")]
    UnknownCursor(String),
    #[error("could not persist the change: {0}")]
    Store(#[from] StoreError),
}

/// The core's refusals answer as the actor's own did before admission moved into the core.
impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::UnknownAccount(id) => Failure::NotFound(Missing::Account(id)),
            Refusal::Account(error) => error.into(),
            Refusal::OverdueForInstances { account, balance } => {
                Failure::OverdueForInstances { account, balance }
            }
            Refusal::OverdueForDeployments(id) => Failure::OverdueForDeployments(id),
            Refusal::UnknownSnapshot(id) => Failure::NotFound(Missing::Snapshot(id)),
            Refusal::Quota(error) => error.into(),
            Refusal::Deployment(error) => error.into(),
        }
    }
}

/// What was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Instance(InstanceId),
    Account(AccountId),
    Host(HostId),
    Deployment(DeploymentId),
    Snapshot(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Instance(id) => write!(f, "instance {id}"),
            Missing::Account(id) => write!(f, "account {id}"),
            Missing::Host(id) => write!(f, "host {id}"),
            Missing::Deployment(id) => write!(f, "deployment {id}"),
            Missing::Snapshot(id) => write!(f, "snapshot {id}"),
        }
    }
}

fn join(ids: &[AccountId]) -> String {
    ids.iter().map(AccountId::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refusal reads the same to the user whether the core or the actor words it.
    #[test]
    fn refusals_keep_their_words() {
        let a = || AccountId::from("a-1");
        let refusals = [
            Refusal::UnknownAccount(a()),
            Refusal::Account(AccountError::Disabled(a())),
            Refusal::OverdueForInstances { account: a(), balance: Money(-5) },
            Refusal::OverdueForDeployments(a()),
            Refusal::UnknownSnapshot("s-1".into()),
            Refusal::Quota(QuotaError::Gpus { wanted: 3, limit: 2 }),
            Refusal::Deployment(DeploymentError::NameTaken("web".into())),
        ];
        for refusal in refusals {
            let words = refusal.to_string();
            assert_eq!(Failure::from(refusal).to_string(), words);
        }
    }
}
