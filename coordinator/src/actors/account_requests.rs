//! How the cluster actor changes accounts for the API: creating one, booking a payment,
//! rotating its token and disabling it.

use super::cluster::ClusterActor;
use super::failure::Failure;
use super::messages::{Payment, Scope};
use crate::core::accounts::OPERATOR;
use crate::core::billing::Account;
use gpuspot_common::{AccountId, Money};

impl ClusterActor {
    pub(super) fn create_account(
        &mut self,
        name: String,
        token_hash: String,
        webhook_url: Option<String>,
    ) -> Result<Account, Failure> {
        let id = self.core.create_account(name, token_hash, webhook_url, self.clock.now());
        self.visible_account(&Scope::Admin, &id).cloned()
    }

    pub(super) fn pay(
        &mut self,
        scope: &Scope,
        id: AccountId,
        amount: Money,
    ) -> Result<Payment, Failure> {
        self.visible_account(scope, &id)?;
        let entry = self.core.pay(&id, amount, self.clock.now())?;
        let account = self.visible_account(&Scope::Admin, &id)?.clone();
        Ok(Payment { entry, account })
    }

    pub(super) fn rotate_token(
        &mut self,
        scope: &Scope,
        id: AccountId,
        token_hash: String,
    ) -> Result<Account, Failure> {
        self.visible_account(scope, &id)?;
        self.core.rotate_token(&id, token_hash, self.clock.now())?;
        self.visible_account(scope, &id).cloned()
    }

    /// The operator account is refused whatever the change.
    pub(super) fn change_account(
        &mut self,
        id: AccountId,
        disabled: Option<bool>,
    ) -> Result<Account, Failure> {
        self.visible_account(&Scope::Admin, &id)?;
        if id.as_str() == OPERATOR {
            return Err(Failure::OperatorIsFixed);
        }
        if let Some(disabled) = disabled {
            self.core.set_disabled(&id, disabled, self.clock.now())?;
        }
        self.visible_account(&Scope::Admin, &id).cloned()
    }
}
