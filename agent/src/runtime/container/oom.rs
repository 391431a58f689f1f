//! Whether the kernel's OOM killer ended a container, where the engine cannot tell.
//!
//! On cgroup v2 the engine reports `State.OOMKilled`. Under cgroup v1 (checked with Podman
//! 4.3 and runc on a hybrid host) it reports false even when the OOM killer took the
//! container's only process, and the cgroup is gone by the time the container is seen to
//! have exited. So while a container runs we listen on its v1 memory cgroup: an eventfd
//! registered through `cgroup.event_control` fires on every OOM in the cgroup (and once
//! more when the cgroup is removed), and `memory.oom_control` counts the kills. A kill
//! that came before the watch was registered is found in the kernel log.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

/// Listens for OOM kills in one container's memory cgroup until dropped.
pub struct OomWatch {
    killed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl OomWatch {
    /// Starts listening on the v1 memory cgroup of `pid` (a process of the container).
    /// `None` where there is none to listen on (cgroup v2, or another cgroup namespace):
    /// the engine's own report is all there is.
    pub fn start(pid: u32) -> Option<OomWatch> {
        let cgroup = memory_cgroup(pid)?;
        let (events, control) = match register(&cgroup) {
            Ok(fds) => fds,
            Err(error) => {
                tracing::debug!(%error, cgroup = %cgroup.display(), "cannot listen for OOM kills");
                return None;
            }
        };
        let killed = Arc::new(AtomicBool::new(kills(&control) > 0));
        let task = tokio::spawn(listen(events, control, killed.clone()));
        Some(OomWatch { killed, task })
    }

    /// Whether the OOM killer has killed a process of the container.
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

impl Drop for OomWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `/sys/fs/cgroup/memory/<path>` from the `N:memory:/path` line of `/proc/PID/cgroup`.
fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = table.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers.split(',').any(|c| c == "memory").then_some(path)
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    dir.join("memory.oom_control").exists().then_some(dir)
}

/// A non-blocking eventfd registered for the cgroup's OOM notifications, and the open
/// `memory.oom_control` (read for its kill count while the cgroup exists).
fn register(cgroup: &Path) -> std::io::Result<(OwnedFd, File)> {
    // SAFETY: eventfd takes no pointers; a valid descriptor is owned below.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let events = unsafe { OwnedFd::from_raw_fd(raw) };
    let control = File::open(cgroup.join("memory.oom_control"))?;
    let line = format!("{} {}", events.as_raw_fd(), control.as_raw_fd());
    std::fs::write(cgroup.join("cgroup.event_control"), line)?;
    Ok((events, control))
}

/// The `oom_kill` count of `memory.oom_control`; 0 when it cannot be read (the cgroup is
/// gone, or the kernel predates the counter).
fn kills(control: &File) -> u64 {
    read_control(control)
        .and_then(|text| {
            text.lines().find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The whole of `memory.oom_control` (a few short lines), or None once the cgroup is gone.
fn read_control(control: &File) -> Option<String> {
    let mut buffer = [0u8; 512];
    // SAFETY: pread into a buffer of the given length from a descriptor we own.
    let n =
        unsafe { libc::pread(control.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
    let n = usize::try_from(n).ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// Each wake-up is an OOM, or the cgroup's removal (after which nothing more can come).
async fn listen(events: OwnedFd, control: File, killed: Arc<AtomicBool>) {
    // SAFETY: the eventfd is owned by the AsyncFd and stays open for its whole life.
    let registered = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) };
    let Ok(events) = registered else { return };
    loop {
        let Ok(mut ready) = events.readable().await else { return };
        let mut count = [0u8; 8];
        // SAFETY: reads 8 bytes into a buffer of 8 from a descriptor we own.
        let n = unsafe { libc::read(events.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        if n != 8 {
            ready.clear_ready();
            continue;
        }
        let fired = u64::from_ne_bytes(count);
        if kills(&control) > 0 || fired >= 2 {
            killed.store(true, Ordering::SeqCst);
        }
        if read_control(&control).is_none() {
            return;
        }
    }
}

/// Whether the kernel log records an OOM kill in the memory cgroup of container `id` (its
/// full id; cgroup paths name it: `libpod-<id>`, `docker/<id>`, `docker-<id>.scope`). The
/// fallback for kills the watch could not see: a container that reached its limit before
/// the watch was registered. Needs the right to read `/dev/kmsg` (root); false without it.
pub fn in_kernel_log(id: &str) -> bool {
    let Ok(kmsg) =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg")
    else {
        return false;
    };
    let mut record = vec![0u8; 8192];
    let mut reader = &kmsg;
    loop {
        // One record per read; EAGAIN past the newest; EPIPE where records were overwritten.
        match reader.read(&mut record) {
            Ok(0) => return false,
            Ok(n) => {
                let text = String::from_utf8_lossy(&record[..n]);
                if text.contains("oom-kill:") && text.contains(id) {
                    return true;
                }
            }
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => {}
            Err(_) => return false,
        }
    }
}
