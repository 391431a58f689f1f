//! All instances, and the indexes the cluster serves them by: the queue in service order,
//! notice deadlines in time order, and each deployment's instances. Every change goes
//! through [`Instances::update`], which re-derives an instance's index entries from its
//! lifecycle, so no caller keeps an index in step by hand; changed instances are marked
//! for the next commit. Retention ([`Instances::forget`]) drops an ended instance from
//! every index and marks its row for deletion.

use super::ended::{EndedIndex, EndedKey};
use super::{Instance, Lifecycle};
use chrono::{DateTime, Utc};
use gpuspot_common::{DeploymentId, InstanceId};
use std::collections::{BTreeMap, BTreeSet};

/// Service order of the queue: regular before spot (docs/contracts.md#market), higher bids first,
/// then the older request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    class: u8,
    negated_bid: i64,
    seq: u64,
}

impl QueueKey {
    pub fn of(instance: &Instance) -> Self {
        match instance.request.billing.bid() {
            None => Self { class: 0, negated_bid: 0, seq: instance.seq },
            Some(bid) => Self { class: 1, negated_bid: -bid.micros(), seq: instance.seq },
        }
    }
}

/// The index entries an instance has in its current state.
#[derive(PartialEq)]
struct Keys {
    queue: Option<QueueKey>,
    notice: Option<DateTime<Utc>>,
    ended: Option<EndedKey>,
}

impl Keys {
    fn of(instance: &Instance) -> Self {
        Self {
            queue: matches!(instance.lifecycle, Lifecycle::Queued { .. })
                .then(|| QueueKey::of(instance)),
            notice: instance.lifecycle.notice().map(|n| n.at),
            ended: EndedKey::of(instance),
        }
    }
}

#[derive(Debug, Default)]
pub struct Instances {
    by_id: BTreeMap<InstanceId, Instance>,
    queue: BTreeMap<QueueKey, InstanceId>,
    notices: BTreeSet<(DateTime<Utc>, InstanceId)>,
    by_owner: BTreeMap<DeploymentId, BTreeSet<(u64, InstanceId)>>,
    ended: EndedIndex,
    dirty: BTreeSet<InstanceId>,
    /// Forgotten since the last commit: their rows are deleted.
    forgotten: Vec<InstanceId>,
}

impl Instances {
    /// Adds a new instance (to be stored with the next commit).
    pub fn insert(&mut self, instance: Instance) {
        self.dirty.insert(instance.id.clone());
        self.restore(instance);
    }

    /// Adds an instance read back from the store.
    pub fn restore(&mut self, instance: Instance) {
        let id = instance.id.clone();
        self.index(&id, &Keys::of(&instance));
        if let Some(owner) = &instance.owner {
            let owned = self.by_owner.entry(owner.deployment_id.clone()).or_default();
            owned.insert((instance.seq, id.clone()));
        }
        self.by_id.insert(id, instance);
    }

    pub fn get(&self, id: &InstanceId) -> Option<&Instance> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Instance> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Changes one instance; its index entries follow whatever `change` did.
    pub fn update<R>(
        &mut self,
        id: &InstanceId,
        change: impl FnOnce(&mut Instance) -> R,
    ) -> Option<R> {
        let instance = self.by_id.get_mut(id)?;
        let before = Keys::of(instance);
        let result = change(instance);
        let after = Keys::of(instance);
        if before != after {
            self.unindex(id, &before);
            self.index(id, &after);
        }
        self.dirty.insert(id.clone());
        Some(result)
    }

    fn index(&mut self, id: &InstanceId, keys: &Keys) {
        if let Some(key) = &keys.queue {
            self.queue.insert(key.clone(), id.clone());
        }
        if let Some(at) = keys.notice {
            self.notices.insert((at, id.clone()));
        }
        if let Some(ended) = &keys.ended {
            self.ended.insert(id, ended);
        }
    }

    fn unindex(&mut self, id: &InstanceId, keys: &Keys) {
        if let Some(key) = &keys.queue {
            self.queue.remove(key);
        }
        if let Some(at) = keys.notice {
            self.notices.remove(&(at, id.clone()));
        }
        if let Some(ended) = &keys.ended {
            self.ended.remove(id, ended);
        }
    }

    /// Drops an ended instance from the table and every index; its row goes with the
    /// next commit. One that has not ended stays (retention never forgets live work).
    pub fn forget(&mut self, id: &InstanceId) -> Option<Instance> {
        let instance = self.by_id.get(id).filter(|i| i.is_terminated())?;
        let (keys, seq) = (Keys::of(instance), instance.seq);
        let deployment = instance.deployment_id().cloned();
        self.unindex(id, &keys);
        if let Some(deployment) = deployment
            && let Some(owned) = self.by_owner.get_mut(&deployment)
        {
            owned.remove(&(seq, id.clone()));
            if owned.is_empty() {
                self.by_owner.remove(&deployment);
            }
        }
        self.dirty.remove(id);
        self.forgotten.push(id.clone());
        self.by_id.remove(id)
    }

    /// The ended-instance index retention reads.
    pub fn ended(&self) -> &EndedIndex {
        &self.ended
    }

    /// Queued instances in service order.
    pub fn queued(&self) -> Vec<InstanceId> {
        self.queue.values().cloned().collect()
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The earliest notice deadline.
    pub fn next_notice(&self) -> Option<DateTime<Utc>> {
        self.notices.first().map(|(at, _)| *at)
    }

    /// The earliest notice deadline after `after`.
    pub fn next_notice_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = (after, InstanceId(String::new()));
        self.notices.range(from..).map(|(at, _)| *at).find(|at| *at > after)
    }

    /// Noticed instances whose deadline has come, earliest first.
    pub fn due_notices(&self, now: DateTime<Utc>) -> Vec<InstanceId> {
        self.notices.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| id.clone()).collect()
    }

    /// A deployment's instances, oldest first.
    pub fn of_owner(&self, deployment: &DeploymentId) -> impl Iterator<Item = &Instance> {
        self.by_owner.get(deployment).into_iter().flatten().filter_map(|(_, id)| self.by_id.get(id))
    }

    /// The highest creation order in use.
    pub fn max_seq(&self) -> u64 {
        self.by_id.values().map(|i| i.seq).max().unwrap_or(0)
    }

    /// Instances changed since the last call, for the commit.
    pub fn take_dirty(&mut self) -> Vec<Instance> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.by_id.get(&id).cloned())
            .collect()
    }

    /// Instances forgotten since the last call, for the commit to delete.
    pub fn take_forgotten(&mut self) -> Vec<InstanceId> {
        std::mem::take(&mut self.forgotten)
    }
}
