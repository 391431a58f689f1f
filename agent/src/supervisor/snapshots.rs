//! The supervisor's snapshot bookkeeping. An assignment that restores a snapshot waits
//! [`Restoring`] until its restore ends; only then does its command start (or it fails, or,
//! when stopped meanwhile, ends as stopped). A workload that saves its data dir waits
//! finished with a [`PendingSave`]: until the save is reported (`SnapshotSaved`, then the
//! final `InstanceUpdate`), hellos report it as still running and it is never forgotten.

use super::Supervisor;
use super::workloads::{PendingSave, Phase, Restoring, Stage};
use crate::snapshots::tasks::Packed;
use crate::snapshots::{RestoreJob, SaveJob};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{
    AgentMessage, Assignment, InstanceReport, SnapshotRef, StartRefusal, WorkloadState,
};
use std::path::PathBuf;

/// What the link must do after the supervisor applied a command or an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followup {
    /// Send this report.
    Report(InstanceReport),
    /// Run this restore, then hand its result to [`Supervisor::restored`].
    Restore(RestoreJob),
    /// Run this save, then hand its result to [`Supervisor::save_done`].
    Save(SaveJob),
    /// Send [`Supervisor::closing`] for this instance, then call [`Supervisor::closed`].
    Close(InstanceId),
    /// Send a `StartRefused`: the start was not carried out (nothing of it is kept).
    Refuse { instance_id: InstanceId, code: StartRefusal, reason: String },
}

/// Packed snapshots wait in `<instance>/scratch/`, 0700: the instance dir is traversable
/// by guests, and a tarball of a guest's data is for the agent only.
const SCRATCH: &str = "scratch";

impl Supervisor {
    pub(super) fn begin_restore(
        &mut self,
        assignment: Assignment,
        snapshot: SnapshotRef,
    ) -> RestoreJob {
        let job = self.restore_job(&assignment.instance_id, snapshot);
        // The restore fills the data disk, so the disk comes first.
        if let Err(error) = self.disks.prepare(&job.data_dir, assignment.data_disk_gib) {
            tracing::warn!(instance = %job.instance_id, %error, "cannot prepare the data dir");
        }
        tracing::info!(instance = %job.instance_id, snapshot = %job.snapshot.id, "restoring a snapshot before starting");
        let restoring = Phase::Restoring(Box::new(Restoring { assignment, cancelled: false }));
        self.workloads.enter(job.instance_id.clone(), None, restoring);
        job
    }

    fn restore_job(&self, id: &InstanceId, snapshot: SnapshotRef) -> RestoreJob {
        let dir = self.instance_dir(id);
        RestoreJob {
            instance_id: id.clone(),
            snapshot,
            data_dir: dir.join("data"),
            scratch: dir.join(SCRATCH).join("restore.tar.zst"),
        }
    }

    pub(super) fn save_job(&self, id: &InstanceId, data_dir: PathBuf, max_bytes: u64) -> SaveJob {
        let scratch = self.instance_dir(id).join(SCRATCH);
        if let Err(error) = crate::config::create_private_dir(&scratch) {
            tracing::warn!(instance = %id, %error, "cannot create the snapshot scratch dir");
        }
        let packed_file = scratch.join("snapshot.tar.zst");
        SaveJob { instance_id: id.clone(), data_dir, packed_file, max_bytes, packed: None }
    }

    /// A restore ended: the command starts now, or the instance fails (never started on a
    /// snapshot that could not be restored), or it ends as stopped if cancelled meanwhile.
    pub fn restored(&mut self, id: &InstanceId, result: Result<(), String>) -> Vec<Followup> {
        let Some(Phase::Restoring(restoring)) = self.workloads.take(id, Stage::Restoring) else {
            return Vec::new();
        };
        let assignment = restoring.assignment;
        let state = match (restoring.cancelled, result) {
            (false, Ok(())) => return self.launch(assignment, Some(Stage::Restoring)),
            (true, _) => WorkloadState::Stopped,
            (false, Err(e)) => {
                let snapshot = assignment.snapshot.as_ref().and_then(|p| p.restore.as_ref());
                let snapshot = snapshot.map_or("?", |s| s.id.as_str());
                let message = format!("snapshot {snapshot} could not be restored: {e}");
                tracing::warn!(instance = %id, %message, "workload not started");
                WorkloadState::Failed { message }
            }
        };
        let log = self.log_tail(self.spec(&assignment).log_path, assignment.log_offset);
        self.remember_finished(id.clone(), Stage::Restoring, state.clone(), log, None);
        self.release_data(id);
        vec![Followup::Report(InstanceReport { instance_id: id.clone(), state })]
    }

