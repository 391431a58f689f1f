//! What this host runs, as the agent knows it: one entry per workload with its metadata
//! socket and output, plus finished workloads until the coordinator has heard of them.
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
mod snapshots;
mod starts;
#[cfg(test)]
mod tests;

pub use snapshots::Followup;
pub use starts::{StartWorkers, Started};

use logs::LogTail;

use crate::metadata::MetadataServer;
use crate::runtime::{DataDisks, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::protocol::{
    AgentMessage, Assignment, GuestMetadata, InstanceReport, ReadinessProbe, SnapshotPlan,
    WorkloadState,
};
use gpuspot_common::{Failure, FailureKind, InstanceId};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How many log chunks one poll ships per instance.
const LOG_CHUNKS_PER_POLL: usize = 16;
/// Finished workloads remembered for the coordinator (bounded if it never acknowledges).
const MAX_FINISHED: usize = 4096;

struct Workload {
    metadata: watch::Sender<GuestMetadata>,
    _socket: Option<MetadataServer>,
    log: LogTail,
    kill_timeout: Duration,
    snapshot: Option<SnapshotPlan>,
    data_dir: PathBuf,
    /// Its readiness probe and the port it probes (DESIGN §18).
    probe: Option<(u16, ReadinessProbe)>,
    gpu_uuids: Vec<String>,
}

struct Finished {
    state: WorkloadState,
    log: LogTail,
    /// A save not yet reported: until it is, the end itself is not reported either.
    save: Option<snapshots::PendingSave>,
}

pub struct Supervisor {
    runtime: Arc<dyn WorkloadRuntime>,
    instances_dir: PathBuf,
    socket_dir: PathBuf,
    running: BTreeMap<InstanceId, Workload>,
    finished: BTreeMap<InstanceId, Finished>,
    /// Assignments waiting for their snapshot to be restored before they start.
    restoring: BTreeMap<InstanceId, snapshots::Restoring>,
    /// Workloads whose start runs on a worker.
    starting: BTreeMap<InstanceId, starts::Starting>,
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
            running: BTreeMap::new(),
            finished: BTreeMap::new(),
            restoring: BTreeMap::new(),
            starting: BTreeMap::new(),
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
        let running = self
            .running
            .keys()
            .chain(self.starting.keys())
            .map(|id| InstanceReport { instance_id: id.clone(), state: WorkloadState::Running });
        let finished = self.finished.iter().map(|(id, f)| InstanceReport {
            instance_id: id.clone(),
            state: if f.save.is_some() { WorkloadState::Running } else { f.state.clone() },
        });
        running.chain(finished).collect()
    }

    /// The finished workloads a hello reports as ended (not those still saving).
    pub fn finished_ids(&self) -> BTreeSet<InstanceId> {
        self.finished.iter().filter(|(_, f)| f.save.is_none()).map(|(id, _)| id.clone()).collect()
    }

    /// The runtime, for commands run inside instances (exec streams).
    pub fn runtime(&self) -> Arc<dyn WorkloadRuntime> {
        self.runtime.clone()
    }

    /// The guest runtimes this host offers (DESIGN §14).
    pub fn runtimes(&self) -> Vec<gpuspot_common::protocol::GuestRuntime> {
        self.runtime.runtimes()
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// What runs or is starting.
    pub fn running_ids(&self) -> Vec<InstanceId> {
        self.running.keys().chain(self.starting.keys()).cloned().collect()
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
        if let Some(workload) = self.running.get_mut(&id) {
            workload.metadata.send_replace(assignment.metadata);
            workload.log.sent = assignment.log_offset;
            return Vec::new();
        }
        if let Some(starting) = self.starting.get_mut(&id) {
            starting.metadata.send_replace(assignment.metadata);
            starting.log.sent = assignment.log_offset;
            return Vec::new();
        }
        if self.finished.contains_key(&id) {
            return Vec::new();
        }
        if let Some(restoring) = self.restoring.get_mut(&id) {
            restoring.assignment = assignment;
            restoring.cancelled = false;
            return Vec::new();
        }
        if let Some(refusal) = self.port_refusal(&id, &assignment.ports) {
            return vec![refusal];
        }
        if let Some(snapshot) = assignment.snapshot.as_ref().and_then(|p| p.restore.clone()) {
            return vec![Followup::Restore(self.begin_restore(assignment, snapshot))];
        }
        self.launch(assignment)
    }

    /// Starts the command of an assignment whose data dir is ready (see [`starts`]): its
    /// report (running, or failed with why), or the refusal of a start whose host port was
    /// taken meanwhile, now or once a worker has started it.
    fn launch(&mut self, assignment: Assignment) -> Vec<Followup> {
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
        let starting = starts::Starting {
            assignment,
            metadata,
            socket,
            log,
            data_dir,
            stop: None,
            early: Vec::new(),
        };
        self.begin_start(spec, starting)
    }

    /// Stops a workload; one still waiting for its restore will not start.
    pub fn stop(&mut self, id: &InstanceId, kill_timeout: Duration) {
        if let Some(starting) = self.starting.get_mut(id) {
            starting.stop = Some(kill_timeout);
        } else if self.running.contains_key(id) {
            tracing::info!(instance = %id, "stopping workload");
            self.runtime.stop(id, kill_timeout);
        } else if let Some(restoring) = self.restoring.get_mut(id) {
            tracing::info!(instance = %id, "cancelling a workload waiting for its snapshot");
            restoring.cancelled = true;
        }
    }

    pub fn stop_all(&mut self) {
        for (id, workload) in &self.running {
            self.runtime.stop(id, workload.kill_timeout);
        }
        for starting in self.starting.values_mut() {
            starting.stop = Some(Duration::from_millis(starting.assignment.kill_timeout_ms));
        }
    }

    pub fn set_metadata(&mut self, metadata: GuestMetadata) {
        if let Some(workload) = self.running.get_mut(&metadata.instance_id) {
            workload.metadata.send_replace(metadata);
        } else if let Some(starting) = self.starting.get_mut(&metadata.instance_id) {
            starting.metadata.send_replace(metadata);
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
            let running = self.running.contains_key(&id);
            return running.then_some(Followup::Report(InstanceReport {
                instance_id: id,
                state: event.state,
            }));
        }
        let mut workload = self.running.remove(&event.instance_id)?;
        workload.log.stop_capping();
        tracing::info!(instance = %event.instance_id, state = ?event.state, "workload ended");
        let id = event.instance_id;
        let save = workload
            .snapshot
            .filter(|plan| plan.save)
            .map(|plan| self.save_job(&id, workload.data_dir, plan.max_bytes));
        let pending = save.clone().map(snapshots::PendingSave::Uploading);
        if save.is_none() {
            self.release_data(&id);
        }
        self.remember_finished(id.clone(), event.state.clone(), workload.log, pending);
        Some(match save {
            Some(job) => Followup::Save(job),
            None => Followup::Report(InstanceReport { instance_id: id, state: event.state }),
        })
    }

    fn remember_finished(
        &mut self,
        id: InstanceId,
        state: WorkloadState,
        log: LogTail,
        save: Option<snapshots::PendingSave>,
    ) {
        if self.finished.len() >= MAX_FINISHED
            && let Some(oldest) = self.finished.keys().next().cloned()
        {
            self.forget(&oldest);
        }
        self.finished.insert(id, Finished { state, log, save });
    }

    fn forget(&mut self, id: &InstanceId) {
        self.finished.remove(id);
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
        let starting = self
            .starting
            .iter()
            .map(|(id, s)| (id, Duration::from_millis(s.assignment.kill_timeout_ms)));
        let unwanted: Vec<(InstanceId, Duration)> = self
            .running
            .iter()
            .map(|(id, w)| (id, w.kill_timeout))
            .chain(starting)
            .filter(|(id, _)| !wanted.contains(*id))
            .map(|(id, timeout)| (id.clone(), timeout))
            .collect();
        for (id, kill_timeout) in unwanted {
            tracing::info!(instance = %id, "not desired by the coordinator");
            self.stop(&id, kill_timeout);
        }
        for (id, restoring) in &mut self.restoring {
            restoring.cancelled |= !wanted.contains(id);
        }
        desired.into_iter().flat_map(|a| self.start(a)).collect()
    }

    /// Output not yet shipped, as log frames (all instances, or one).
    pub fn pending_logs(&mut self, only: Option<&InstanceId>) -> Vec<AgentMessage> {
        let tails = self
            .running
            .iter_mut()
            .map(|(id, w)| (id, &mut w.log))
            .chain(self.finished.iter_mut().map(|(id, f)| (id, &mut f.log)))
            .filter(|(id, _)| only.is_none_or(|o| o == *id));
        let mut frames = Vec::new();
        for (id, tail) in tails {
            for _ in 0..LOG_CHUNKS_PER_POLL {
                match tail.read_chunk() {
                    Some((offset, data)) => {
                        frames.push(AgentMessage::Log { instance_id: id.clone(), offset, data })
                    }
                    None => break,
                }
            }
        }
        frames
    }
}

/// The report of a workload that could not be started, and why.
fn failed(id: &InstanceId, message: String) -> InstanceReport {
    let state = WorkloadState::Failed(Failure::new(FailureKind::Start, message));
    InstanceReport { instance_id: id.clone(), state }
}
