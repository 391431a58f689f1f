//! How many mails one account may cause per hour (docs/contracts.md#messages): a tenant can set its
//! email to anyone's address, so without a cap a burst of failing requests would turn the
//! operator's mail server against a stranger. Past the cap messages stay in the inbox only (their
//! `mail` is `none`); the window slides, and starts empty after a restart.

use chrono::{DateTime, Duration, Utc};
use gpuspot_common::AccountId;
use std::collections::{HashMap, VecDeque};

pub const MAILS_PER_HOUR: usize = 60;

#[derive(Debug, Default)]
pub struct MailBudget {
    sent: HashMap<AccountId, VecDeque<DateTime<Utc>>>,
}

impl MailBudget {
    /// Whether `account` may be mailed one more message at `at`; counts it if so.
    pub fn admit(&mut self, account: &AccountId, at: DateTime<Utc>) -> bool {
        let window = self.sent.entry(account.clone()).or_default();
        while window.front().is_some_and(|&t| at - t >= Duration::hours(1)) {
            window.pop_front();
        }
        if window.len() >= MAILS_PER_HOUR {
            return false;
        }
        window.push_back(at);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_at_most_the_hourly_cap_and_more_an_hour_later() {
        let mut budget = MailBudget::default();
        let (noisy, quiet) = (AccountId::from("acc-noisy"), AccountId::from("acc-quiet"));
        let t0 = DateTime::UNIX_EPOCH;
        let admitted =
            (0..100).filter(|i| budget.admit(&noisy, t0 + Duration::seconds(*i))).count();
        assert_eq!(admitted, MAILS_PER_HOUR);
        assert!(budget.admit(&quiet, t0), "another account has its own budget");
        assert!(!budget.admit(&noisy, t0 + Duration::minutes(59)));
        assert!(budget.admit(&noisy, t0 + Duration::minutes(60)), "the window slides");
    }
}
