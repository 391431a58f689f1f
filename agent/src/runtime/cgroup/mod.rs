//! Memory, pids and CPU limits for process guests, on cgroup v2 or v1 (docs/contracts.md#limits).
//! Each hierarchy that carries one of the controllers gets `<mount>/gpuspot/<instance>`: on v2 one
//! dir with `memory.max`, `pids.max` and `cpu.max`; on v1 one dir per controller mount
//! (`memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`). The
//! agent says once at start which limits it enforces; a host that can enforce none refuses process
//! guests unless `[process] unlimited_ok = true`.

mod instance;
mod limits;
mod os;

pub use instance::{InstanceCgroup, MAX_HIERARCHIES, NO_PROCS, ProcsFds, open_procs, procs_fds};
pub use limits::{Limit, Share};
pub use os::{CgroupOs, HostCgroups};

use gpuspot_common::InstanceId;
use instance::{CgroupDir, members};
use limits::{OPTIONAL_FILES, Version, limit_files};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;
/// An instance cgroup empty for this long was left by an agent that was killed: removed
/// at start. (Younger empty ones may belong to a guest another agent is starting.)
const STALE_AFTER: Duration = Duration::from_secs(600);
/// Processes one guest may have when `[process] pids_max` is not set (a setting's default).
pub use crate::config::DEFAULT_PIDS_MAX;

static DETECTION_LOGGED: Once = Once::new();

/// `<mount>/gpuspot` of one hierarchy and the limits it carries.
#[derive(Clone, Debug)]
struct Hierarchy {
    version: Version,
    parent: PathBuf,
    limits: Vec<Limit>,
}

/// Where instance cgroups go, and whether guests may run where no limit can be enforced.
#[derive(Clone, Debug)]
pub struct Cgroups {
    hierarchies: Vec<Hierarchy>,
    pids_max: u64,
    /// Why no limit can be enforced, when guests are refused for it.
    refusal: Option<String>,
    os: &'static dyn CgroupOs,
}

impl Cgroups {
    /// Probes this host's cgroup mounts; guests run even where nothing is enforced.
    pub fn detect() -> Self {
        Self::detect_with(DEFAULT_PIDS_MAX, true)
    }

    /// Probes this host's cgroup mounts, says once what is enforced, and refuses guests
    /// where nothing is unless `unlimited_ok`.
    pub fn detect_with(pids_max: u64, unlimited_ok: bool) -> Self {
        let cgroups = Self::detect_on(&HostCgroups, pids_max, unlimited_ok);
        DETECTION_LOGGED.call_once(|| cgroups.log());
        cgroups
    }

    /// The hierarchies `os` has mounted (tests: a fake kernel and plain directories).
    pub fn detect_on(os: &'static dyn CgroupOs, pids_max: u64, unlimited_ok: bool) -> Self {
        Self { os, ..Self::from_mountinfo(&os.mountinfo(), pids_max, unlimited_ok) }
    }

    /// From `/proc/self/mountinfo` text (tests point it at fake mounts).
    pub fn from_mountinfo(mountinfo: &str, pids_max: u64, unlimited_ok: bool) -> Self {
        let mut hierarchies = Vec::new();
        let mut problems = Vec::new();
        for (version, mount, options) in cgroup_mounts(mountinfo) {
            match prepare(version, &mount, &options) {
                // The same hierarchy mounted twice (a bind mount) is used once.
                Ok(Some(hierarchy))
                    if !hierarchies.iter().any(|h: &Hierarchy| h.limits == hierarchy.limits) =>
                {
                    hierarchies.push(hierarchy)
                }
                Ok(_) => {}
                Err(problem) => problems.push(problem),
            }
        }
        let refusal = (hierarchies.is_empty() && !unlimited_ok).then(|| {
            let why = if problems.is_empty() {
                "no cgroup hierarchy with a memory, pids or cpu controller".to_owned()
            } else {
                problems.join("; ")
            };
            format!(
                "this host can enforce no memory, pids or CPU limit ({why}); \
                 set [process] unlimited_ok = true to run process guests without limits"
            )
        });
        Self { hierarchies, pids_max, refusal, os: &HostCgroups }
    }

    /// No limits, guests allowed (tests of bookkeeping, fake runtimes).
    pub fn disabled() -> Self {
        Self {
            hierarchies: Vec::new(),
            pids_max: DEFAULT_PIDS_MAX,
            refusal: None,
            os: &HostCgroups,
        }
    }

    pub fn enforced(&self) -> bool {
        !self.hierarchies.is_empty()
    }

    /// The limits this host enforces.
    pub fn limits(&self) -> Vec<Limit> {
        self.hierarchies.iter().flat_map(|h| h.limits.iter().copied()).collect()
    }

