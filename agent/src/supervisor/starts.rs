//! Starts off the link's loop (docs/contracts.md#guests "Cost of a start"): a runtime's `start`
//! (data disk, uid, cgroups, namespaces, the guest's network, the spawn) and the assignment's
//! record run on a bounded set of blocking workers, so that heartbeats and reports never wait
//! behind a start storm and a busy host is never taken for a lost one. What the coordinator says
//! about an instance meanwhile (a repeated start, metadata, a stop) and what its runtime reports
//! early (a guest that ended at once) is kept for when its start is seen. Without workers (unit
//! tests) the same steps run inline.

use super::workloads::{Phase, Stage, Starting};
use super::{Followup, Supervisor, failed, records, serving};
use crate::runtime::{DataDisks, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{Assignment, InstanceReport, WorkloadState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};

/// The outcome of one start, from a worker.
pub struct Started {
    id: InstanceId,
    result: Result<(), RuntimeError>,
}

/// At most `n` starts at once on blocking threads; their outcomes come back in order of
/// completion through [`Supervisor::next_started`].
pub struct StartWorkers {
    gate: Arc<Semaphore>,
    done_tx: mpsc::UnboundedSender<Started>,
    done_rx: mpsc::UnboundedReceiver<Started>,
}

impl StartWorkers {
    pub fn new(n: usize) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self { gate: Arc::new(Semaphore::new(n.max(1))), done_tx, done_rx }
    }

    /// As many workers as the host has cores, at least 2 and at most 8: a start is mostly
    /// system calls and waits on helpers, so a few in flight keep the cores busy.
    pub fn for_host() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::new(cores.clamp(2, 8))
    }

    fn submit(&self, job: StartJob) {
        let (gate, done) = (self.gate.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else { return };
            let id = job.spec.instance_id.clone();
            let result = tokio::task::spawn_blocking(move || job.run()).await;
            let result = result.unwrap_or_else(|e| Err(RuntimeError::Exec(e.to_string())));
            let _ = done.send(Started { id, result });
        });
    }
}

/// One start, as a worker runs it.
struct StartJob {
    runtime: Arc<dyn WorkloadRuntime>,
    disks: DataDisks,
    spec: WorkloadSpec,
    instance_dir: PathBuf,
    assignment: Assignment,
}

impl StartJob {
    fn run(self) -> Result<(), RuntimeError> {
        let began = Instant::now();
        let id = self.spec.instance_id.clone();
        // A container gets its data disk here, to bind-mount it; the process runtime makes
        // its guests' own (and the fake one needs none).
        if self.spec.image.is_some()
            && let Err(error) = self.disks.prepare(&self.spec.data_dir, self.spec.data_disk_gib)
        {
            tracing::warn!(instance = %id, %error, "cannot prepare the data dir");
        }
        let data_dir = self.spec.data_dir.clone();
        if let Err(error) = self.runtime.start(self.spec) {
            // Released here, before the refusal is reported: the coordinator's retry of
            // this very instance may start at once, and must not meet a deletion.
            if matches!(error, RuntimeError::PortBusy { .. })
                && let Err(e) = crate::runtime::disk::release(&data_dir)
            {
                tracing::warn!(instance = %id, error = %e, "cannot delete a data dir");
            }
            return Err(error);
        }
        records::save(&self.instance_dir, &self.assignment);
        tracing::debug!(instance = %id, took_us = began.elapsed().as_micros() as u64, "start");
        Ok(())
    }
}

impl Supervisor {
    /// Starts the prepared `starting` on a worker (or inline, without workers).
    /// `from`: the phase it left (`None`: new here).
    pub(super) fn begin_start(
        &mut self,
        spec: WorkloadSpec,
        starting: Starting,
        from: Option<Stage>,
    ) -> Vec<Followup> {
        let id = spec.instance_id.clone();
        let job = StartJob {
            runtime: self.runtime.clone(),
            disks: self.disks,
            instance_dir: self.instance_dir(&id),
            assignment: starting.assignment.clone(),
            spec,
        };
        if !self.workloads.enter(id.clone(), from, Phase::Starting(Box::new(starting))) {
            return Vec::new();
        }
        match &self.workers {
            Some(workers) => {
                workers.submit(job);
                Vec::new()
            }
            None => {
                let result = job.run();
                self.started(Started { id, result })
            }
        }
    }

    /// The next start a worker finished (pending forever without workers).
    pub async fn next_started(&mut self) -> Started {
        match &mut self.workers {
            Some(workers) => match workers.done_rx.recv().await {
                Some(started) => started,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// A start is done: the workload is tracked and reported running (then whatever
    /// happened meanwhile is applied), or it failed and is reported so.
    pub fn started(&mut self, started: Started) -> Vec<Followup> {
        let Started { id, result } = started;
        let Some(Phase::Starting(starting)) = self.workloads.take(&id, Stage::Starting) else {
            return Vec::new();
        };
        if let Err(e) = result {
            if let RuntimeError::PortBusy { port, .. } = e {
                // Its data dir is gone already (see `StartJob::run`); its socket dir stays
                // for the retry.
                return vec![serving::refusal(&id, port, &e)];
            }
            self.release_data(&id);
            tracing::warn!(instance = %id, error = %e, "workload failed to start");
            let report = failed(&id, e.to_string());
            self.remember_finished(
                id.clone(),
                Stage::Starting,
                report.state.clone(),
                starting.log,
                None,
            );
            return vec![Followup::Report(report)];
        }
        tracing::info!(instance = %id, "workload started");
        // A container runs only once its image is pulled and it is created and started: its
        // runtime says when (see `on_runtime_event`), so pull time is neither `running` nor billed.
        let starts_later = starting.assignment.image.is_some();
        let Starting { assignment, metadata, socket, log, data_dir, stop, early } = *starting;
        self.track(Some(Stage::Starting), assignment, metadata, socket, log, data_dir);
        let running = InstanceReport { instance_id: id.clone(), state: WorkloadState::Running };
        let mut followups: Vec<Followup> =
            (!starts_later).then_some(Followup::Report(running)).into_iter().collect();
        if let Some(kill_timeout) = stop {
            self.stop(&id, kill_timeout);
        }
        followups.extend(early.into_iter().filter_map(|event| self.on_runtime_event(event)));
        followups
    }

    /// Keeps what the runtime says of a workload whose start is not seen yet; false when
    /// the workload is not starting.
    pub(super) fn early_event(&mut self, event: &RuntimeEvent) -> bool {
        match self.workloads.get_mut(&event.instance_id) {
            Some(Phase::Starting(starting)) => {
                starting.early.push(event.clone());
                true
            }
            _ => false,
        }
    }
}
