//! Accounts in the cluster: creation, payments, the meter tick that turns running time into
//! ledger charges, and overdue handling (seed 000): a balance below zero gives every
//! instance of the account a termination at now + `overdue_grace`, hold or not; a payment
//! that brings the balance back to zero or more before then cancels them.

use super::billing::{Account, EntryKind, LedgerEntry};
use super::cluster::Cluster;
pub use super::error::AccountError;
use super::model::{EndReason, InstanceState};
use crate::core::events::EventKind;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};

pub const OPERATOR: &str = "a-operator";

impl Cluster {
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn create_account(
        &mut self,
        name: String,
        token_hash: String,
        webhook_url: Option<String>,
        now: DateTime<Utc>,
    ) -> AccountId {
        let id = AccountId::random();
        let account = Account {
            id: id.clone(),
            name,
            balance: Money::ZERO,
            token_hash,
            webhook_url,
            overdue_since: None,
            overdue_deadline: None,
            created_at: now,
            unlimited: false,
            disabled: false,
        };
        self.accounts.insert(id.clone(), account);
        self.touch_account(&id);
        self.account_event(now, EventKind::AccountCreated, &id, serde_json::json!({}));
        id
    }

    fn account_event(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        id: &AccountId,
        mut data: serde_json::Value,
    ) {
        if let Some(account) = self.accounts.get(id) {
            data["balance"] = serde_json::json!(account.balance);
            data["overdue_deadline"] = serde_json::json!(account.overdue_deadline);
        }
        self.event_for_account(now, kind, id, data);
    }

    /// A top-up. Settles an overdue account whose balance is back at zero or more.
    pub fn pay(
        &mut self,
        id: &AccountId,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<LedgerEntry, AccountError> {
        if amount.micros() <= 0 {
            return Err(AccountError::NonPositivePayment);
        }
        let entry_id = self.next_ledger_id();
        let account = self.accounts.get_mut(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        let entry = account
            .book(entry_id, EntryKind::Payment, amount, None, now)
            .ok_or_else(|| AccountError::Overflow(id.clone()))?;
        let settled = account.is_overdue() && account.balance >= Money::ZERO;
        self.push_ledger(entry.clone());
        self.touch_account(id);
        self.account_event(now, EventKind::Payment, id, serde_json::json!({ "amount": amount }));
        if settled {
            self.settle(id, now);
        }
        Ok(entry)
    }

    fn settle(&mut self, id: &AccountId, now: DateTime<Utc>) {
        if let Some(account) = self.accounts.get_mut(id) {
            account.overdue_since = None;
            account.overdue_deadline = None;
        }
        self.touch_account(id);
        self.account_event(now, EventKind::AccountSettled, id, serde_json::json!({}));
        let cancelled: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| &i.account_id == id && i.state == InstanceState::TerminationScheduled)
            .filter(|i| i.termination_reason == Some(EndReason::Overdue))
            .map(|i| i.id.clone())
            .collect();
        for instance_id in cancelled {
            self.cancel_termination(&instance_id, now);
        }
        self.place_queued(now);
    }

    fn cancel_termination(&mut self, id: &InstanceId, now: DateTime<Utc>) {
        let Some(instance) = self.instances.get_mut(id) else { return };
        if let Some(at) = instance.termination_time.take() {
            self.deadlines.remove(&(at, id.clone()));
        }
        instance.termination_reason = None;
        instance.state = InstanceState::Running;
        let instance = instance.clone();
        self.touch_instance(id);
        self.event(
            now,
            EventKind::TerminationCancelled,
            Some(&instance),
            None,
            serde_json::json!({ "reason": "payment" }),
        );
        self.push_metadata(id);
    }

    /// Accrues an instance's meter to `now` at its current price; with `charge`, books
    /// what is due. Returns the account charged, if any.
    pub(super) fn meter_instance(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
        charge: bool,
    ) -> Option<AccountId> {
        let instance = self.instances.get_mut(id)?;
        instance.started_at?;
        let price = instance.price.unwrap_or(Money::ZERO);
        let gpus = instance.gpu_uuids.len() as u32;
        instance.meter.accrue(price, gpus, now);
        let due = if charge { instance.meter.due() } else { Money::ZERO };
        let account_id = instance.account_id.clone();
        self.touch_instance(id);
        if due.micros() == 0 {
            return None;
        }
        let entry_id = self.next_ledger_id();
        let account = self.accounts.get_mut(&account_id)?;
        let Some(entry) =
            account.book(entry_id, EntryKind::Charge, Money(-due.micros()), Some(id.clone()), now)
        else {
            // Unreachable with real prices; if it ever happens the charge stays due rather
            // than leave a balance that differs from its ledger.
            tracing::error!(instance = %id, account = %account_id, "charge would overflow the balance; kept due");
            return None;
        };
        if let Some(instance) = self.instances.get_mut(id) {
            instance.meter.take_due();
        }
        self.push_ledger(entry);
        self.touch_account(&account_id);
        Some(account_id)
    }

    /// Every `meter_tick`: charge everything running, then look for overdue accounts.
    pub fn meter_tick(&mut self, now: DateTime<Utc>) {
        let running: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.started_at.is_some() && i.state.holds_units())
            .map(|i| i.id.clone())
            .collect();
        for id in running {
            self.meter_instance(&id, now, true);
        }
        self.check_overdue(now);
    }

