//! Restores and saves run as tasks beside the session loop, never inside it: packing and
//! transferring gigabytes must not hold up other instances' commands, reports or heartbeats.
//! Their outcomes come back on one channel that the session `select!`s on. The tasks outlive
//! a session: an outcome reported with `link_lost` is retried on a live connection.

use super::{download, upload};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::SnapshotRef;
use gpuspot_common::snapshot;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Download `snapshot` to `scratch`, then unpack it into `data_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreJob {
    pub instance_id: InstanceId,
    pub snapshot: SnapshotRef,
    pub data_dir: PathBuf,
    pub scratch: PathBuf,
}

/// Pack `data_dir` into `packed_file` (unless `packed` says it already is), then upload it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveJob {
    pub instance_id: InstanceId,
    pub data_dir: PathBuf,
    pub packed_file: PathBuf,
    pub max_bytes: u64,
    pub packed: Option<Packed>,
}

/// A data dir packed and waiting for its upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug)]
pub enum TaskOutcome {
    /// `link_lost`: the connection failed during the transfer; retry on the next one.
    Restored { instance_id: InstanceId, result: Result<(), String>, link_lost: bool },
    Saved {
        instance_id: InstanceId,
        packed: Option<Packed>,
        result: Result<SnapshotRef, String>,
        link_lost: bool,
    },
}

/// The running snapshot tasks of a host, at most one per instance.
pub struct SnapshotTasks {
    tx: mpsc::UnboundedSender<TaskOutcome>,
    rx: mpsc::UnboundedReceiver<TaskOutcome>,
    in_flight: BTreeSet<InstanceId>,
}

impl Default for SnapshotTasks {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx, in_flight: BTreeSet::new() }
    }
}

impl SnapshotTasks {
    pub fn in_flight(&self, instance_id: &InstanceId) -> bool {
        self.in_flight.contains(instance_id)
    }

    /// Starts a restore unless one runs for that instance; false when one does.
    pub fn restore(&mut self, connection: &quinn::Connection, job: RestoreJob) -> bool {
        if !self.in_flight.insert(job.instance_id.clone()) {
            return false;
        }
        let (connection, tx) = (connection.clone(), self.tx.clone());
        tokio::spawn(async move { drop(tx.send(run_restore(&connection, job).await)) });
        true
    }

    /// Starts a save unless a task runs for that instance; false when one does.
    pub fn save(&mut self, connection: &quinn::Connection, job: SaveJob) -> bool {
        if !self.in_flight.insert(job.instance_id.clone()) {
            return false;
        }
        let (connection, tx) = (connection.clone(), self.tx.clone());
        tokio::spawn(async move { drop(tx.send(run_save(&connection, job).await)) });
        true
    }

    /// The next finished task. Cancel-safe.
    pub async fn next(&mut self) -> TaskOutcome {
        let outcome = match self.rx.recv().await {
            Some(outcome) => outcome,
            // Unreachable: `self` holds a sender.
            None => std::future::pending().await,
        };
        let id = match &outcome {
            TaskOutcome::Restored { instance_id, .. } | TaskOutcome::Saved { instance_id, .. } => {
                instance_id
            }
        };
        self.in_flight.remove(id);
        outcome
    }
}

async fn run_restore(connection: &quinn::Connection, job: RestoreJob) -> TaskOutcome {
    let result = restore(connection, &job).await;
    let _ = tokio::fs::remove_file(&job.scratch).await;
    let link_lost = result.is_err() && connection.close_reason().is_some();
    match &result {
        Ok(()) => {
            tracing::info!(instance = %job.instance_id, snapshot = %job.snapshot.id, "snapshot restored")
        }
        Err(e) => {
            tracing::warn!(instance = %job.instance_id, snapshot = %job.snapshot.id, error = %e, link_lost, "snapshot not restored")
        }
    }
    TaskOutcome::Restored { instance_id: job.instance_id, result, link_lost }
}

async fn restore(connection: &quinn::Connection, job: &RestoreJob) -> Result<(), String> {
    if let Some(parent) = job.scratch.parent() {
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .await
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    download(connection, &job.snapshot, &job.scratch).await?;
    let (scratch, data_dir, snapshot) =
        (job.scratch.clone(), job.data_dir.clone(), job.snapshot.clone());
    tokio::task::spawn_blocking(move || snapshot::unpack(&scratch, &data_dir, &snapshot))
        .await
        .map_err(|e| format!("unpacking stopped: {e}"))?
        .map_err(|e| e.to_string())
}

async fn run_save(connection: &quinn::Connection, job: SaveJob) -> TaskOutcome {
    let instance_id = job.instance_id.clone();
    let packed = match job.packed.clone() {
        Some(packed) => packed,
        None => match pack(&job).await {
            Ok(packed) => packed,
            Err(e) => {
                tracing::warn!(instance = %instance_id, error = %e, "data dir not packed");
                let result = Err(format!("cannot pack the data dir: {e}"));
                return TaskOutcome::Saved { instance_id, packed: None, result, link_lost: false };
            }
        },
    };
    let result =
        upload(connection, &instance_id, &job.packed_file, &packed.sha256, packed.size).await;
    let link_lost = result.is_err() && connection.close_reason().is_some();
    match &result {
        Ok(stored) => {
            tracing::info!(instance = %instance_id, snapshot = %stored.id, size = stored.size, "snapshot saved")
        }
        Err(e) => {
            tracing::warn!(instance = %instance_id, error = %e, link_lost, "snapshot not saved")
        }
    }
    TaskOutcome::Saved { instance_id, packed: Some(packed), result, link_lost }
}

async fn pack(job: &SaveJob) -> Result<Packed, String> {
    let (dir, out, max) = (job.data_dir.clone(), job.packed_file.clone(), job.max_bytes);
    let (sha256, size) = tokio::task::spawn_blocking(move || snapshot::pack(&dir, &out, max))
        .await
        .map_err(|e| format!("packing stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(Packed { sha256, size })
}
