//! How the cluster actor changes accounts for the API: creating one, booking a payment,
//! rotating its token, disabling it and setting its quota; and how an account is shown,
//! with its effective quota and usage (DESIGN §16).

use super::cluster::ClusterActor;
use super::failure::Failure;
use super::messages::{AccountView, Payment, Scope};
use crate::core::accounts::OPERATOR;
use crate::core::quotas::QuotaUpdate;
use gpuspot_common::{AccountId, Money};

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
            usage: self.core.usage(id),
        })
    }

    /// Every account, with the usage of all of them counted in one pass.
    pub(super) fn account_views(&self) -> Vec<AccountView> {
        let usage = self.core.usage_by_account();
        self.core
            .accounts()
            .map(|account| AccountView {
                account: account.clone(),
                quota: self.core.quota(account),
                usage: usage.get(&account.id).copied().unwrap_or_default(),
            })
            .collect()
    }

    pub(super) fn create_account(
        &mut self,
        name: String,
        token_hash: String,
        webhook_url: Option<String>,
    ) -> Result<AccountView, Failure> {
        let id = self.core.create_account(name, token_hash, webhook_url, self.clock.now());
        self.account_view(&Scope::Admin, &id)
    }

    pub(super) fn pay(
        &mut self,
        scope: &Scope,
        id: AccountId,
        amount: Money,
    ) -> Result<Payment, Failure> {
        self.visible_account(scope, &id)?;
        let entry = self.core.pay(&id, amount, self.clock.now())?;
        let account = self.account_view(&Scope::Admin, &id)?;
        Ok(Payment { entry, account })
    }

    pub(super) fn rotate_token(
        &mut self,
        scope: &Scope,
        id: AccountId,
        token_hash: String,
    ) -> Result<AccountView, Failure> {
        self.visible_account(scope, &id)?;
        self.core.rotate_token(&id, token_hash, self.clock.now())?;
        self.account_view(scope, &id)
    }

    /// The operator account is refused whatever the change (it stays unlimited).
    pub(super) fn change_account(
        &mut self,
        id: AccountId,
        disabled: Option<bool>,
        quota: Option<QuotaUpdate>,
    ) -> Result<AccountView, Failure> {
        self.visible_account(&Scope::Admin, &id)?;
        if id.as_str() == OPERATOR {
            return Err(Failure::OperatorIsFixed);
        }
        if let Some(disabled) = disabled {
            self.core.set_disabled(&id, disabled, self.clock.now())?;
        }
        if let Some(quota) = quota {
            self.core.set_quota(&id, quota, self.clock.now())?;
        }
        self.account_view(&Scope::Admin, &id)
    }
}
