//! Ended instances in the order retention forgets them (docs/contracts.md#retention): by end time
//! within each [`Kept`] class (a request that never ran is kept for `failed`, any other end for
//! `ended`), and per account, so that the newest `max_ended_per_account` are all an account keeps.
//! The table keeps this index in step with every instance's lifecycle; the deployments keep one of
//! their own for final deployments (all kept for `ended`).

use super::Instance;
use crate::model::InstanceState;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId};
use std::collections::{BTreeMap, BTreeSet};

/// Which retention an ended instance is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kept {
    /// `failed`: a request that never ran.
    Failed,
    /// `ended`: everything else that ended.
    Ended,
}

impl Kept {
    pub const ALL: [Kept; 2] = [Kept::Failed, Kept::Ended];

    /// The class of an ended instance; None while it has not ended.
    pub fn of(instance: &Instance) -> Option<Kept> {
        match instance.state() {
            InstanceState::Failed => Some(Kept::Failed),
            InstanceState::Terminated => Some(Kept::Ended),
            _ => None,
        }
    }
}

/// An ended instance's entry: its class, when it ended, whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedKey {
    pub kept: Kept,
    pub at: DateTime<Utc>,
    pub account: AccountId,
}

impl EndedKey {
    pub fn of(instance: &Instance) -> Option<Self> {
        Some(Self {
            kept: Kept::of(instance)?,
            at: instance.ended_at()?,
            account: instance.account_id.clone(),
        })
    }
}

/// Ended records (instances, or final deployments) by age and by account.
#[derive(Debug)]
pub struct EndedIndex<Id = InstanceId> {
    by_age: BTreeMap<Kept, BTreeSet<(DateTime<Utc>, Id)>>,
    by_account: BTreeMap<AccountId, BTreeSet<(DateTime<Utc>, Id)>>,
}

impl<Id> Default for EndedIndex<Id> {
    fn default() -> Self {
        Self { by_age: BTreeMap::new(), by_account: BTreeMap::new() }
    }
}

impl<Id: Ord + Clone> EndedIndex<Id> {
    pub fn insert(&mut self, id: &Id, key: &EndedKey) {
        self.by_age.entry(key.kept).or_default().insert((key.at, id.clone()));
        self.by_account.entry(key.account.clone()).or_default().insert((key.at, id.clone()));
    }

    pub fn remove(&mut self, id: &Id, key: &EndedKey) {
        let entry = (key.at, id.clone());
        if let Some(set) = self.by_age.get_mut(&key.kept) {
            set.remove(&entry);
        }
        if let Some(set) = self.by_account.get_mut(&key.account) {
            set.remove(&entry);
            if set.is_empty() {
                self.by_account.remove(&key.account);
            }
        }
    }

    /// When the longest-ended instance of the class ended.
    pub fn oldest(&self, kept: Kept) -> Option<DateTime<Utc>> {
        self.by_age.get(&kept).and_then(|set| set.first()).map(|(at, _)| *at)
    }

    /// Instances of the class that ended by `cutoff`, oldest first.
    pub fn ended_by(&self, kept: Kept, cutoff: DateTime<Utc>) -> Vec<Id> {
        let set = self.by_age.get(&kept).into_iter().flatten();
        set.take_while(|(at, _)| *at <= cutoff).map(|(_, id)| id.clone()).collect()
    }

    /// Whether some account holds more than `max` ended instances.
    pub fn any_over(&self, max: usize) -> bool {
        self.by_account.values().any(|set| set.len() > max)
    }

    /// Every account's ended instances beyond its newest `max`.
    pub fn beyond(&self, max: usize) -> Vec<Id> {
        let over = self.by_account.values().filter(|set| set.len() > max);
        over.flat_map(|set| set.iter().take(set.len() - max).map(|(_, id)| id.clone())).collect()
    }

    /// How many ended instances the account holds.
    pub fn count(&self, account: &AccountId) -> usize {
        self.by_account.get(account).map_or(0, BTreeSet::len)
    }
}
