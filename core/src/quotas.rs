//! Quotas (docs/contracts.md#failures-and-quotas, seed 001's "excessive number"): how many GPUs and
//! instances one account may hold at once. Every instance that is not final counts, queued ones
//! too, so a request is refused up front rather than queued past the limit; so does a request that
//! never ran (`failed`) until retention forgets it (docs/contracts.md#retention), so that failing
//! requests cannot pile up past the quota. An account's own quota (set by the admin) wins over the
//! configured default; the operator account is unlimited.

use super::billing::Account;
use super::cluster::Cluster;
use super::deployment::NewDeployment;
use super::deployment::{Deployment, Mode};
use super::error::AccountError;
pub use super::error::QuotaError;
use super::model::InstanceRequest;
pub use super::quota::{Quota, QuotaChange, QuotaUpdate, Usage};
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use std::collections::BTreeMap;

impl Cluster {
    /// The quota of accounts that have none of their own (config `[accounts]`).
    pub fn with_default_quota(mut self, quota: Quota) -> Self {
        self.ledger.set_default_quota(quota);
        self
    }

    /// The quota that applies to the account now.
    pub fn quota(&self, account: &Account) -> Quota {
        if account.unlimited {
            return Quota::UNLIMITED;
        }
        account.quota.unwrap_or_else(|| self.ledger.default_quota())
    }

    /// What the account holds now.
    pub fn usage(&self, account: &AccountId) -> Usage {
        self.instances
            .iter()
            .filter(|i| &i.account_id == account && i.counts_against_quota())
            .fold(Usage::default(), |usage, i| usage.plus(1, i.request.gpu.count))
    }

    /// What every account holds now, in one pass (accounts holding nothing are absent).
    pub fn usage_by_account(&self) -> BTreeMap<AccountId, Usage> {
        let mut usage: BTreeMap<AccountId, Usage> = BTreeMap::new();
        for i in self.instances.iter().filter(|i| i.counts_against_quota()) {
            let held = usage.entry(i.account_id.clone()).or_default();
            *held = held.plus(1, i.request.gpu.count);
        }
        usage
    }

    /// Whether the account may add one instance of `request` to what it holds.
    pub fn check_quota(
        &self,
        account: &AccountId,
        request: &InstanceRequest,
    ) -> Result<(), QuotaError> {
        let Some(owner) = self.ledger.get(account) else { return Ok(()) };
        self.quota(owner).admit(self.usage(account).plus(1, request.gpu.count))
    }

    /// Refuses a deployment whose wanted instances alone, each on its smallest spec, could
    /// never fit the quota; one that fits only once other work ends is accepted and waits.
    pub fn check_deployment_quota(
        &self,
        account: &AccountId,
        new: &NewDeployment,
    ) -> Result<(), QuotaError> {
        let Some(owner) = self.ledger.get(account) else { return Ok(()) };
        let wanted = match new.mode {
            Mode::Replicaset => new.replicas,
            _ => new.parallelism.min(new.completions),
        };
        let smallest = new.specs.iter().map(|s| s.gpu.count).min().unwrap_or(0);
        self.quota(owner).admit(Usage::default().plus(u64::from(wanted), smallest))
    }

    /// The admin sets (or resets) an account's quota. A raised quota lets the account's
    /// waiting deployments try again at once.
    pub fn set_quota(
        &mut self,
        id: &AccountId,
        update: QuotaUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let account = self.ledger.get(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        let own = match update {
            QuotaUpdate::Default => None,
            QuotaUpdate::Change(change) => Some(change.apply(self.quota(account))),
        };
        self.ledger.update(id, |a| a.quota = own);
        let waiting: Vec<_> = self
            .deployments()
            .filter(|d| &d.account_id == id && !d.state().is_final())
            .map(|d| d.id.clone())
            .collect();
        for deployment in waiting {
            self.reconcile_deployment(&deployment);
        }
        self.settle(now);
        Ok(())
    }
}

impl Cluster {
    /// Why the deployment may start no instance now for its quota: `Some` only when every
    /// spec would pass it (the first spec's refusal), so that it waits saying so.
    pub(super) fn quota_refuses_every_spec(&self, d: &Deployment) -> Option<QuotaError> {
        let mut refusals =
            (0..d.specs.len()).map(|s| self.check_quota(&d.account_id, &d.request(s)));
        let first = refusals.next()?.err()?;
        refusals.all(|r| r.is_err()).then_some(first)
    }
}
