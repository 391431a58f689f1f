//! One supervised process workload, from spawn (or adoption) to its single final event:
//! the runtime's shared state ([`Inner`]), what a workload's end must clean up ([`Guest`]),
//! and the task that follows it, stops it and reports its end.

use super::exec::ExecTarget;
use super::options::ProcessOptions;
use super::watcher::{Watcher, keep_connected};
use crate::runtime::RuntimeEvent;
use crate::runtime::cgroup::InstanceCgroup;
use crate::runtime::group::{signal_group, wait_group_gone};
use crate::runtime::record::{self, ProcessRecord};
use crate::runtime::uids::GuestIds;
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{Failure, FailureKind, InstanceId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(super) struct Inner {
    pub(super) events: mpsc::UnboundedSender<RuntimeEvent>,
    pub(super) options: ProcessOptions,
    pub(super) tokio: tokio::runtime::Handle,
    /// Workloads from spawn (or adoption) until their final event is sent.
    pub(super) workloads: Mutex<HashMap<InstanceId, Control>>,
}

pub(super) struct Control {
    /// Taken by the first `stop`; `None` afterwards means a stop was requested.
    pub(super) stop: Option<oneshot::Sender<Duration>>,
    /// A stop was requested of an earlier agent process (the `stopping` marker).
    pub(super) stopping: bool,
    pub(super) target: Arc<ExecTarget>,
}

/// One workload being supervised: what its end must clean up.
pub(super) struct Guest {
    pub(super) id: InstanceId,
    pub(super) record: ProcessRecord,
    pub(super) cgroup: Option<InstanceCgroup>,
    pub(super) watcher: Watcher,
}

impl Inner {
    pub(super) fn workloads(&self) -> MutexGuard<'_, HashMap<InstanceId, Control>> {
        // The map stays consistent even if a holder panicked: every change is one insert/remove.
        self.workloads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a spawned or adopted workload in `workloads` (the locked map) and
    /// supervises it until its end.
    pub(super) fn supervise(
        self: &Arc<Self>,
        workloads: &mut HashMap<InstanceId, Control>,
        guest: Guest,
        stopping: bool,
    ) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let record = &guest.record;
        let target = Arc::new(ExecTarget {
            ids: record.ids.map(|(uid, gid)| GuestIds { uid, gid }),
            cgroup_dirs: record.cgroups.clone(),
            init: record.namespaced.then_some(record.workload),
            data_dir: record.data_dir.clone(),
            env: record.env.clone(),
        });
        let control = Control { stop: Some(stop_tx), stopping, target };
        workloads.insert(guest.id.clone(), control);
        self.tokio.spawn(supervise(self.clone(), guest, stop_rx));
    }
}

/// Owns one workload from spawn (or adoption) to its single final event.
async fn supervise(inner: Arc<Inner>, mut guest: Guest, mut stop_rx: oneshot::Receiver<Duration>) {
    let pgid = i32::try_from(guest.record.workload.pid).unwrap_or(0);
    let network = &inner.options.network;
    let stopped = tokio::select! {
        () = guest.watcher.wait() => false,
        Ok(kill_timeout) = &mut stop_rx => {
            terminate(&mut guest.watcher, pgid, kill_timeout).await;
            true
        }
        () = keep_connected(network, &mut guest.record) => false,
    };
    let status =
        record::read_status(&record::instance_dir(&guest.record.data_dir).join(record::STATUS));
    let oom_kills = guest.cgroup.as_ref().map_or(0, InstanceCgroup::oom_kills);
    clean_up(&mut guest, pgid).await;
    // A stop that raced with a natural exit still counts: the user asked for it.
    let control = inner.workloads().remove(&guest.id);
    let stop_requested = control.is_some_and(|c| c.stop.is_none() || c.stopping);
    let state = if stopped || stop_requested {
        WorkloadState::Stopped
    } else {
        final_state(status.wait_status, oom_kills)
    };
    tracing::info!(instance_id = %guest.id, ?state, "workload ended");
    let _ = inner.events.send(RuntimeEvent { instance_id: guest.id, state });
}

/// The command is over: nothing it started may outlive it.
async fn clean_up(guest: &mut Guest, pgid: i32) {
    signal_group(pgid, libc::SIGKILL);
    if let Some(helper) = guest.record.net_helper {
        let _ = tokio::task::spawn_blocking(move || helper.kill_and_wait()).await;
    }
    if let Some(cgroup) = &guest.cgroup {
        cgroup.kill_all();
    }
    if let Some((uid, _)) = guest.record.ids {
        let swept = tokio::task::spawn_blocking(move || {
            crate::runtime::sweep::kill_uid(uid);
            crate::runtime::sweep::remove_scratch_of(uid);
        });
        let _ = swept.await;
    }
    if let Some(cgroup) = guest.cgroup.take() {
        cgroup.remove().await;
    }
}

/// SIGTERM to the group; the leader and then the rest of the group (a background checkpoint
/// writer, say) share the kill timeout before SIGKILL.
async fn terminate(watcher: &mut Watcher, pgid: i32, kill_timeout: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_timeout;
    match tokio::time::timeout_at(deadline, watcher.wait()).await {
        Ok(()) => wait_group_gone(pgid, deadline).await,
        Err(_) => {
            signal_group(pgid, libc::SIGKILL);
            watcher.wait().await;
        }
    }
}

fn final_state(wait_status: Option<i32>, oom_kills: u64) -> WorkloadState {
    match wait_status {
        Some(status) if oom_kills > 0 && record::exit_code(status) != Some(0) => {
            let code = record::exit_code(status);
            let how = code.map_or("was killed".to_owned(), |code| format!("exited with {code}"));
            let detail = format!(
                "the kernel's OOM killer ended {oom_kills} of the workload's processes at its \
                 memory limit (memory_gib) and the workload {how}"
            );
            WorkloadState::Failed(Failure::new(FailureKind::OutOfMemory, detail))
        }
        Some(status) => WorkloadState::Exited { code: record::exit_code(status) },
        None => WorkloadState::Failed(Failure::new(
            FailureKind::Lost,
            "lost track of the workload: its watcher ended without its exit status",
        )),
    }
}
