//! Accounts in the cluster: creation, payments, the meter tick that turns running time into
//! ledger charges, and overdue handling (seed 000): a balance below zero gives every
//! placed instance of the account a termination at now + `overdue_grace`, hold or not; a
//! payment that brings the balance back to zero or more before then cancels them, and past
//! the deadline its queued requests end too.

use super::billing::{Account, EntryKind, LedgerEntry};
use super::cluster::Cluster;
pub use super::error::AccountError;
use super::events::{EventData, EventKind, payloads};
pub use super::ledger::OPERATOR;
use super::model::{EndReason, InstanceState};
use super::outbox::About;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};

/// What a new account starts with.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    pub name: String,
    /// sha256 of its API token.
    pub token_hash: String,
    pub webhook_url: Option<String>,
    pub email: Option<String>,
}

#[cfg(test)]
impl NewAccount {
    pub fn named(name: &str) -> Self {
        Self { name: name.into(), ..Self::default() }
    }
}

impl Cluster {
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.ledger.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.ledger.iter()
    }

    pub fn create_account(&mut self, new: NewAccount, now: DateTime<Utc>) -> AccountId {
        let id = self.ids.account();
        self.ledger.insert(Account {
            id: id.clone(),
            name: new.name,
            balance: Money::ZERO,
            token_hash: new.token_hash,
            webhook_url: new.webhook_url,
            email: new.email,
            overdue_since: None,
            overdue_deadline: None,
            created_at: now,
            unlimited: false,
            disabled: false,
            quota: None,
        });
        self.account_event(now, EventKind::AccountCreated, &id, AccountExtra::None);
        id
    }

    /// Where the account's messages are mailed from now on (`None`: the inbox only).
    pub fn set_email(
        &mut self,
        id: &AccountId,
        email: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        self.ledger.get(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        self.ledger.update(id, |a| a.email = email);
        self.account_event(now, EventKind::AccountChanged, id, AccountExtra::None);
        Ok(())
    }

    /// Where the account's events are POSTed from now on (`None`: nowhere).
    pub fn set_webhook_url(
        &mut self,
        id: &AccountId,
        url: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        self.ledger.get(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        self.ledger.update(id, |a| a.webhook_url = url);
        self.account_event(now, EventKind::AccountChanged, id, AccountExtra::None);
        Ok(())
    }

    /// An event about an account, with its name, balance and overdue deadline.
    fn account_event(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        id: &AccountId,
        extra: AccountExtra,
    ) {
        let data = self.ledger.get(id).map(|a| extra.payload(a)).unwrap_or_default();
        self.outbox.event(now, kind, About { account: Some(id), ..About::default() }, data);
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
        if self.ledger.get(id).is_none() {
            return Err(AccountError::Unknown(id.clone()));
        }
        let entry = self
            .ledger
            .book(id, EntryKind::Payment, amount, None, now)
            .ok_or_else(|| AccountError::Overflow(id.clone()))?;
        let settled =
            self.ledger.get(id).is_some_and(|a| a.is_overdue() && a.balance >= Money::ZERO);
        self.account_event(now, EventKind::Payment, id, AccountExtra::Payment(amount));
        if settled {
            self.settle_account(id, now);
        }
        self.settle(now);
        Ok(entry)
    }

    /// The account is no longer overdue: its notices for being overdue are cancelled.
    fn settle_account(&mut self, id: &AccountId, now: DateTime<Utc>) {
        self.ledger.update(id, |a| {
            a.overdue_since = None;
            a.overdue_deadline = None;
        });
        self.account_event(now, EventKind::AccountSettled, id, AccountExtra::None);
        let cancelled: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|i| &i.account_id == id && i.state() == InstanceState::TerminationScheduled)
            .filter(|i| i.termination_reason() == Some(EndReason::Overdue))
            .map(|i| i.id.clone())
            .collect();
        for instance in cancelled {
            self.transition(&instance, now, |lifecycle| lifecycle.cancel_notice());
        }
        self.place_queued(now);
    }

    /// Accrues an instance's meter to `now` at its current price; with `charge`, books
    /// what is due.
    pub(super) fn meter_instance(&mut self, id: &InstanceId, now: DateTime<Utc>, charge: bool) {
        let accrued = self.instances.get(id).is_some_and(|i| i.started_at().is_some());
        if !accrued {
            return;
        }
        let due = self.instances.update(id, |i| {
            let (price, gpus) = (i.price().unwrap_or(Money::ZERO), i.gpu_uuids().len() as u32);
            i.meter.accrue(price, gpus, now);
            (i.account_id.clone(), if charge { i.meter.due() } else { Money::ZERO })
        });
        let Some((account_id, due)) = due.filter(|(_, due)| due.micros() != 0) else {
            return;
        };
        let charged = Money(-due.micros());
        if self
            .ledger
            .book(&account_id, EntryKind::Charge, charged, Some(id.clone()), now)
            .is_none()
        {
            // Unreachable with real prices; if it ever happens the charge stays due rather
            // than leave a balance that differs from its ledger.
            tracing::error!(instance = %id, account = %account_id, "charge would overflow the balance; kept due");
            return;
        }
        self.instances.update(id, |i| i.meter.take_due());
    }

    /// Every `meter_tick`: charge everything running, then look for overdue accounts.
    pub fn meter_tick(&mut self, now: DateTime<Utc>) {
        let running: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|i| i.started_at().is_some() && i.state().holds_units())
            .map(|i| i.id.clone())
            .collect();
        for id in running {
            self.meter_instance(&id, now, true);
        }
        self.check_overdue(now);
        self.settle(now);
    }

    /// Accounts that went below zero become overdue: every placed instance gets its notice.
    fn check_overdue(&mut self, now: DateTime<Utc>) {
        let newly: Vec<AccountId> = self
            .ledger
            .iter()
            .filter(|a| !a.unlimited && !a.is_overdue() && a.balance < Money::ZERO)
            .map(|a| a.id.clone())
            .collect();
        let grace =
            chrono::Duration::from_std(self.timers.overdue_grace).unwrap_or(chrono::Duration::MAX);
        for id in newly {
            self.ledger.update(&id, |a| {
                a.overdue_since = Some(now);
                a.overdue_deadline = Some(now + grace);
            });
            self.account_event(now, EventKind::AccountOverdue, &id, AccountExtra::None);
            let doomed: Vec<InstanceId> = self
                .instances
                .iter()
                .filter(|i| {
                    i.account_id == id
                        && matches!(
                            i.state(),
                            InstanceState::Scheduled
                                | InstanceState::Running
                                | InstanceState::TerminationScheduled
                        )
                })
                .map(|i| i.id.clone())
                .collect();
            for instance in doomed {
                self.give_notice(&instance, EndReason::Overdue, now);
            }
        }
    }

    /// Past an overdue deadline, queued instances of the account end too.
    pub(super) fn expire_overdue(&mut self, now: DateTime<Utc>) {
        let expired: Vec<AccountId> = self
            .ledger
            .iter()
            .filter(|a| a.overdue_deadline.is_some_and(|d| d <= now))
            .map(|a| a.id.clone())
            .collect();
        for id in expired {
            self.ledger.update(&id, |a| a.overdue_deadline = None);
            let queued: Vec<InstanceId> = self
                .instances
                .iter()
                .filter(|i| i.account_id == id && i.state() == InstanceState::Queued)
                .map(|i| i.id.clone())
                .collect();
            let cancelled = queued.len();
            for instance in queued {
                self.finish(&instance, EndReason::Overdue, None, now);
            }
            let extra = AccountExtra::Shutdown { cancelled: cancelled as u64 };
            self.account_event(now, EventKind::AccountOverdueShutdown, &id, extra);
        }
    }

    /// Whether new work may start for this account (not while it is overdue or disabled).
    pub fn may_start(&self, id: &AccountId) -> bool {
        self.ledger.may_start(id)
    }

    /// A new token for the account; returns the old token's hash, which stops working.
    pub fn rotate_token(
        &mut self,
        id: &AccountId,
        token_hash: String,
        now: DateTime<Utc>,
    ) -> Result<String, AccountError> {
        let account = self.ledger.get(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        if account.disabled {
            return Err(AccountError::Disabled(id.clone()));
        }
        let old = self.ledger.update(id, |a| std::mem::replace(&mut a.token_hash, token_hash));
        self.account_event(now, EventKind::TokenRotated, id, AccountExtra::None);
        Ok(old.unwrap_or_default())
    }

    /// Disabling ends the account's deployments and terminates its instances (reason
    /// `user`); enabling again only lets its token in again.
    pub fn set_disabled(
        &mut self,
        id: &AccountId,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let account = self.ledger.get(id).ok_or_else(|| AccountError::Unknown(id.clone()))?;
        if account.disabled == disabled {
            return Ok(());
        }
        self.ledger.update(id, |a| a.disabled = disabled);
        let kind = if disabled { EventKind::AccountDisabled } else { EventKind::AccountEnabled };
        self.account_event(now, kind, id, AccountExtra::None);
        if disabled {
            self.end_account_work(id, now);
        }
        self.settle(now);
        Ok(())
    }

    fn end_account_work(&mut self, id: &AccountId, now: DateTime<Utc>) {
        let deployments: Vec<_> = self
            .deployments()
            .filter(|d| &d.account_id == id && !d.state().is_final())
            .map(|d| d.id.clone())
            .collect();
        for deployment in deployments {
            let _ = self.delete_deployment(&deployment, now);
        }
        let instances: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|i| &i.account_id == id && !i.is_terminated())
            .map(|i| i.id.clone())
            .collect();
        for instance in instances {
            self.end_or_stop(&instance, EndReason::User, now);
        }
    }
}

/// What an account event tells beyond where the account stands.
enum AccountExtra {
    None,
    Payment(Money),
    Shutdown { cancelled: u64 },
}

impl AccountExtra {
    fn payload(self, a: &Account) -> EventData {
        let (balance, name, overdue_deadline) = (a.balance, a.name.clone(), a.overdue_deadline);
        match self {
            AccountExtra::None => {
                EventData::AccountNews(payloads::AccountNews { balance, name, overdue_deadline })
            }
            AccountExtra::Payment(amount) => EventData::PaymentNews(payloads::PaymentNews {
                amount,
                balance,
                name,
                overdue_deadline,
            }),
            AccountExtra::Shutdown { cancelled } => {
                EventData::OverdueShutdown(payloads::OverdueShutdown {
                    balance,
                    cancelled_requests: cancelled,
                    name,
                    overdue_deadline,
                })
            }
        }
    }
}
