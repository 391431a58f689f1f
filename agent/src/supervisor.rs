//! What this host runs, as the agent knows it: one entry per workload, in its phase (see
//! [`workloads`]: restoring its snapshot, starting, running with its metadata socket and
//! output, or finished until the coordinator has heard of it).
//! It applies the coordinator's commands idempotently (instance ids) and turns the runtime's
//! exits into reports. No I/O on the link here: the link module carries what this returns,
//! including the snapshot work (see [`snapshots`]) that must happen before a command starts
//! or before an instance's end is reported. Workloads outlive the agent process: a restarted
//! agent adopts them, and data dirs go as soon as their instance is over (see [`adoption`]).
//!
//! Layout: `<state_dir>/instances/<id>/` (0711 where guests have their own uids) holds
//! `data/` (the guest's), `output.log` and the records; `<socket_dir>/<id>/metadata.sock` is
//! the guest's socket, in a directory of its own so that it can be bind-mounted.

mod adoption;
#[cfg(test)]
mod adoption_tests;
#[cfg(test)]
mod log_tests;
mod logs;
mod records;
mod serving;
mod shipping;
mod snapshots;
mod starts;
#[cfg(test)]
pub(crate) mod tests;
mod workloads;

pub use snapshots::Followup;
pub use starts::{StartWorkers, Started};

use logs::LogTail;
use workloads::{Finished, Phase, Running, Stage, Workloads};

