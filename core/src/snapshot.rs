//! Which snapshots exist (docs/contracts.md#snapshots): their records, and the latest of each
//! lineage (a deployment, or a lone instance). The cluster's side (`snapshots`) records saved ones
//! and says which one a new instance restores.

use chrono::{DateTime, Utc};
use gpuspot_common::protocol::SnapshotRef;
use gpuspot_common::{AccountId, InstanceId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// 10 GiB: large enough for model checkpoints, small enough to bound the store.
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 10 << 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub snapshot: SnapshotRef,
    pub instance_id: InstanceId,
    pub deployment_id: Option<String>,
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
}

impl SnapshotRecord {
    /// Snapshots are grouped by deployment; a lone instance is its own group.
    pub fn lineage(&self) -> String {
        self.deployment_id.clone().unwrap_or_else(|| self.instance_id.to_string())
    }
}

/// The snapshots known, the latest of each lineage, and those recorded since the commit.
#[derive(Debug)]
pub struct Snapshots {
    records: BTreeMap<String, SnapshotRecord>,
    latest: BTreeMap<String, String>,
    new: Vec<SnapshotRecord>,
    pub max_bytes: u64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Self {
            records: BTreeMap::new(),
            latest: BTreeMap::new(),
            new: Vec::new(),
            max_bytes: DEFAULT_SNAPSHOT_MAX_BYTES,
        }
    }
}

impl Snapshots {
    pub fn records(&self) -> impl Iterator<Item = &SnapshotRecord> {
        self.records.values()
    }

    pub fn get(&self, id: &str) -> Option<&SnapshotRecord> {
        self.records.get(id)
    }

    /// The latest snapshot of a lineage (a deployment id, or a lone instance's).
    pub fn latest(&self, lineage: &str) -> Option<&SnapshotRecord> {
        self.latest.get(lineage).and_then(|id| self.records.get(id))
    }

    /// A snapshot saved now: remembered, and stored with the next commit.
    pub fn saved(&mut self, record: SnapshotRecord) {
        self.remember(record.clone());
        self.new.push(record);
    }

    /// A record restored from the store.
    pub fn remember(&mut self, record: SnapshotRecord) {
        let lineage = record.lineage();
        let newer = self
            .latest
            .get(&lineage)
            .and_then(|id| self.records.get(id))
            .is_none_or(|current| current.created_at <= record.created_at);
        if newer {
            self.latest.insert(lineage, record.snapshot.id.clone());
        }
        self.records.insert(record.snapshot.id.clone(), record);
    }

    pub fn take_new(&mut self) -> Vec<SnapshotRecord> {
        std::mem::take(&mut self.new)
    }
}
