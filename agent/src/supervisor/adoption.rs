//! The supervisor's side of agent restarts and data release (docs/contracts.md#guests).
//! - Adoption: at start, the runtime takes over what an earlier agent process left running
//!   ([`crate::runtime::WorkloadRuntime::adopt`]); each adopted workload gets its entry back
//!   from its `assignment.json` (see [`super::records`]): its socket re-opened, its log
//!   continuing from what is on disk. Hellos report it running; a welcome that lists it
//!   keeps it, one that does not stops it. Instance dirs nobody adopted are garbage.
//! - Data release: an instance's data dir (and data disk) is deleted as soon as the instance
//!   has ended and its snapshot, if any, is stored; its output stays until acknowledged.

use super::workloads::{Phase, Running, Stage};
use super::{Supervisor, records};
use crate::metadata::MetadataServer;
use crate::runtime::disk;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::Assignment;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

impl Supervisor {
    /// Takes over the workloads an earlier agent process left running (once; later calls
    /// do nothing). Call before the first hello. Returns their ids.
    pub fn adopt(&mut self) -> Vec<InstanceId> {
        if std::mem::replace(&mut self.adopted, true) {
            return Vec::new();
        }
        let began = std::time::Instant::now();
        let ids = self.runtime.adopt();
        for id in &ids {
            match records::load(&self.instance_dir(id)) {
                Some(assignment) => self.resume(assignment),
                None => {
                    tracing::warn!(instance = %id, "an adopted workload has no assignment record; stopping it");
                    self.runtime.stop(id, Duration::ZERO);
                }
            }
        }
        self.remove_unadopted(&ids);
        if !ids.is_empty() {
            tracing::info!(adopted = ids.len(), took = ?began.elapsed(), "workloads re-adopted");
        }
        ids
    }

    /// An adopted workload's entry, as [`Supervisor::launch`] would have made it.
    fn resume(&mut self, assignment: Assignment) {
        let spec = self.spec(&assignment);
        let (metadata, watcher) = watch::channel(assignment.metadata.clone());
        let socket = MetadataServer::start(spec.metadata_socket.clone(), watcher)
            .map_err(|error| {
                tracing::warn!(instance = %assignment.instance_id, %error,
                    "cannot re-open the metadata socket of an adopted workload");
            })
            .ok();
        let log = self.log_tail(spec.log_path.clone(), assignment.log_offset);
        self.track(None, assignment, metadata, socket, log, spec.data_dir);
    }

    /// Instance dirs of an earlier agent process that nothing runs in any more (ended,
    /// restoring, or waiting to be acknowledged): nobody will ever ship or ask for them.
    fn remove_unadopted(&mut self, adopted: &[InstanceId]) {
        let dirs = std::fs::read_dir(&self.instances_dir).into_iter().flatten().flatten();
        for entry in dirs {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Dot names are the agent's own (the data-disk pool), never an instance's.
            if name.starts_with('.') || adopted.iter().any(|id| id.as_str() == name) {
                continue;
            }
            tracing::info!(instance = %name, "removing what an earlier agent process left of an instance");
            let socket_dir = self.socket_dir.join(&name);
            self.off_thread(move || remove_instance(&entry.path(), &socket_dir));
        }
    }

    /// The instance is over and its snapshot (if any) stored: its data goes now.
    pub(super) fn release_data(&mut self, id: &InstanceId) {
        let dir = self.instance_dir(id);
        let socket_dir = self.socket_dir.join(id.as_str());
        self.off_thread(move || {
            if let Err(error) = disk::release(&dir.join("data")) {
                tracing::warn!(dir = %dir.display(), %error, "cannot delete a data dir");
            }
            records::remove(&dir);
            let _ = std::fs::remove_dir_all(&socket_dir);
        });
    }

    /// The coordinator has everything of the instance: nothing of it stays.
    pub(super) fn remove_instance_dir(&mut self, id: &InstanceId) {
        let dir = self.instance_dir(id);
        let socket_dir = self.socket_dir.join(id.as_str());
        self.off_thread(move || remove_instance(&dir, &socket_dir));
    }

    /// Waits for the data dirs being deleted (an agent about to exit must not leave a
    /// data disk mounted halfway).
    pub async fn deletions_done(&mut self) {
        for job in std::mem::take(&mut self.deleting) {
            let _ = job.await;
        }
    }

    /// Deleting a big data dir takes a while: a blocking thread does it when there is a
    /// runtime (remembered for [`Supervisor::deletions_done`]).
    fn off_thread(&mut self, job: impl FnOnce() + Send + 'static) {
        self.deleting.retain(|job| !job.is_finished());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => self.deleting.push(runtime.spawn_blocking(job)),
            Err(_) => job(),
        }
    }

    /// Keeps the workload of `assignment`, which left `from` (`None`: adopted), as running
    /// (its socket open, its log capped).
    pub(super) fn track(
        &mut self,
        from: Option<Stage>,
        assignment: Assignment,
        metadata: watch::Sender<gpuspot_common::protocol::GuestMetadata>,
        socket: Option<MetadataServer>,
        mut log: super::logs::LogTail,
        data_dir: PathBuf,
    ) {
        if let Some(every) = self.log_cap_every {
            log.cap_every(every);
        }
        let kill_timeout = Duration::from_millis(assignment.kill_timeout_ms);
        let snapshot = assignment.snapshot;
        let probe = assignment.readiness.zip(assignment.ports.first()).map(|(p, m)| (m.host, p));
        let running = Running {
            metadata,
            _socket: socket,
            log,
            kill_timeout,
            snapshot,
            data_dir,
            probe,
            gpu_uuids: assignment.gpu_uuids,
        };
        self.workloads.enter(assignment.instance_id, from, Phase::Running(Box::new(running)));
    }
}

/// Unmounts and deletes the data first: removing the dir around a mounted disk would fail.
fn remove_instance(dir: &Path, socket_dir: &Path) {
    if let Err(error) = disk::release(&dir.join("data")) {
        tracing::warn!(dir = %dir.display(), %error, "cannot delete a data dir");
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(socket_dir);
}
