//! Money in motion (seed 000's billing rules, docs/contracts.md#billing): accounts, their ledger,
//! and the meter that charges a running instance at the price of each moment.
//!
//! The meter accrues price × GPUs × elapsed milliseconds exactly (whole micro-units plus a
//! remainder in micro-unit-milliseconds per GPU-hour), and a charge is always "what is due
//! so far minus what was charged so far". So however often it is written, the charges of an
//! instance add up to the integral of its price over its run, rounded down once, with no
//! drift (elapsed time is measured between whole-millisecond timestamps, so splitting a run
//! into more pieces never changes its total); and since the meter state and the ledger entries are committed together, a crash
//! can neither lose nor repeat a charge.

use super::quota::Quota;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId, Money};
use serde::{Deserialize, Serialize};

const MS_PER_HOUR: i128 = 3_600_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    /// Accrued up to this moment (None until the instance starts running).
    pub metered_until: Option<DateTime<Utc>>,
    /// Whole micro-units accrued.
    pub accrued: i64,
    /// Fraction of a micro-unit accrued, in 1/3_600_000ths (price per hour × milliseconds).
    pub remainder: i64,
    /// Micro-units already written to the ledger.
    pub charged: i64,
}

impl Meter {
    /// Accrues `gpus` × `price_per_gpu_hour` from `metered_until` to `now`.
    pub fn accrue(&mut self, price_per_gpu_hour: Money, gpus: u32, now: DateTime<Utc>) {
        let Some(from) = self.metered_until else {
            self.metered_until = Some(now);
            return;
        };
        if now <= from {
            return;
        }
        // Differences of whole-millisecond timestamps telescope: however many times a run
        // is metered, its total is (end_ms - start_ms), never short by truncations.
        let ms = (now.timestamp_millis() - from.timestamp_millis()) as i128;
        let numerator =
            price_per_gpu_hour.micros() as i128 * gpus as i128 * ms + self.remainder as i128;
        self.accrued += (numerator / MS_PER_HOUR) as i64;
        self.remainder = (numerator % MS_PER_HOUR) as i64;
        self.metered_until = Some(now);
    }

    /// What is due and not yet charged.
    pub fn due(&self) -> Money {
        Money(self.accrued - self.charged)
    }

    /// What is due and not yet charged; marks it charged.
    pub fn take_due(&mut self) -> Money {
        let due = self.accrued - self.charged;
        self.charged = self.accrued;
        Money(due)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Payment,
    Charge,
}

/// One line of an account's ledger; `amount` is signed (payments positive), so the balance
/// is exactly the sum of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: u64,
    pub account_id: AccountId,
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    pub amount: Money,
    pub instance_id: Option<InstanceId>,
    pub balance_after: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub balance: Money,
    /// sha256 of the account's API token (the token itself is shown once, at creation).
    pub token_hash: String,
    pub webhook_url: Option<String>,
    /// Where its messages are mailed (docs/contracts.md#messages).
    #[serde(default)]
    pub email: Option<String>,
    pub overdue_since: Option<DateTime<Utc>>,
    pub overdue_deadline: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The built-in operator account has no balance limit.
    pub unlimited: bool,
    /// Set by the admin: the token is refused and nothing of the account runs.
    #[serde(default)]
    pub disabled: bool,
    /// Set by the admin (docs/contracts.md#failures-and-quotas); `None`: the configured default
    /// applies.
    #[serde(default)]
    pub quota: Option<Quota>,
}

impl Account {
    pub fn is_overdue(&self) -> bool {
        self.overdue_since.is_some()
    }