    /// Accounts that went below zero become overdue: every instance gets its termination.
    pub(super) fn check_overdue(&mut self, now: DateTime<Utc>) {
        let newly: Vec<AccountId> = self
            .accounts
            .values()
            .filter(|a| !a.unlimited && !a.is_overdue() && a.balance < Money::ZERO)
            .map(|a| a.id.clone())
            .collect();
        let grace =
            chrono::Duration::from_std(self.timers.overdue_grace).unwrap_or(chrono::Duration::MAX);
        for id in newly {
            if let Some(account) = self.accounts.get_mut(&id) {
                account.overdue_since = Some(now);
                account.overdue_deadline = Some(now + grace);
            }
            self.touch_account(&id);
            self.account_event(now, EventKind::AccountOverdue, &id, serde_json::json!({}));
            let doomed: Vec<InstanceId> = self
                .instances
                .values()
                .filter(|i| {
                    i.account_id == id
                        && matches!(i.state, InstanceState::Scheduled | InstanceState::Running)
                })
                .map(|i| i.id.clone())
                .collect();
            for instance in doomed {
                self.schedule_termination(&instance, EndReason::Overdue, now);
            }
        }
    }

    /// Past an overdue deadline, queued instances of the account end too.
    pub(super) fn expire_overdue(&mut self, now: DateTime<Utc>) {
        let expired: Vec<AccountId> = self
            .accounts
            .values()
            .filter(|a| a.overdue_deadline.is_some_and(|d| d <= now))
            .map(|a| a.id.clone())
            .collect();
        for id in expired {
            if let Some(account) = self.accounts.get_mut(&id) {
                account.overdue_deadline = None;
            }
            self.touch_account(&id);
            let queued: Vec<InstanceId> = self
                .instances
                .values()
                .filter(|i| i.account_id == id && i.state == InstanceState::Queued)
                .map(|i| i.id.clone())
                .collect();
            for instance in queued {
                self.finish(&instance, EndReason::Overdue, None, now);
            }
        }
    }

    /// Whether new work may start for this account (not while it is overdue or disabled).
    pub fn may_start(&self, id: &AccountId) -> bool {
        self.accounts.get(id).is_some_and(|a| !a.is_overdue() && !a.disabled)
    }

    /// A new token for the account; returns the old token's hash, which stops working.
    pub fn rotate_token(
        &mut self,
        id: &AccountId,
        token_hash: String,
        now: DateTime<Utc>,
    ) -> Result<String, AccountError> {
        let account = self.accounts.get_mut(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        if account.disabled {
            return Err(AccountError::Disabled(id.clone()));
        }
        let old = std::mem::replace(&mut account.token_hash, token_hash);
        self.touch_account(id);
        self.account_event(now, EventKind::TokenRotated, id, serde_json::json!({}));
        Ok(old)
    }

    /// Disabling ends the account's deployments and terminates its instances (reason
    /// `user`); enabling again only lets its token in again.
    pub fn set_disabled(
        &mut self,
        id: &AccountId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let account = self.accounts.get_mut(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        if account.disabled == disabled {
            return Ok(());
        }
        account.disabled = disabled;
        self.touch_account(id);
        let kind = if disabled { EventKind::AccountDisabled } else { EventKind::AccountEnabled };
        self.account_event(now, kind, id, serde_json::json!({}));
        if disabled {
            self.end_account_work(id, now);
        }
        Ok(())
    }

    fn end_account_work(&mut self, id: &AccountId, now: DateTime<Utc>) {
        let deployments: Vec<_> = self
            .deployments()
            .filter(|d| &d.account_id == id && !d.state.is_final())
            .map(|d| d.id.clone())
            .collect();
        for deployment in deployments {
            let _ = self.delete_deployment(&deployment, now);
        }
        let instances: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| &i.account_id == id && !i.is_terminated())
            .map(|i| i.id.clone())
            .collect();
        for instance in instances {
            let _ = self.delete_instance(&instance, now);
        }
    }
}