    /// The restore to retry after a lost link; None when there is none or it was cancelled.
    pub fn restore_retry(&self, id: &InstanceId) -> Option<RestoreJob> {
        let Some(Phase::Restoring(restoring)) = self.workloads.get(id) else { return None };
        if restoring.cancelled {
            return None;
        }
        let snapshot = restoring.assignment.snapshot.as_ref()?.restore.clone()?;
        Some(self.restore_job(id, snapshot))
    }

    /// A save cut short by a lost link: keeps what was packed; returns the job to retry.
    pub fn save_interrupted(&mut self, id: &InstanceId, packed: Option<Packed>) -> Option<SaveJob> {
        let Some(Phase::Finished(finished)) = self.workloads.get_mut(id) else { return None };
        let Some(PendingSave::Uploading(job)) = finished.save.as_mut() else {
            return None;
        };
        if packed.is_some() {
            job.packed = packed;
        }
        Some(job.clone())
    }

    /// A save ended, stored or refused: the packed file goes, the outcome waits to be sent.
    pub fn save_done(
        &mut self,
        id: &InstanceId,
        result: Result<SnapshotRef, String>,
    ) -> Option<Followup> {
        let Some(Phase::Finished(finished)) = self.workloads.get_mut(id) else { return None };
        let Some(PendingSave::Uploading(job)) = &finished.save else { return None };
        let _ = std::fs::remove_file(&job.packed_file);
        finished.save = Some(PendingSave::Done(result));
        // Stored or refused, the upload is over: the data can go.
        self.release_data(id);
        Some(Followup::Close(id.clone()))
    }

    /// What closes an instance whose save is done, in order: its remaining output, the
    /// `SnapshotSaved`, then its final `InstanceUpdate`. Call [`Supervisor::closed`] once
    /// they are written.
    pub fn closing(&mut self, id: &InstanceId) -> Vec<AgentMessage> {
        let Some(Phase::Finished(finished)) = self.workloads.get(id) else { return Vec::new() };
        let Some(PendingSave::Done(result)) = &finished.save else { return Vec::new() };
        let (result, state) = (result.clone(), finished.state.clone());
        let mut messages = self.pending_logs(Some(id));
        messages.push(AgentMessage::SnapshotSaved { instance_id: id.clone(), result });
        messages
            .push(AgentMessage::InstanceUpdate(InstanceReport { instance_id: id.clone(), state }));
        messages
    }

    /// The closing messages of `id` were written: it is an ordinary finished workload now.
    pub fn closed(&mut self, id: &InstanceId) {
        if let Some(Phase::Finished(finished)) = self.workloads.get_mut(id)
            && matches!(finished.save, Some(PendingSave::Done(_)))
        {
            finished.save = None;
        }
    }

    /// After a welcome: the snapshot work to (re)start and what can be reported now.
    /// `busy` tells which instances still have a task running (left alone).
    pub fn resume_snapshots(&mut self, busy: impl Fn(&InstanceId) -> bool) -> Vec<Followup> {
        let restoring = self.workloads.ids_in(&[Stage::Restoring]);
        let idle: Vec<InstanceId> = restoring.into_iter().filter(|id| !busy(id)).collect();
        let mut out = Vec::new();
        for id in idle {
            match self.restore_retry(&id) {
                Some(job) => out.push(Followup::Restore(job)),
                None => out.extend(self.restored(&id, Err("cancelled".into()))),
            }
        }
        for (id, finished) in self.workloads.finished() {
            match &finished.save {
                Some(PendingSave::Uploading(job)) if !busy(id) => {
                    out.push(Followup::Save(job.clone()))
                }
                Some(PendingSave::Done(_)) => out.push(Followup::Close(id.clone())),
                _ => {}
            }
        }
        out
    }

    /// A restore is waiting for this instance (tests and diagnostics).
    pub fn is_restoring(&self, id: &InstanceId) -> bool {
        matches!(self.workloads.get(id), Some(Phase::Restoring(_)))
    }
}
