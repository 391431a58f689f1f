//! Who may create work: the checks every new instance and deployment passes before
//! anything exists (the account, its standing and quota, the snapshot it restores, the
//! deployment's name). [`Cluster::create_instance`] and [`Cluster::create_deployment`] run
//! them, so that no caller can skip one; a refusal is typed, and the coordinator turns it
//! into the API's answer in one place.

use super::cluster::Cluster;
use super::deployment::NewDeployment;
use super::error::{AccountError, DeploymentError, QuotaError};
use super::model::InstanceRequest;
use gpuspot_common::{AccountId, Money};

/// Why new work was refused; nothing was created.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such account (the same answer as an account the caller may not see).
    #[error("account {0} not found")]
    UnknownAccount(AccountId),
    /// Disabled by the admin.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// An overdue account may not start instances until it pays (docs/contracts.md#limits).
    #[error("account {account} is overdue (balance {balance}): pay to start new instances")]
    OverdueForInstances { account: AccountId, balance: Money },
    /// Nor deployments.
    #[error("account {0} is overdue: pay to start new work")]
    OverdueForDeployments(AccountId),
    /// Absent or another account's: the same answer, so that their ids stay hidden.
    #[error("snapshot {0} not found")]
    UnknownSnapshot(String),
    /// It would pass the account's quota (docs/contracts.md#failures-and-quotas).
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// The deployment's name is taken.
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
}

impl Cluster {
    /// Refuses an unknown, disabled or overdue owner, a snapshot that is not theirs and a
    /// request past the account's quota.
    pub(super) fn admit_instance(
        &self,
        account: &AccountId,
        request: &InstanceRequest,
    ) -> Result<(), Refusal> {
        let owner =
            self.account(account).ok_or_else(|| Refusal::UnknownAccount(account.clone()))?;
        if owner.disabled {
            return Err(AccountError::Disabled(account.clone()).into());
        }
        if !self.may_start(account) {
            let balance = owner.balance;
            return Err(Refusal::OverdueForInstances { account: account.clone(), balance });
        }
        if let Some(snapshot) = &request.snapshot.restore_from
            && self.snapshot(snapshot).is_none_or(|s| &s.account_id != account)
        {
            return Err(Refusal::UnknownSnapshot(snapshot.clone()));
        }
        Ok(self.check_quota(account, request)?)
    }

    /// Refuses a deployment that could never fit its account's quota, an unknown or
    /// overdue owner and a name a live deployment has.
    pub(super) fn admit_deployment(
        &self,
        account: &AccountId,
        new: &NewDeployment,
    ) -> Result<(), Refusal> {
        self.check_deployment_quota(account, new)?;
        if self.account(account).is_none() {
            return Err(Refusal::UnknownAccount(account.clone()));
        }
        if !self.may_start(account) {
            return Err(Refusal::OverdueForDeployments(account.clone()));
        }
        if self.name_taken(&new.name) {
            return Err(DeploymentError::NameTaken(new.name.clone()).into());
        }
        Ok(())
    }
}
