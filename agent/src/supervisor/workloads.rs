//! Every workload this host knows of, each in one [`Phase`]: waiting for its snapshot,
//! starting on a worker, running, or finished and waiting for the coordinator to hear of
//! it. A workload changes phase only through [`Workloads::take`] (which checks the phase it
//! leaves) and [`Workloads::enter`] (which checks that the move is one of [`Stage::may_follow`]).

use super::logs::LogTail;
use crate::metadata::MetadataServer;
use crate::runtime::RuntimeEvent;
use crate::snapshots::SaveJob;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{
    Assignment, GuestMetadata, ReadinessProbe, SnapshotPlan, SnapshotRef, WorkloadState,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// An assignment waiting for its snapshot to be restored before it starts.
pub(super) struct Restoring {
    pub(super) assignment: Assignment,
    /// Stopped meanwhile: it will not start, and ends as stopped.
    pub(super) cancelled: bool,
}

/// An instance whose start runs on a worker.
pub(super) struct Starting {
    pub(super) assignment: Assignment,
    pub(super) metadata: watch::Sender<GuestMetadata>,
    pub(super) socket: Option<MetadataServer>,
    pub(super) log: LogTail,
    pub(super) data_dir: PathBuf,
    /// A stop asked for meanwhile: applied as soon as the workload runs.
    pub(super) stop: Option<Duration>,
    /// What its runtime reported before the start was seen, replayed after it.
    pub(super) early: Vec<RuntimeEvent>,
}

/// A workload that runs: its socket open, its log capped.
pub(super) struct Running {
    pub(super) metadata: watch::Sender<GuestMetadata>,
    pub(super) _socket: Option<MetadataServer>,
    pub(super) log: LogTail,
    pub(super) kill_timeout: Duration,
    pub(super) snapshot: Option<SnapshotPlan>,
    pub(super) data_dir: PathBuf,
    /// Its readiness probe and the port it probes (docs/contracts.md#serving).
    pub(super) probe: Option<(u16, ReadinessProbe)>,
    pub(super) gpu_uuids: Vec<String>,
}

/// A workload that ended, kept until the coordinator has heard of it.
pub(super) struct Finished {
    pub(super) state: WorkloadState,
    pub(super) log: LogTail,
    /// A save not yet reported: until it is, the end itself is not reported either.
    pub(super) save: Option<PendingSave>,
}

/// A finished workload's save, until the coordinator has heard how it went.
pub(super) enum PendingSave {
    Uploading(SaveJob),
    Done(Result<SnapshotRef, String>),
}

/// Where a workload stands, with what that phase needs.
pub(super) enum Phase {
    Restoring(Box<Restoring>),
    Starting(Box<Starting>),
    Running(Box<Running>),
    Finished(Finished),
}

/// The name of a [`Phase`], for checks and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Restoring,
    Starting,
    Running,
    Finished,
}

impl Stage {
    /// Whether a workload may enter `self` from `from` (`None`: new on this host; a
    /// workload an earlier agent left running is adopted straight into `Running`).
    pub(super) fn may_follow(self, from: Option<Stage>) -> bool {
        use Stage::*;
        matches!(
            (from, self),
            (None, Restoring | Starting | Running)
                | (Some(Restoring), Starting | Finished)
                | (Some(Starting), Running | Finished)
                | (Some(Running), Finished)
        )
    }
}

impl Phase {
    pub(super) fn stage(&self) -> Stage {
        match self {
            Phase::Restoring(_) => Stage::Restoring,
            Phase::Starting(_) => Stage::Starting,
            Phase::Running(_) => Stage::Running,
            Phase::Finished(_) => Stage::Finished,
        }
    }
}

/// The one map of workloads, by instance.
#[derive(Default)]
pub(super) struct Workloads {
    map: BTreeMap<InstanceId, Phase>,
    /// How many are [`Phase::Finished`] (bounded by the supervisor).
    finished: usize,
}

impl Workloads {
    pub(super) fn get(&self, id: &InstanceId) -> Option<&Phase> {
        self.map.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &InstanceId) -> Option<&mut Phase> {
        self.map.get_mut(id)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&InstanceId, &Phase)> {
        self.map.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&InstanceId, &mut Phase)> {
        self.map.iter_mut()
    }

