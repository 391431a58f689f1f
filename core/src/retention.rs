//! Retention (docs/contracts.md#retention): what the coordinator forgets, so that no tenant's ended
//! work grows its disk or memory without bound. An ended instance is forgotten `ended` after its
//! end, a request that never ran (`failed`) after `failed`, and beyond its account's newest
//! `max_ended_per_account` at once; events, and the inbox messages they made (pending mail
//! excepted), after `events`, and an account's beyond its newest `max_events_per_account`. A final
//! deployment is forgotten `ended` after it ended and its last instance did, and beyond its
//! account's newest `max_ended_per_account` final deployments at once, with the instances it still
//! has (so that none refers to a deployment that is gone). The ledger is never pruned. Deadlines
//! come from the ended indexes (exact); events are swept every twentieth of their retention.

use super::events::Event;
use super::instance::Instance;
use super::instance::ended::{EndedIndex, Kept};
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use std::collections::HashMap;
use std::time::Duration;

/// An account's ended instances beyond this many (newest kept) are forgotten at once, and
/// so are its final deployments: at 64 KiB of `env` and of `command` each, about 130 MB of
/// each per account at worst.
pub const DEFAULT_MAX_ENDED_PER_ACCOUNT: usize = 1000;
/// An account's events beyond this many (newest kept) go, whatever their age: a tenant
/// looping create and delete (each a few events) cannot fill the disk within `events`.
pub const DEFAULT_MAX_EVENTS_PER_ACCOUNT: usize = 100_000;

/// Config `[retention]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long an instance that ran (or was stopped before it ran), or a final deployment,
    /// is kept after its end.
    pub ended: Duration,
    /// How long a request that never ran (`failed`) is kept; it counts against its
    /// account's quota until then.
    pub failed: Duration,
    /// How long events, and the inbox messages they made, are kept.
    pub events: Duration,
    pub max_ended_per_account: usize,
    /// Events of one account kept at most (its newest); counted from this process's start,
    /// so a restart may keep up to twice as many until the count catches up.
    pub max_events_per_account: usize,
}

impl Default for Retention {
    fn default() -> Self {
        let hours = |h: u64| Duration::from_secs(3600 * h);
        Self {
            ended: hours(7 * 24),
            failed: hours(24),
            events: hours(30 * 24),
            max_ended_per_account: DEFAULT_MAX_ENDED_PER_ACCOUNT,
            max_events_per_account: DEFAULT_MAX_EVENTS_PER_ACCOUNT,
        }
    }
}

impl Retention {
    fn of(&self, kept: Kept) -> Duration {
        match kept {
            Kept::Failed => self.failed,
            Kept::Ended => self.ended,
        }
    }

    /// How often old events are swept: a twentieth of their retention (so none outlives
    /// it by more than 5%), at least every hour, at most every 100 ms.
    pub fn event_sweep(&self) -> Duration {
        (self.events / 20).clamp(Duration::from_millis(100), Duration::from_secs(3600))
    }
}

/// The cluster's retention: its settings, the event prune the next commit carries, and
/// the events each account made since start (to trim an account past its cap).
#[derive(Debug, Default)]
pub struct Keeper {
    pub settings: Retention,
    prune_events_before: Option<DateTime<Utc>>,
    events_by_account: HashMap<AccountId, usize>,
}

impl Keeper {
    /// Events older than `events` before `now` go with the next commit.
    pub fn sweep_events(&mut self, now: DateTime<Utc>) {
        self.prune_events_before = Some(shifted(now, self.settings.events, false));
    }

    /// The event prune for the commit being taken.
    pub fn take_event_prune(&mut self) -> Option<DateTime<Utc>> {
        self.prune_events_before.take()
    }

    /// Counts `events` against their accounts; an account a tenth past its cap is trimmed
    /// back to it (the slack makes a trim, an indexed delete, rare): the accounts to trim,
    /// each with how many of its newest events stay.
    pub fn count_events(&mut self, events: &[Event]) -> Vec<(AccountId, usize)> {
        let max = self.settings.max_events_per_account;
        let mut trims = Vec::new();
        for account in events.iter().filter_map(|e| e.account_id.as_ref()) {
            let count = self.events_by_account.entry(account.clone()).or_default();
            *count += 1;
            if *count > max.saturating_add(max / 10) {
                *count = max;
                trims.push((account.clone(), max));
            }
        }
        trims
    }
}

fn shifted(at: DateTime<Utc>, by: Duration, later: bool) -> DateTime<Utc> {
    let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    let moved = if later { at.checked_add_signed(by) } else { at.checked_sub_signed(by) };
    moved.unwrap_or(if later { DateTime::<Utc>::MAX_UTC } else { DateTime::<Utc>::MIN_UTC })
}

impl<Id: Ord + Clone> EndedIndex<Id> {
    /// When the next of these is due to be forgotten: at once while an account keeps more
    /// than it may, else when the longest-ended of either class reaches its retention.
    pub(crate) fn next_due(&self, settings: &Retention) -> Option<DateTime<Utc>> {
        if self.any_over(settings.max_ended_per_account) {
            return Some(DateTime::<Utc>::MIN_UTC);
        }
        let due = |kept| self.oldest(kept).map(|at| shifted(at, settings.of(kept), true));
        Kept::ALL.into_iter().filter_map(due).min()
    }

    /// Those whose retention is over at `now`, and each account's beyond its newest
    /// `max_ended_per_account` (one may be named twice).
    pub(crate) fn due(&self, settings: &Retention, now: DateTime<Utc>) -> Vec<Id> {
        let mut due: Vec<_> = Kept::ALL
            .into_iter()
            .flat_map(|kept| self.ended_by(kept, shifted(now, settings.of(kept), false)))
            .collect();
        due.extend(self.beyond(settings.max_ended_per_account));
        due
    }
}

impl Instance {
    /// Whether it counts against its account's quota (docs/contracts.md#limits): everything not
    /// ended, and a request of the account's own that never ran, for as long as it is kept (a
    /// deployment's failed starts do not: the deployment bounds how many it makes).
    pub fn counts_against_quota(&self) -> bool {
        !self.is_terminated() || (Kept::of(self) == Some(Kept::Failed) && self.owner.is_none())
    }
}
