//! How the cluster actor changes accounts for the API: creating one, booking a payment,
//! rotating its token, disabling it and setting its quota; and how an account is shown,
//! with its effective quota and usage (docs/contracts.md#failures-and-quotas).

use super::cluster::ClusterActor;
use super::failure::Failure;
use super::messages::{AccountView, Payment, Scope};
use crate::core::accounts::{NewAccount, OPERATOR};
use crate::core::quotas::QuotaUpdate;
use gpuspot_common::{AccountId, Money};

/// What `PATCH /v1/accounts/{id}` changes; an absent field stays as it is.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub disabled: Option<bool>,
    pub quota: Option<QuotaUpdate>,
    pub email: Option<Option<String>>,
    /// `Some(None)` stops the account's webhook.
    pub webhook_url: Option<Option<String>>,
}

impl ClusterActor {
    /// The account as the API shows it, if `scope` may see it.
    pub(super) fn account_view(
        &self,
        scope: &Scope,
        id: &AccountId,
    ) -> Result<AccountView, Failure> {
        let account = self.visible_account(scope, id)?;
        Ok(AccountView {
            account: account.clone(),
            quota: self.core.quota(account),
            usage: self.core.usage(&account.id),
        })
    }

    pub(super) fn create_account(&mut self, new: NewAccount) -> Result<AccountView, Failure> {
        let id = self.core.create_account(new, self.now);
        self.account_view(&Scope::Admin, &id)
    }

    pub(super) fn pay(
        &mut self,
        scope: &Scope,
        id: AccountId,
        amount: Money,
    ) -> Result<Payment, Failure> {
        let id = self.visible_account(scope, &id)?.id.clone();
        let entry = self.core.pay(&id, amount, self.now)?;
        let account = self.account_view(&Scope::Admin, &id)?;
        Ok(Payment { entry, account })
    }

    pub(super) fn rotate_token(
        &mut self,
        scope: &Scope,
        id: AccountId,
        token_hash: String,
    ) -> Result<AccountView, Failure> {
        let id = self.visible_account(scope, &id)?.id.clone();
        self.core.rotate_token(&id, token_hash, self.now)?;
        self.account_view(scope, &id)
    }

    /// The operator account is refused a change of `disabled` or `quota` (it stays
    /// unlimited); its email may change like any other.
    pub(super) fn change_account(
        &mut self,
        scope: &Scope,
        id: AccountId,
        change: AccountChange,
    ) -> Result<AccountView, Failure> {
        let id = self.visible_account(scope, &id)?.id.clone();
        let now = self.now;
        if id.as_str() == OPERATOR && (change.disabled.is_some() || change.quota.is_some()) {
            return Err(Failure::OperatorIsFixed);
        }
        if let Some(email) = change.email {
            self.core.set_email(&id, email, now)?;
        }
        if let Some(url) = change.webhook_url {
            self.core.set_webhook_url(&id, url, now)?;
        }
        if let Some(disabled) = change.disabled {
            self.core.set_disabled(&id, disabled, now)?;
        }
        if let Some(quota) = change.quota {
            self.core.set_quota(&id, quota, now)?;
        }
        self.account_view(scope, &id)
    }
}