    /// Removes `id` if it is in `stage`; otherwise leaves it where it is.
    pub(super) fn take(&mut self, id: &InstanceId, stage: Stage) -> Option<Phase> {
        if self.map.get(id)?.stage() != stage {
            return None;
        }
        let phase = self.map.remove(id)?;
        self.finished -= usize::from(stage == Stage::Finished);
        Some(phase)
    }

    /// Puts `id`, which left `from` (`None`: new here), into `phase`. A move that is not
    /// one of [`Stage::may_follow`], or onto a workload still known, is refused (logged).
    pub(super) fn enter(&mut self, id: InstanceId, from: Option<Stage>, phase: Phase) -> bool {
        let to = phase.stage();
        if !to.may_follow(from) || self.map.contains_key(&id) {
            let now = self.map.get(&id).map(Phase::stage);
            tracing::error!(instance = %id, ?from, ?to, ?now, "refused workload transition");
            return false;
        }
        self.finished += usize::from(to == Stage::Finished);
        self.map.insert(id, phase);
        true
    }

    pub(super) fn finished_count(&self) -> usize {
        self.finished
    }

    /// The smallest id of a finished workload.
    pub(super) fn oldest_finished(&self) -> Option<InstanceId> {
        self.map.iter().find(|(_, p)| p.stage() == Stage::Finished).map(|(id, _)| id.clone())
    }

    /// The workloads in `stage`, by id.
    pub(super) fn ids_in(&self, stages: &[Stage]) -> Vec<InstanceId> {
        self.map
            .iter()
            .filter(|(_, p)| stages.contains(&p.stage()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(super) fn running(&self) -> impl Iterator<Item = (&InstanceId, &Running)> {
        self.map.iter().filter_map(|(id, p)| match p {
            Phase::Running(r) => Some((id, &**r)),
            _ => None,
        })
    }

    pub(super) fn finished(&self) -> impl Iterator<Item = (&InstanceId, &Finished)> {
        self.map.iter().filter_map(|(id, p)| match p {
            Phase::Finished(f) => Some((id, f)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Finished, LogTail, PathBuf, Phase, Stage, WorkloadState, Workloads};
    use Stage::{Restoring, Running, Starting};
    use gpuspot_common::InstanceId;

    #[test]
    fn only_the_lifecycle_moves_are_allowed() {
        let all = [Restoring, Starting, Running, Stage::Finished];
        let allowed = [
            (None, Restoring),
            (None, Starting),
            (None, Running),
            (Some(Restoring), Starting),
            (Some(Restoring), Stage::Finished),
            (Some(Starting), Running),
            (Some(Starting), Stage::Finished),
            (Some(Running), Stage::Finished),
        ];
        let froms = std::iter::once(None).chain(all.map(Some));
        for from in froms {
            for to in all {
                assert_eq!(
                    to.may_follow(from),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    fn finished() -> Phase {
        let log = LogTail::new(PathBuf::from("/nonexistent/output.log"), 1024, 0);
        Phase::Finished(Finished { state: WorkloadState::Stopped, log, save: None })
    }

    #[test]
    fn a_workload_leaves_only_the_phase_it_is_in_and_never_enters_twice() {
        let mut workloads = Workloads::default();
        let id = InstanceId::from("i-1");
        assert!(
            !workloads.enter(id.clone(), None, finished()),
            "new workloads never start finished"
        );
        assert!(workloads.enter(id.clone(), Some(Running), finished()));
        assert_eq!(workloads.finished_count(), 1);
        assert!(!workloads.enter(id.clone(), Some(Running), finished()), "already known");
        assert!(workloads.take(&id, Running).is_none(), "it is not running");
        assert_eq!(workloads.ids_in(&[Stage::Finished]), std::slice::from_ref(&id));
        assert!(workloads.take(&id, Stage::Finished).is_some());
        assert_eq!((workloads.finished_count(), workloads.get(&id).is_none()), (0, true));
    }
}