    /// Why a process guest may not start here, if it may not.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    fn log(&self) {
        let enforced = self.limits();
        let missing: Vec<_> = Limit::ALL.into_iter().filter(|l| !enforced.contains(l)).collect();
        let names = |limits: &[Limit]| limits.iter().map(|l| l.controller()).collect::<Vec<_>>();
        let versions: Vec<_> =
            self.hierarchies.iter().map(|h| (h.version, h.limits.clone())).collect();
        if let Some(refusal) = &self.refusal {
            tracing::warn!("process guests are refused: {refusal}");
        } else if missing.is_empty() {
            tracing::info!(?versions, "process guest limits enforced: memory, pids, cpu");
        } else {
            tracing::warn!(enforced = ?names(&enforced), not_enforced = ?names(&missing), ?versions,
                "some process guest limits are not enforced on this host");
        }
    }

    /// A limited cgroup for one instance, or `None` (logged) when it cannot be made.
    pub fn create(&self, instance_id: &InstanceId, share: Share) -> Option<InstanceCgroup> {
        if self.hierarchies.is_empty() {
            return None;
        }
        let mut dirs = Vec::new();
        for hierarchy in &self.hierarchies {
            let dir = hierarchy.parent.join(instance_id.as_str());
            match create_dir(hierarchy, &dir, share, self.pids_max) {
                Ok(open) => dirs.push(open),
                Err(error) => {
                    tracing::warn!(%instance_id, dir = %dir.display(), %error,
                        "cannot create the workload's cgroup; it runs without this limit");
                    let _ = std::fs::remove_dir(&dir);
                }
            }
        }
        InstanceCgroup::of(self.os, dirs)
    }
}

/// (version, mount point, super options) of every cgroup mount in `mountinfo`.
fn cgroup_mounts(mountinfo: &str) -> Vec<(Version, PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount = before.split_whitespace().nth(4)?;
            let mut fields = after.split_whitespace();
            let version = match fields.next()? {
                "cgroup2" => Version::V2,
                "cgroup" => Version::V1,
                _ => return None,
            };
            let options = fields.nth(1).unwrap_or_default().to_owned();
            Some((version, PathBuf::from(mount.replace("\\040", " ")), options))
        })
        .collect()
}

/// Prepares `<mount>/gpuspot` when the hierarchy carries limits; `None` when it carries none.
fn prepare(version: Version, mount: &Path, options: &str) -> Result<Option<Hierarchy>, String> {
    let available = match version {
        Version::V1 => options.split(',').map(str::to_owned).collect::<Vec<_>>(),
        Version::V2 => std::fs::read_to_string(mount.join("cgroup.controllers"))
            .map_err(|e| format!("cannot read {} ({e})", mount.display()))?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let limits: Vec<Limit> =
        Limit::ALL.into_iter().filter(|l| available.iter().any(|c| c == l.controller())).collect();
    if limits.is_empty() {
        return Ok(None);
    }
    let parent = mount.join("gpuspot");
    if version == Version::V2 {
        enable_controllers(mount, &limits)?;
    }
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {} ({e})", parent.display())),
    }
    if version == Version::V2 {
        enable_controllers(&parent, &limits)?;
    }
    remove_stale(&parent);
    Ok(Some(Hierarchy { version, parent, limits }))
}

/// Children of a v2 `dir` only get limits once `dir` delegates those controllers.
fn enable_controllers(dir: &Path, limits: &[Limit]) -> Result<(), String> {
    let path = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let missing: Vec<String> = limits
        .iter()
        .filter(|l| !current.split_whitespace().any(|e| e == l.controller()))
        .map(|l| format!("+{}", l.controller()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::write(&path, missing.join(" "))
        .map_err(|e| format!("cannot enable {} in {} ({e})", missing.join(" "), path.display()))
}

/// Makes (or reuses: left by an agent that died mid-cleanup) `dir` and writes its limits.
fn create_dir(
    hierarchy: &Hierarchy,
    dir: &Path,
    share: Share,
    pids_max: u64,
) -> std::io::Result<CgroupDir> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for limit in &hierarchy.limits {
        for (file, value) in limit_files(hierarchy.version, *limit, share, pids_max) {
            let path = dir.join(file);
            // The swap files exist only where the kernel accounts swap; where they do not,
            // a v1 cgroup at least does not swap (swappiness 0).
            if OPTIONAL_FILES.contains(&file) && !path.exists() {
                continue;
            }
            std::fs::write(&path, value)?;
        }
    }
    CgroupDir::open(hierarchy.version, dir)
}

/// Removes the empty instance cgroups under `parent` older than [`STALE_AFTER`] (rmdir
/// refuses any that still has a process).
fn remove_stale(parent: &Path) {
    let entries = std::fs::read_dir(parent).into_iter().flatten().flatten();
    for dir in entries.map(|e| e.path()).filter(|p| p.is_dir()) {
        let old = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if old && members(&dir).is_empty() && std::fs::remove_dir(&dir).is_ok() {
            tracing::info!(dir = %dir.display(), "removed a workload cgroup left by an earlier agent");
        }
    }
}

#[cfg(test)]
mod tests;
