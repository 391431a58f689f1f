//! One instance's cgroups: joined before `exec` through `cgroup.procs` descriptors held
//! open, emptied (every member killed) at the workload's end, then removed.

use super::limits::Version;
use super::os::{CgroupOs, HostCgroups};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// At most one hierarchy per limit: what the code between fork and exec joins.
pub const MAX_HIERARCHIES: usize = 3;

/// How long removal waits for the cgroup's last processes to be gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct CgroupDir {
    version: Version,
    dir: PathBuf,
    procs: File,
}

impl CgroupDir {
    pub(super) fn open(version: Version, dir: &Path) -> std::io::Result<Self> {
        // The kernel makes the file; creating it only matters for the tests' fake mounts.
        let procs = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("cgroup.procs"))?;
        Ok(Self { version, dir: dir.to_owned(), procs })
    }
}

/// One instance's cgroups (one per hierarchy). The workload joins them before `exec` by
/// writing "0" to the `cgroup.procs` files held open here, so none of its processes ever
/// runs unconfined.
#[derive(Debug)]
pub struct InstanceCgroup {
    dirs: Vec<CgroupDir>,
    os: &'static dyn CgroupOs,
}

/// The `cgroup.procs` descriptors a process joins between fork and exec; -1: none.
pub type ProcsFds = [RawFd; MAX_HIERARCHIES];

pub const NO_PROCS: ProcsFds = [-1; MAX_HIERARCHIES];

impl InstanceCgroup {
    /// The cgroups an earlier agent process made for a workload it left running; `None`
    /// when all are gone.
    pub fn open(dirs: &[PathBuf]) -> Option<Self> {
        Self::open_on(&HostCgroups, dirs)
    }

    /// [`InstanceCgroup::open`] with the kernel behind `os`.
    pub(super) fn open_on(os: &'static dyn CgroupOs, dirs: &[PathBuf]) -> Option<Self> {
        let dirs: Vec<CgroupDir> = dirs
            .iter()
            .filter_map(|dir| {
                let version =
                    if dir.join("cgroup.controllers").exists() { Version::V2 } else { Version::V1 };
                CgroupDir::open(version, dir).ok()
            })
            .collect();
        Self::of(os, dirs)
    }

    /// The instance's cgroups, `None` when there are none.
    pub(super) fn of(os: &'static dyn CgroupOs, dirs: Vec<CgroupDir>) -> Option<Self> {
        (!dirs.is_empty()).then_some(Self { dirs, os })
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.dir.clone()).collect()
    }

    /// For the child's `pre_exec`; valid as long as `self` lives.
    pub fn procs_fds(&self) -> ProcsFds {
        procs_fds(self.dirs.iter().map(|d| d.procs.as_raw_fd()))
    }

    /// SIGKILLs every process in the cgroups, including ones that left the process group.
    pub fn kill_all(&self) {
        for dir in &self.dirs {
            if dir.version == Version::V2
                && let Ok(mut file) =
                    OpenOptions::new().write(true).open(dir.dir.join("cgroup.kill"))
                && file.write_all(b"1").is_ok()
            {
                continue;
            }
            members(&dir.dir).into_iter().for_each(|pid| self.os.kill(pid));
        }
    }

    /// How many times the kernel's OOM killer struck inside the memory cgroup.
    pub fn oom_kills(&self) -> u64 {
        self.dirs
            .iter()
            .filter_map(|d| {
                let file =
                    if d.version == Version::V2 { "memory.events" } else { "memory.oom_control" };
                std::fs::read_to_string(d.dir.join(file)).ok()
            })
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Waits (bounded) for the cgroups to empty, then removes them.
    pub async fn remove(self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for dir in &self.dirs {
            while !members(&dir.dir).is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Err(error) = std::fs::remove_dir(&dir.dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.dir.display(), %error, "cannot remove workload cgroup");
            }
        }
    }
}

/// Opens the `cgroup.procs` of `dirs` for a command run inside them (exec); an error when
/// one cannot be opened: a command outside its guest's limits must not run.
pub fn open_procs(dirs: &[PathBuf]) -> std::io::Result<Vec<File>> {
    dirs.iter().map(|dir| OpenOptions::new().write(true).open(dir.join("cgroup.procs"))).collect()
}

/// The fixed-size form of `fds` (extra ones dropped: there are never more hierarchies).
pub fn procs_fds(fds: impl Iterator<Item = RawFd>) -> ProcsFds {
    let mut out = NO_PROCS;
    for (slot, fd) in out.iter_mut().zip(fds) {
        *slot = fd;
    }
    out
}

pub(super) fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid: &i32| *pid > 1)
        .collect()
}
