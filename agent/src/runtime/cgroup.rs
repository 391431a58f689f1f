//! cgroup v2 limits for workloads: `<mount>/gpuspot/<instance>` with `cpu.max` and
//! `memory.max` from the instance's share of the host. Limits are best effort: where the host
//! has no usable cgroup v2 hierarchy (v1 only, no permission, a container) workloads run
//! unconfined and the agent says so once, never failing a workload over it.

use gpuspot_common::InstanceId;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

const DEFAULT_MOUNT: &str = "/sys/fs/cgroup";
const CPU_PERIOD_US: u64 = 100_000;
const GIB: u64 = 1 << 30;
/// How long removal waits for the cgroup's last processes to be gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

static UNAVAILABLE_LOGGED: Once = Once::new();

/// Where instance cgroups go, or `None` when limits cannot be enforced on this host.
#[derive(Clone, Debug)]
pub struct Cgroups {
    parent: Option<PathBuf>,
}

impl Cgroups {
    /// Probes `/sys/fs/cgroup`.
    pub fn detect() -> Self {
        Self::at(Path::new(DEFAULT_MOUNT))
    }

    /// Probes a cgroup v2 hierarchy mounted at `mount`, preparing `<mount>/gpuspot`.
    pub fn at(mount: &Path) -> Self {
        match prepare(mount) {
            Ok(parent) => Self { parent: Some(parent) },
            Err(reason) => {
                UNAVAILABLE_LOGGED.call_once(|| {
                    tracing::info!(
                        "workload CPU and memory limits are not enforced on this host: {reason}"
                    );
                });
                Self::disabled()
            }
        }
    }

    pub fn disabled() -> Self {
        Self { parent: None }
    }

    pub fn enforced(&self) -> bool {
        self.parent.is_some()
    }

    /// A limited cgroup for one instance, or `None` (logged) when it cannot be made.
    pub fn create(
        &self,
        instance_id: &InstanceId,
        cpu_cores: u32,
        memory_gib: u64,
    ) -> Option<InstanceCgroup> {
        let dir = self.parent.as_ref()?.join(instance_id.as_str());
        match InstanceCgroup::create(&dir, cpu_cores, memory_gib) {
            Ok(cgroup) => Some(cgroup),
            Err(error) => {
                tracing::warn!(%instance_id, dir = %dir.display(), %error,
                    "cannot create the workload's cgroup; it runs without limits");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }
}

fn prepare(mount: &Path) -> Result<PathBuf, String> {
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
        .map_err(|e| format!("no cgroup v2 hierarchy at {} ({e})", mount.display()))?;
    for wanted in ["cpu", "memory"] {
        if !controllers.split_whitespace().any(|c| c == wanted) {
            return Err(format!("the cgroup v2 `{wanted}` controller is not available"));
        }
    }
    enable_controllers(mount)?;
    let parent = mount.join("gpuspot");
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {} ({e})", parent.display())),
    }
    enable_controllers(&parent)?;
    Ok(parent)
}

/// Children of `dir` can only get cpu/memory limits once `dir` delegates those controllers.
fn enable_controllers(dir: &Path) -> Result<(), String> {
    let path = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let enabled = |c: &str| current.split_whitespace().any(|e| e == c);
    if enabled("cpu") && enabled("memory") {
        return Ok(());
    }
    std::fs::write(&path, "+cpu +memory")
        .map_err(|e| format!("cannot enable cpu and memory in {} ({e})", path.display()))
}

/// One instance's cgroup. The workload joins it before `exec` by writing "0" to the
/// `cgroup.procs` file held open here, so none of its processes ever runs unconfined.
#[derive(Debug)]
pub struct InstanceCgroup {
    dir: PathBuf,
    procs: File,
}

impl InstanceCgroup {
    fn create(dir: &Path, cpu_cores: u32, memory_gib: u64) -> std::io::Result<Self> {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            // Left over from an agent that died mid-cleanup: reuse it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::write(dir.join("cpu.max"), cpu_max(cpu_cores))?;
        std::fs::write(dir.join("memory.max"), memory_max(memory_gib))?;
        let procs = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("cgroup.procs"))?;
        Ok(Self { dir: dir.to_owned(), procs })
    }

    /// The cgroup an earlier agent process made for a workload it left running; `None`
    /// when it is gone.
    pub fn open(dir: &Path) -> Option<Self> {
        let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs")).ok()?;
        Some(Self { dir: dir.to_owned(), procs })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For the child's `pre_exec`; valid as long as `self` lives.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// SIGKILLs every process in the cgroup, including ones that left the process group
    /// (kernels without `cgroup.kill`, before 5.14, rely on the process-group kill alone).
    pub fn kill_all(&self) {
        if let Ok(mut file) = OpenOptions::new().write(true).open(self.dir.join("cgroup.kill")) {
            let _ = file.write_all(b"1");
        }
    }

    /// Waits (bounded) for the cgroup to empty, then removes it.
    pub async fn remove(self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(error) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove workload cgroup");
        }
    }

    fn is_empty(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|procs| procs.trim().is_empty())
            .unwrap_or(true)
    }
}

fn cpu_max(cores: u32) -> String {
    if cores == 0 {
        return format!("max {CPU_PERIOD_US}");
    }
    format!("{} {CPU_PERIOD_US}", u64::from(cores) * CPU_PERIOD_US)
}

fn memory_max(gib: u64) -> String {
    if gib == 0 {
        return "max".into();
    }
    gib.saturating_mul(GIB).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_mount(controllers: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        if !controllers.is_empty() {
            std::fs::write(dir.path().join("cgroup.controllers"), controllers).expect("write");
        }
        dir
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).expect("read")
    }

    #[test]
    fn no_v2_hierarchy_or_missing_controller_means_not_enforced() {
        assert!(!Cgroups::at(fake_mount("").path()).enforced());
        assert!(!Cgroups::at(fake_mount("cpuset cpu io pids").path()).enforced());
        let disabled = Cgroups::disabled();
        assert!(disabled.create(&InstanceId::from("i-1"), 4, 8).is_none());
    }

    #[test]
    fn limits_are_written_from_the_instance_share() {
        let mount = fake_mount("cpuset cpu io memory pids\n");
        let cgroups = Cgroups::at(mount.path());
        assert!(cgroups.enforced());
        assert_eq!(read(mount.path().join("cgroup.subtree_control")), "+cpu +memory");
        let parent = mount.path().join("gpuspot");
        assert_eq!(read(parent.join("cgroup.subtree_control")), "+cpu +memory");

        let cgroup = cgroups.create(&InstanceId::from("i-abc"), 16, 90).expect("cgroup");
        assert_eq!(cgroup.dir(), parent.join("i-abc"));
        assert_eq!(read(cgroup.dir().join("cpu.max")), "1600000 100000");
        assert_eq!(read(cgroup.dir().join("memory.max")), (90u64 << 30).to_string());
        assert!(cgroup.procs_fd() >= 0);
    }

    #[test]
    fn zero_shares_mean_no_limit() {
        assert_eq!(cpu_max(0), "max 100000");
        assert_eq!(memory_max(0), "max");
        assert_eq!(cpu_max(1), "100000 100000");
    }
}
