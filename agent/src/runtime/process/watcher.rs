//! Following a process workload's end: its watcher is our child, or an earlier agent
//! process's (followed through a pidfd, polled where the kernel has none). While the guest
//! runs, its network helper is started again whenever it dies.

use crate::runtime::network::Networking;
use crate::runtime::record::{self, ProcRef, ProcessRecord};
use std::os::fd::{FromRawFd, OwnedFd};
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
    pub(super) fn find(record: &ProcessRecord, boot_id: &str) -> Self {
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
pub(super) fn reconnect(
    network: &Networking,
    record: &mut ProcessRecord,
    instance_dir: &std::path::Path,
) {
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
