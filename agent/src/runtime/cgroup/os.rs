//! What cgroups need of the kernel besides the files of a cgroup mount: the mount table
//! (where the hierarchies are) and signals to a cgroup's members. [`HostCgroups`] asks the
//! kernel; tests put a fake behind [`CgroupOs`] and plain directories for the mounts.

/// The kernel behind cgroups.
pub trait CgroupOs: Send + Sync + std::fmt::Debug + 'static {
    /// `/proc/self/mountinfo`, which says where each hierarchy is mounted.
    fn mountinfo(&self) -> String;
    /// SIGKILL to `pid` (a member of a cgroup, never 0, 1 or a group).
    fn kill(&self, pid: i32);
}

/// This host's kernel.
#[derive(Debug)]
pub struct HostCgroups;

const MOUNTINFO: &str = "/proc/self/mountinfo";

impl CgroupOs for HostCgroups {
    fn mountinfo(&self) -> String {
        std::fs::read_to_string(MOUNTINFO).unwrap_or_default()
    }

    fn kill(&self, pid: i32) {
        if pid > 1 {
            // SAFETY: kill has no memory-safety preconditions; pid > 1 (a member).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
