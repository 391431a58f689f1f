//! Taking over the process workloads an earlier agent process left running
//! (docs/contracts.md#guests "Agent restarts"): every instance dir with a record (see
//! [`crate::runtime::record`]) whose data dir still exists. A watcher that still runs (same boot,
//! same pid and start time) is followed through a pidfd (polled where the kernel has none); once it
//! has ended, the `exit-status` it wrote gives the real exit code, also for a workload that ended
//! while no agent ran. From then on an adopted workload is supervised like any other. Workloads
//! under the instances dir without a record are killed (see [`super::orphans`]).

use super::guest::{Guest, Inner};
use super::watcher::{Watcher, reconnect};
use crate::runtime::cgroup::InstanceCgroup;
use crate::runtime::record::{self, ProcessRecord};
use gpuspot_common::InstanceId;
use std::path::Path;
use std::sync::Arc;

/// Adopts every recorded workload under the runtime's instances dir; their ids.
pub(super) fn adopt(inner: &Arc<Inner>) -> Vec<InstanceId> {
    let Some(dir) = inner.options.instances_dir.clone() else { return Vec::new() };
    let _runtime = inner.tokio.enter();
    let boot_id = record::boot_id();
    let mut adopted = Vec::new();
    let mut workloads = inner.workloads();
    for instance_dir in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()) {
        let Some(record) = ProcessRecord::load(&instance_dir) else { continue };
        // A released data dir means the instance is over; its record waits for its dir to go.
        if !record.data_dir.exists() || workloads.contains_key(&record.instance_id) {
            continue;
        }
        let stopping = instance_dir.join(record::STOPPING).exists();
        let guest = guest_of(inner, record, &instance_dir, &boot_id);
        adopted.push(guest.id.clone());
        inner.supervise(&mut workloads, guest, stopping);
    }
    drop(workloads);
    let killed = super::orphans::kill_unadopted(&dir, &adopted);
    if killed > 0 {
        tracing::warn!(killed, "killed unrecorded workloads left by an earlier agent process");
    }
    adopted
}

/// The guest `record` describes, followed again: its watcher if it still runs (and its uid
/// is still its own), its network helper restarted if it died, its cgroups.
fn guest_of(inner: &Inner, mut record: ProcessRecord, dir: &Path, boot_id: &str) -> Guest {
    let mut watcher = Watcher::find(&record, boot_id);
    if let Some((uid, _)) = record.ids
        && !inner.options.isolation.reclaim(uid, &record.data_dir)
    {
        tracing::warn!(instance_id = %record.instance_id, uid,
            "the workload's uid now belongs to another guest; it is taken for ended");
        record.ids = None;
        watcher = Watcher::Gone;
    }
    let alive = !matches!(watcher, Watcher::Gone);
    if alive {
        reconnect(&inner.options.network, &mut record, dir);
    }
    tracing::info!(instance_id = %record.instance_id, pid = record.workload.pid, alive,
        "adopting a workload left by an earlier agent process");
    let cgroup = InstanceCgroup::open(&record.cgroups);
    let id = record.instance_id.clone();
    Guest { id, record, cgroup, watcher }
}
