//! Accounts and the entries booked on them since the last commit. Booking is the only way
//! a balance changes, so a balance is always the sum of its ledger.

use super::billing::{Account, EntryKind, LedgerEntry};
use super::quota::Quota;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};
use std::collections::{BTreeMap, BTreeSet};

pub const OPERATOR: &str = "a-operator";

#[derive(Debug)]
pub struct Ledger {
    accounts: BTreeMap<AccountId, Account>,
    next_entry_id: u64,
    dirty: BTreeSet<AccountId>,
    entries: Vec<LedgerEntry>,
    /// The quota of accounts without their own (config `[accounts]`,
    /// docs/contracts.md#failures-and-quotas).
    default_quota: Quota,
}

impl Default for Ledger {
    fn default() -> Self {
        let operator = operator_account();
        Self {
            accounts: BTreeMap::from([(operator.id.clone(), operator)]),
            next_entry_id: 1,
            dirty: BTreeSet::new(),
            entries: Vec::new(),
            default_quota: Quota::UNLIMITED,
        }
    }
}

impl Ledger {
    /// Accounts and the last entry id a previous run committed. An operator account that
    /// was never stored (a new data dir, or one from before it was) is dated now, or by
    /// the oldest account when that is older, and stored with the next commit: its
    /// creation time is the data dir's, not a placeholder.
    pub fn restore(&mut self, accounts: Vec<Account>, last_entry_id: u64, now: DateTime<Utc>) {
        let operator = AccountId::from(OPERATOR);
        if !accounts.iter().any(|a| a.id == operator) {
            let oldest = accounts.iter().map(|a| a.created_at).min().unwrap_or(now);
            self.update(&operator, |a| a.created_at = oldest.min(now));
        }
        for account in accounts {
            self.accounts.insert(account.id.clone(), account);
        }
        self.next_entry_id = last_entry_id + 1;
    }

    pub fn default_quota(&self) -> Quota {
        self.default_quota
    }

    pub fn set_default_quota(&mut self, quota: Quota) {
        self.default_quota = quota;
    }

    pub fn get(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn insert(&mut self, account: Account) {
        self.dirty.insert(account.id.clone());
        self.accounts.insert(account.id.clone(), account);
    }

    /// Changes an account's settings (not its balance: that is [`Ledger::book`]).
    pub fn update<R>(
        &mut self,
        id: &AccountId,
        change: impl FnOnce(&mut Account) -> R,
    ) -> Option<R> {
        let account = self.accounts.get_mut(id)?;
        self.dirty.insert(id.clone());
        Some(change(account))
    }

    /// Books `amount`; None, changing nothing, for an unknown account or an overflow.
    pub fn book(
        &mut self,
        id: &AccountId,
        kind: EntryKind,
        amount: Money,
        instance: Option<InstanceId>,
        now: DateTime<Utc>,
    ) -> Option<LedgerEntry> {
        let entry =
            self.accounts.get_mut(id)?.book(self.next_entry_id, kind, amount, instance, now)?;
        self.next_entry_id += 1;
        self.dirty.insert(id.clone());
        self.entries.push(entry.clone());
        Some(entry)
    }

    /// Whether new work may start for this account (not while it is overdue or disabled).
    pub fn may_start(&self, id: &AccountId) -> bool {
        self.accounts.get(id).is_some_and(|a| !a.is_overdue() && !a.disabled)
    }

    /// The earliest overdue deadline.
    pub fn next_overdue_deadline(&self) -> Option<DateTime<Utc>> {
        self.accounts.values().filter_map(|a| a.overdue_deadline).min()
    }

    /// Changed accounts and new entries, for the commit.
    pub fn take_changes(&mut self) -> (Vec<Account>, Vec<LedgerEntry>) {
        let accounts = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.accounts.get(&id).cloned())
            .collect();
        (accounts, std::mem::take(&mut self.entries))
    }
}

fn operator_account() -> Account {
    Account {
        id: AccountId::from(OPERATOR),
        name: "operator".into(),
        balance: Money::ZERO,
        token_hash: String::new(),
        webhook_url: None,
        email: None,
        overdue_since: None,
        overdue_deadline: None,
        // Until [`Ledger::restore`] dates it (tests that never restore keep this).
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        unlimited: true,
        disabled: false,
        quota: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_dated_at_its_first_start_and_keeps_that_date() {
        let operator = AccountId::from(OPERATOR);
        let first = DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z").unwrap().to_utc();
        let mut ledger = Ledger::default();
        ledger.restore(Vec::new(), 0, first);
        assert_eq!(ledger.get(&operator).map(|a| a.created_at), Some(first));
        let (stored, _) = ledger.take_changes();
        assert!(stored.iter().any(|a| a.id == operator), "stored with the next commit");
        let mut restarted = Ledger::default();
        restarted.restore(stored, 0, first + chrono::Duration::hours(5));
        assert_eq!(restarted.get(&operator).map(|a| a.created_at), Some(first));
    }
}