use crate::metadata::MetadataServer;
use crate::runtime::{DataDisks, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::protocol::{Assignment, GuestMetadata, InstanceReport, WorkloadState};
use gpuspot_common::{Failure, FailureKind, InstanceId};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Finished workloads remembered for the coordinator (bounded if it never acknowledges).
const MAX_FINISHED: usize = 4096;

pub struct Supervisor {
    runtime: Arc<dyn WorkloadRuntime>,
    instances_dir: PathBuf,
    socket_dir: PathBuf,
    /// Every workload, in its phase (see [`workloads`]).
    workloads: Workloads,
    /// Where starts run; `None`: inline, on the caller's thread.
    workers: Option<StartWorkers>,
    /// Output each instance keeps on disk (`[logs] max_bytes`).
    log_max_bytes: u64,
    /// How often a running workload's log is capped besides every read; `None`: only reads.
    log_cap_every: Option<Duration>,
    /// Size-limited data dirs where the host allows (made before a restore).
    disks: DataDisks,
    /// Whether [`Supervisor::adopt`] has run.
    adopted: bool,
    /// Data and instance dirs being deleted on blocking threads.
    deleting: Vec<tokio::task::JoinHandle<()>>,
}

/// The metadata socket's file name, in `<socket_dir>/<instance>/`.
pub const SOCKET_FILE: &str = "metadata.sock";

impl Supervisor {
    /// Also makes the state, instances and socket dirs traversable (0711) when the agent
    /// is root, so that guests with their own uids reach their own files below them.
    pub fn new(runtime: Arc<dyn WorkloadRuntime>, state_dir: PathBuf, socket_dir: PathBuf) -> Self {
        let instances_dir = state_dir.join("instances");
        for dir in [&state_dir, &instances_dir, &socket_dir] {
            if let Err(error) = crate::config::create_guest_reachable_dir(dir) {
                tracing::warn!(dir = %dir.display(), %error, "cannot prepare a state directory");
            }
        }
        Self {
            runtime,
            instances_dir,
            socket_dir,
            workloads: Workloads::default(),
            workers: None,
            log_max_bytes: gpuspot_common::logcap::DEFAULT_MAX_BYTES,
            log_cap_every: None,
            disks: DataDisks::detect(),
            adopted: false,
            deleting: Vec::new(),
        }
    }

    /// Where data dirs are size-limited (default: where the host allows).
    pub fn with_data_disks(mut self, disks: DataDisks) -> Self {
        self.disks = disks;
        self
    }

    /// Runs starts on `workers`, off the caller's loop (see [`starts`]).
    pub fn with_start_workers(mut self, workers: StartWorkers) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Keeps at most `max_bytes` of each instance's output on disk, capping running
    /// workloads' logs every `every` (when given) as well as on every read.
    pub fn with_log_limit(mut self, max_bytes: u64, every: Option<Duration>) -> Self {
        self.log_max_bytes = max_bytes;
        self.log_cap_every = every;
        self
    }

    fn log_tail(&self, path: PathBuf, sent: u64) -> LogTail {
        LogTail::new(path, self.log_max_bytes, sent)
    }

    /// Everything to tell the coordinator in a hello: what runs and what ended unheard. An
    /// instance whose snapshot is still being saved counts as running until it is reported.
    pub fn reports(&self) -> Vec<InstanceReport> {
        let report = |id: &InstanceId, phase: &Phase| {
            let state = match phase {
                Phase::Restoring(_) => return None,
                Phase::Starting(_) | Phase::Running(_) => WorkloadState::Running,
                Phase::Finished(f) if f.save.is_some() => WorkloadState::Running,
                Phase::Finished(f) => f.state.clone(),
            };
            Some(InstanceReport { instance_id: id.clone(), state })
        };
        self.workloads.iter().filter_map(|(id, phase)| report(id, phase)).collect()
    }

    /// The finished workloads a hello reports as ended (not those still saving).
    pub fn finished_ids(&self) -> BTreeSet<InstanceId> {
        self.workloads
            .finished()
            .filter(|(_, f)| f.save.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The runtime, for commands run inside instances (exec streams).
    pub fn runtime(&self) -> Arc<dyn WorkloadRuntime> {
        self.runtime.clone()
    }

    /// The guest runtimes this host offers (docs/contracts.md#guests).
    pub fn runtimes(&self) -> Vec<gpuspot_common::protocol::GuestRuntime> {
        self.runtime.runtimes()
    }

    pub fn running_count(&self) -> usize {
        self.workloads.running().count()
    }

    /// What runs or is starting.
    pub fn running_ids(&self) -> Vec<InstanceId> {
        self.workloads.ids_in(&[Stage::Starting, Stage::Running])
    }

    fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.instances_dir.join(id.as_str())
    }

    fn spec(&self, assignment: &Assignment) -> WorkloadSpec {
        let dir = self.instance_dir(&assignment.instance_id);
        WorkloadSpec {
            instance_id: assignment.instance_id.clone(),
            command: assignment.command.clone(),
            env: assignment.env.clone(),
            gpu_uuids: assignment.gpu_uuids.clone(),
            cpu_cores: assignment.cpu_cores,
            memory_gib: assignment.memory_gib,
            data_dir: dir.join("data"),
            metadata_socket: self
                .socket_dir
                .join(assignment.instance_id.as_str())
                .join(SOCKET_FILE),
            log_path: dir.join("output.log"),
            image: assignment.image.clone(),
            data_disk_gib: assignment.data_disk_gib,
            ports: assignment.ports.clone(),
        }
    }

    /// Starts an assignment unless it already runs (then only its metadata is refreshed).
    /// Returns the report to send (running, or failed with why), or the snapshot to restore
    /// first, after which [`Supervisor::restored`] starts it.
    pub fn start(&mut self, assignment: Assignment) -> Vec<Followup> {
        let id = assignment.instance_id.clone();
        match self.workloads.get_mut(&id) {
            Some(Phase::Running(running)) => {
                running.metadata.send_replace(assignment.metadata);
                running.log.sent = assignment.log_offset;
                return Vec::new();
            }
            Some(Phase::Starting(starting)) => {
                starting.metadata.send_replace(assignment.metadata);
                starting.log.sent = assignment.log_offset;
                return Vec::new();
            }
            Some(Phase::Finished(_)) => return Vec::new(),
            Some(Phase::Restoring(restoring)) => {
                restoring.assignment = assignment;
                restoring.cancelled = false;
                return Vec::new();
            }
            None => {}
        }
        if let Some(refusal) = self.port_refusal(&id, &assignment.ports) {
            return vec![refusal];
        }
        if let Some(snapshot) = assignment.snapshot.as_ref().and_then(|p| p.restore.clone()) {
            return vec![Followup::Restore(self.begin_restore(assignment, snapshot))];
        }
        self.launch(assignment, None)
    }

    /// Starts the command of an assignment whose data dir is ready (see [`starts`]), which
    /// left phase `from` (`None`: new here): its
    /// report (running, or failed with why), or the refusal of a start whose host port was
    /// taken meanwhile, now or once a worker has started it.
    fn launch(&mut self, assignment: Assignment, from: Option<Stage>) -> Vec<Followup> {
        let id = assignment.instance_id.clone();
        if let Some(refusal) = self.port_refusal(&id, &assignment.ports) {
            self.release_data(&id);
            return vec![refusal];
        }
        let spec = self.spec(&assignment);
        let (metadata, watcher) = watch::channel(assignment.metadata.clone());
        let socket = match MetadataServer::start(spec.metadata_socket.clone(), watcher) {
            Ok(server) => Some(server),
            Err(e) => {
                self.release_data(&id);
                let message = format!("cannot open the metadata socket: {e}");
                return vec![Followup::Report(failed(&id, message))];
            }
        };
        let log = self.log_tail(spec.log_path.clone(), assignment.log_offset);
        let data_dir = spec.data_dir.clone();
        let starting = workloads::Starting {
            assignment,
            metadata,
            socket,
            log,
            data_dir,
            stop: None,
            early: Vec::new(),
        };
        self.begin_start(spec, starting, from)
    }

    /// Stops a workload; one still waiting for its restore will not start.
    pub fn stop(&mut self, id: &InstanceId, kill_timeout: Duration) {
        match self.workloads.get_mut(id) {
            Some(Phase::Starting(starting)) => starting.stop = Some(kill_timeout),
            Some(Phase::Running(_)) => {
                tracing::info!(instance = %id, "stopping workload");
                self.runtime.stop(id, kill_timeout);
            }
            Some(Phase::Restoring(restoring)) => {
                tracing::info!(instance = %id, "cancelling a workload waiting for its snapshot");
                restoring.cancelled = true;
            }
            Some(Phase::Finished(_)) | None => {}
        }
    }

    pub fn stop_all(&mut self) {
        for (id, phase) in self.workloads.iter_mut() {
            match phase {
                Phase::Running(running) => self.runtime.stop(id, running.kill_timeout),
                Phase::Starting(s) => {
                    s.stop = Some(Duration::from_millis(s.assignment.kill_timeout_ms))
                }
                Phase::Restoring(_) | Phase::Finished(_) => {}
            }
        }
    }

    pub fn set_metadata(&mut self, metadata: GuestMetadata) {
        match self.workloads.get_mut(&metadata.instance_id) {
            Some(Phase::Running(running)) => drop(running.metadata.send_replace(metadata)),
            Some(Phase::Starting(starting)) => drop(starting.metadata.send_replace(metadata)),
            _ => {}
        }
    }

    /// A workload ended: its socket closes and it waits in `finished` until acknowledged.
    /// Returns its report, or, when its data dir is to be saved, the save to run first.
    /// A `Running` event (a runtime whose start completes later) is reported as it is.
    pub fn on_runtime_event(&mut self, event: RuntimeEvent) -> Option<Followup> {
        if self.early_event(&event) {
            return None;
        }
        if !event.state.is_final() {
            let id = event.instance_id;
            let running = matches!(self.workloads.get(&id), Some(Phase::Running(_)));
            return running.then_some(Followup::Report(InstanceReport {
                instance_id: id,
                state: event.state,
            }));
        }
        let Some(Phase::Running(workload)) =
            self.workloads.take(&event.instance_id, Stage::Running)
        else {
            return None;
        };
        Some(self.ended(event.instance_id, *workload, event.state))
    }

    /// A running workload ended in `state`: it is finished now, its save (if it has one)
    /// to run first, else its end to report.
    fn ended(&mut self, id: InstanceId, mut workload: Running, state: WorkloadState) -> Followup {
        workload.log.stop_capping();
        tracing::info!(instance = %id, ?state, "workload ended");
        let plan = workload.snapshot.filter(|plan| plan.save);
        let save = plan.map(|plan| self.save_job(&id, workload.data_dir, plan.max_bytes));
        let pending = save.clone().map(workloads::PendingSave::Uploading);
        if save.is_none() {
            self.release_data(&id);
        }
        self.remember_finished(id.clone(), Stage::Running, state.clone(), workload.log, pending);
        match save {
            Some(job) => Followup::Save(job),
            None => Followup::Report(InstanceReport { instance_id: id, state }),
        }
    }

    /// `id`, which left `from`, is finished now (the oldest finished one is forgotten
    /// when too many are kept).
    fn remember_finished(
        &mut self,
        id: InstanceId,
        from: Stage,
        state: WorkloadState,
        log: LogTail,
        save: Option<workloads::PendingSave>,
    ) {
        if self.workloads.finished_count() >= MAX_FINISHED
            && let Some(oldest) = self.workloads.oldest_finished()
        {
            self.forget(&oldest);
        }
        let finished = Phase::Finished(Finished { state, log, save });
        self.workloads.enter(id, Some(from), finished);
    }

    fn forget(&mut self, id: &InstanceId) {
        self.workloads.take(id, Stage::Finished);
        self.remove_instance_dir(id);
    }

    /// Applies the coordinator's full desired state. `acknowledged` are the finished
    /// workloads the hello reported: the coordinator has them now.
    pub fn reconcile(
        &mut self,
        desired: Vec<Assignment>,
        acknowledged: &BTreeSet<InstanceId>,
    ) -> Vec<Followup> {
        for id in acknowledged {
            self.forget(id);
        }
        let wanted: BTreeSet<InstanceId> = desired.iter().map(|a| a.instance_id.clone()).collect();
        let kill_timeout = |phase: &Phase| match phase {
            Phase::Running(running) => Some(running.kill_timeout),
            Phase::Starting(s) => Some(Duration::from_millis(s.assignment.kill_timeout_ms)),
            Phase::Restoring(_) | Phase::Finished(_) => None,
        };
        let unwanted: Vec<(InstanceId, Duration)> = (self.workloads.iter())
            .filter(|(id, _)| !wanted.contains(*id))
            .filter_map(|(id, phase)| Some((id.clone(), kill_timeout(phase)?)))
            .collect();
        for (id, kill_timeout) in unwanted {
            tracing::info!(instance = %id, "not desired by the coordinator");
            self.stop(&id, kill_timeout);
        }
        for (id, phase) in self.workloads.iter_mut() {
            if let Phase::Restoring(restoring) = phase {
                restoring.cancelled |= !wanted.contains(id);
            }
        }
        desired.into_iter().flat_map(|a| self.start(a)).collect()
    }
}

/// The report of a workload that could not be started, and why.
fn failed(id: &InstanceId, message: String) -> InstanceReport {
    let state = WorkloadState::Failed(Failure::new(FailureKind::Start, message));
    InstanceReport { instance_id: id.clone(), state }
}
