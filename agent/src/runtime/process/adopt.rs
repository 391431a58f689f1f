//! Taking over the process workloads an earlier agent process left running (DESIGN §14
//! "Agent restarts"): every instance dir with a record (see [`super::record`]) whose data
//! dir still exists. A watcher that still runs (same boot, same pid and start time) is
//! followed through a pidfd (polled where the kernel has none); once it has ended, the
//! `exit-status` it wrote gives the real exit code, also for a workload that ended while
//! no agent ran. From then on an adopted workload is supervised like any other. Workloads
//! under the instances dir without a record are killed (see [`super::orphans`]).

use super::cgroup::InstanceCgroup;
use super::network::Networking;
use super::process::{Guest, Inner};
use super::record::{self, ProcRef, ProcessRecord};
use gpuspot_common::InstanceId;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// How long a watcher without a pidfd is polled for.
const POLL: Duration = Duration::from_millis(100);

/// What tells a workload's end: the watcher is our child, or was an earlier agent's.
pub(super) enum Watcher {
    Child(tokio::process::Child),
    Pidfd(AsyncFd<OwnedFd>),
    Poll(ProcRef),
    /// Already over when the agent started.
    Gone,
}

impl Watcher {
    /// Resolves once the watcher has ended (and so has written what it knows).
    pub(super) async fn wait(&mut self) {
        match self {
            Watcher::Child(child) => drop(child.wait().await),
            Watcher::Pidfd(fd) => drop(fd.readable().await),
            Watcher::Poll(process) => {
                while process.alive() {
                    tokio::time::sleep(POLL).await;
                }
            }
            Watcher::Gone => {}
        }
    }

    /// The recorded watcher if it still runs in this boot.
    fn find(record: &ProcessRecord, boot_id: &str) -> Self {
        if record.boot_id != boot_id {
            return Watcher::Gone;
        }
        Self::of(record.watcher)
    }

    /// Follows `watcher`, any process of this boot, not necessarily our child.
    fn of(watcher: ProcRef) -> Self {
        if !watcher.alive() {
            return Watcher::Gone;
        }
        let Some(pidfd) = pidfd_open(watcher.pid) else { return Watcher::Poll(watcher) };
        // The pid might have been reused between the check and the open: check again, now
        // that the pidfd pins the process.
        if !watcher.alive() {
            return Watcher::Gone;
        }
        // SAFETY: the OwnedFd keeps the descriptor open and unchanged while registered.
        match unsafe { AsyncFd::register(pidfd) } {
            Ok(fd) => Watcher::Pidfd(fd),
            Err(_) => Watcher::Poll(watcher),
        }
    }
}

/// How often a running guest's network helper is started again before the agent gives up
/// (the guest then keeps running without a network until the next agent start).
const HELPER_RESTARTS: usize = 5;

/// While the guest runs, starts its network helper again whenever it dies (it is confined
/// and should not; a crash must not leave the guest unreachable). Never completes.
pub(super) async fn keep_connected(network: &Networking, record: &mut ProcessRecord) {
    let instance_dir = record::instance_dir(&record.data_dir);
    for _ in 0..HELPER_RESTARTS {
        let Some(helper) = record.net_helper else { break };
        Watcher::of(helper).wait().await;
        // A guest that ends closes its helper's exit pipe: that is no crash.
        if !record.workload.alive() {
            break;
        }
        let (network, mut copy, dir) = (network.clone(), record.clone(), instance_dir.clone());
        let restarted = tokio::task::spawn_blocking(move || {
            reconnect(&network, &mut copy, &dir);
            copy.net_helper
        });
        record.net_helper = restarted.await.unwrap_or(record.net_helper);
    }
    std::future::pending().await
}

/// Starts the network helper of a running guest again if it has died: the guest's ports
/// are published through it, and only through it.
fn reconnect(network: &Networking, record: &mut ProcessRecord, instance_dir: &std::path::Path) {
    let Some(helper) = record.net_helper.filter(|helper| !helper.alive()) else { return };
    let Some((_, gid)) = record.ids else { return };
    tracing::warn!(instance_id = %record.instance_id, pid = helper.pid,
        "the guest's network helper has ended; starting another");
    match network.restart(record.workload, instance_dir, gid, &record.ports) {
        Ok(helper) => {
            record.net_helper = Some(helper);
            if let Err(error) = record.save(instance_dir) {
                tracing::warn!(instance_id = %record.instance_id, %error,
                    "cannot record the guest's new network helper");
            }
        }
        Err(error) => tracing::warn!(instance_id = %record.instance_id, pid = helper.pid,
            %error, "the guest's network helper is gone and could not be started again"),
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers; a returned fd is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adopts every recorded workload under the runtime's instances dir; their ids.
pub(super) fn adopt(inner: &Arc<Inner>) -> Vec<InstanceId> {
    let Some(dir) = inner.options.instances_dir.clone() else { return Vec::new() };
    let _runtime = inner.tokio.enter();
    let boot_id = record::boot_id();
    let mut adopted = Vec::new();
    let mut workloads = inner.workloads();
    for instance_dir in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()) {
        let Some(mut record) = ProcessRecord::load(&instance_dir) else { continue };
        // A released data dir means the instance is over; its record waits for its dir to go.
        if !record.data_dir.exists() || workloads.contains_key(&record.instance_id) {
            continue;
        }
        let mut watcher = Watcher::find(&record, &boot_id);
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
            reconnect(&inner.options.network, &mut record, &instance_dir);
        }
        tracing::info!(instance_id = %record.instance_id, pid = record.workload.pid, alive,
            "adopting a workload left by an earlier agent process");
        let cgroup = InstanceCgroup::open(&record.cgroups);
        let stopping = instance_dir.join(record::STOPPING).exists();
        let id = record.instance_id.clone();
        adopted.push(id.clone());
        inner.supervise(&mut workloads, Guest { id, record, cgroup, watcher }, stopping);
    }
    drop(workloads);
    let killed = super::orphans::kill_unadopted(&dir, &adopted);
    if killed > 0 {
        tracing::warn!(killed, "killed unrecorded workloads left by an earlier agent process");
    }
    adopted
}
