//! When each host that is not lost was last heard from, in time order: the earliest is the
//! next host that may go lost, so the cluster's timer finds it without a walk over hosts.

use super::{Host, HostState};
use chrono::{DateTime, Utc};
use gpuspot_common::HostId;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub struct Liveness {
    by_time: BTreeSet<(DateTime<Utc>, HostId)>,
    last_seen: HashMap<HostId, DateTime<Utc>>,
}

impl Liveness {
    /// Catches up with `host` as it is now (None: removed).
    pub fn update(&mut self, id: &HostId, host: Option<&Host>) {
        if let Some(at) = self.last_seen.remove(id) {
            self.by_time.remove(&(at, id.clone()));
        }
        if let Some(host) = host.filter(|h| h.state() != HostState::Lost) {
            self.by_time.insert((host.last_seen, id.clone()));
            self.last_seen.insert(id.clone(), host.last_seen);
        }
    }

    /// The earliest last-seen time later than `after` (of all, without it).
    pub fn earliest_after(&self, after: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let from = after.map_or(DateTime::<Utc>::MIN_UTC, |t| t + chrono::Duration::nanoseconds(1));
        self.by_time.range((from, HostId::default())..).next().map(|(at, _)| *at)
    }

    /// Hosts last heard from before `before`.
    pub fn silent_before(&self, before: DateTime<Utc>) -> Vec<HostId> {
        self.by_time.iter().take_while(|(at, _)| *at < before).map(|(_, id)| id.clone()).collect()
    }
}
