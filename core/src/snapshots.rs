//! Snapshot bookkeeping (DESIGN §8): which packed data dirs exist, and which one a new
//! instance restores — the latest of its deployment, or one named in its request. The
//! bytes live in the coordinator's snapshot store; this only tracks them.

use super::cluster::Cluster;
use crate::events::{EventData, EventKind, payloads};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{SnapshotPlan, SnapshotRef};
use gpuspot_common::{AccountId, InstanceId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
            max_bytes: super::cluster::DEFAULT_SNAPSHOT_MAX_BYTES,
        }
    }
}

impl Snapshots {
    fn remember(&mut self, record: SnapshotRecord) {
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

impl Cluster {
    pub fn snapshots(&self) -> impl Iterator<Item = &SnapshotRecord> {
        self.snapshots.records.values()
    }

    pub fn snapshot(&self, id: &str) -> Option<&SnapshotRecord> {
        self.snapshots.records.get(id)
    }

    /// Restores earlier records (after a restart).
    pub fn with_snapshots(mut self, records: Vec<SnapshotRecord>) -> Self {
        for record in records {
            self.snapshots.remember(record);
        }
        self
    }

    /// The agent packed and uploaded (or failed to) an instance's data dir.
    pub fn snapshot_saved(
        &mut self,
        instance_id: &InstanceId,
        result: Result<SnapshotRef, String>,
        now: DateTime<Utc>,
    ) {
        let Some(instance) = self.instances.get(instance_id) else { return };
        match result {
            Ok(snapshot) => {
                let record = SnapshotRecord {
                    snapshot: snapshot.clone(),
                    instance_id: instance_id.clone(),
                    deployment_id: instance.deployment_id().map(|d| d.to_string()),
                    account_id: instance.account_id.clone(),
                    created_at: now,
                };
                self.snapshots.remember(record.clone());
                self.snapshots.new.push(record);
                let data = EventData::SnapshotSaved(payloads::SnapshotSaved {
                    sha256: snapshot.sha256.clone(),
                    size: snapshot.size,
                    snapshot_id: snapshot.id.clone(),
                });
                self.event(now, EventKind::SnapshotSaved, Some(instance_id), None, data);
            }
            Err(reason) => {
                tracing::warn!(instance = %instance_id, %reason, "snapshot failed");
                let data = EventData::Because(payloads::Because { reason: reason.clone() });
                self.event(now, EventKind::SnapshotFailed, Some(instance_id), None, data);
            }
        }
    }

    /// The snapshot plan of an instance: save when enabled; restore the latest of its
    /// lineage, or the one its request names.
    pub(super) fn snapshot_plan(&self, instance: &super::model::Instance) -> Option<SnapshotPlan> {
        let options = &instance.request.snapshot;
        if !options.enabled && options.restore_from.is_none() {
            return None;
        }
        let lineage =
            instance.deployment_id().map_or_else(|| instance.id.to_string(), |d| d.to_string());
        let restore_id =
            options.restore_from.clone().or_else(|| self.snapshots.latest.get(&lineage).cloned());
        let restore =
            restore_id.and_then(|id| self.snapshots.records.get(&id)).map(|r| r.snapshot.clone());
        let max_bytes = self.snapshots.max_bytes;
        Some(SnapshotPlan { save: options.enabled, restore, max_bytes })
    }
}
