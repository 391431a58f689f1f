//! Snapshot bookkeeping (docs/contracts.md#snapshots): which packed data dirs exist, and which one
//! a new instance restores — the latest of its deployment, or one named in its request. The bytes
//! live in the coordinator's snapshot store; this only tracks them.

use super::cluster::Cluster;
use crate::events::{EventData, EventKind, payloads};
use chrono::{DateTime, Utc};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{SnapshotPlan, SnapshotRef};

pub use super::snapshot::{SnapshotRecord, Snapshots};

impl Cluster {
    pub fn snapshots(&self) -> impl Iterator<Item = &SnapshotRecord> {
        self.snapshots.records()
    }

    pub fn snapshot(&self, id: &str) -> Option<&SnapshotRecord> {
        self.snapshots.get(id)
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
                self.snapshots.saved(record);
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
    pub(super) fn snapshot_plan(
        &self,
        instance: &super::instance::Instance,
    ) -> Option<SnapshotPlan> {
        let options = &instance.request.snapshot;
        if !options.enabled && options.restore_from.is_none() {
            return None;
        }
        let lineage =
            instance.deployment_id().map_or_else(|| instance.id.to_string(), |d| d.to_string());
        let restore = match &options.restore_from {
            Some(id) => self.snapshots.get(id),
            None => self.snapshots.latest(&lineage),
        };
        let restore = restore.map(|r| r.snapshot.clone());
        let max_bytes = self.snapshots.max_bytes;
        Some(SnapshotPlan { save: options.enabled, restore, max_bytes })
    }
}