    /// Books `amount` and returns the ledger entry; `None`, changing nothing, when the
    /// balance would overflow.
    pub fn book(
        &mut self,
        id: u64,
        kind: EntryKind,
        amount: Money,
        instance_id: Option<InstanceId>,
        at: DateTime<Utc>,
    ) -> Option<LedgerEntry> {
        self.balance = self.balance.checked_add(amount)?;
        Some(LedgerEntry {
            id,
            account_id: self.id.clone(),
            at,
            kind,
            amount,
            instance_id,
            balance_after: self.balance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
            + Duration::seconds(seconds)
    }

    #[test]
    fn proration_is_per_millisecond_of_the_hour() {
        let mut meter = Meter::default();
        meter.accrue(Money(3_600_000), 1, t(0));
        meter.accrue(Money(3_600_000), 1, t(90));
        assert_eq!(meter.take_due(), Money(90_000), "3.60/h for 90 s is 0.09");
        meter.accrue(Money(3_600_000), 2, t(100));
        assert_eq!(meter.take_due(), Money(20_000), "two GPUs for 10 s");
    }

    #[test]
    fn a_price_change_mid_run_charges_each_part_at_its_price() {
        let mut meter = Meter::default();
        meter.accrue(Money(1_000_000), 1, t(0));
        meter.accrue(Money(1_000_000), 1, t(1800));
        meter.accrue(Money(3_000_000), 1, t(3600));
        assert_eq!(meter.take_due(), Money(500_000 + 1_500_000));
    }

    #[test]
    fn many_small_charges_add_up_to_the_integral_without_drift() {
        // 0.000001/h is far below one micro-unit per tick: only the remainder carries it.
        let price = Money(2_580_007);
        let mut meter = Meter::default();
        let mut charged = 0;
        meter.accrue(price, 3, t(0));
        for step in 1..=7_200 {
            meter.accrue(price, 3, t(0) + Duration::milliseconds(step * 1_337));
            charged += meter.take_due().micros();
        }
        let total_ms = 7_200i128 * 1_337;
        let exact = (price.micros() as i128 * 3 * total_ms / MS_PER_HOUR) as i64;
        assert_eq!(charged, exact);
    }

    #[test]
    fn splitting_a_run_at_sub_millisecond_instants_loses_nothing() {
        let price = Money(3_600_000);
        let start = t(0) + Duration::microseconds(700);
        let mut split = Meter::default();
        split.accrue(price, 1, start);
        for step in 1..1_000 {
            split.accrue(price, 1, start + Duration::microseconds(step * 1_300));
        }
        split.accrue(price, 1, start + Duration::seconds(2));
        let mut whole = Meter::default();
        whole.accrue(price, 1, start);
        whole.accrue(price, 1, start + Duration::seconds(2));
        assert_eq!(split.take_due(), whole.take_due());
    }

    #[test]
    fn taking_due_twice_charges_once() {
        let mut meter = Meter::default();
        meter.accrue(Money(3_600_000), 1, t(0));
        meter.accrue(Money(3_600_000), 1, t(10));
        assert_eq!(meter.take_due(), Money(10_000));
        assert_eq!(meter.take_due(), Money::ZERO);
        meter.accrue(Money(3_600_000), 1, t(10));
        assert_eq!(meter.take_due(), Money::ZERO, "accruing to the same moment again adds nothing");
    }

    #[test]
    fn the_balance_is_the_sum_of_the_ledger() {
        let mut account = Account {
            id: AccountId::from("a-1"),
            name: "acme".into(),
            balance: Money::ZERO,
            token_hash: String::new(),
            webhook_url: None,
            email: None,
            overdue_since: None,
            overdue_deadline: None,
            created_at: t(0),
            unlimited: false,
            disabled: false,
            quota: None,
        };
        let entries = [
            account.book(1, EntryKind::Payment, Money(10_000_000), None, t(0)).unwrap(),
            account
                .book(2, EntryKind::Charge, Money(-2_500_001), Some("i-1".into()), t(5))
                .unwrap(),
            account
                .book(3, EntryKind::Charge, Money(-8_000_000), Some("i-1".into()), t(9))
                .unwrap(),
        ];
        let sum: i64 = entries.iter().map(|e| e.amount.micros()).sum();
        assert_eq!(account.balance, Money(sum));
        assert_eq!(entries[2].balance_after, Money(-500_001));
        let top = account.book(4, EntryKind::Payment, Money(i64::MAX - 1), None, t(10)).unwrap();
        assert_eq!(top.balance_after, Money(i64::MAX - 500_002));
        assert_eq!(account.book(5, EntryKind::Payment, Money(500_003), None, t(11)), None);
        assert_eq!(
            account.balance,
            Money(i64::MAX - 500_002),
            "an overflowing entry changes nothing"
        );
    }
}
