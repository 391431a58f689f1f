//! What each limit writes, on cgroup v2 or v1: the files and values for one instance's
//! share of the host (pure: tested without any cgroup mounted).

/// CFS period, µs: a quota of one core is one period per period.
pub(super) const CPU_PERIOD_US: u64 = 100_000;
const GIB: u64 = 1 << 30;

/// A limit a process guest gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Pids,
    Cpu,
}

impl Limit {
    pub(super) const ALL: [Limit; 3] = [Limit::Memory, Limit::Pids, Limit::Cpu];

    pub(super) fn controller(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Pids => "pids",
            Limit::Cpu => "cpu",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    V1,
    V2,
}

/// The limits of one instance, from its share of the host.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

/// Limit files a kernel may lack (swap accounting off): skipped, not an error.
pub(super) const OPTIONAL_FILES: [&str; 3] =
    ["memory.memsw.limit_in_bytes", "memory.swap.max", "memory.swappiness"];

/// What to write for `limit`, in order.
pub(super) fn limit_files(
    version: Version,
    limit: Limit,
    share: Share,
    pids_max: u64,
) -> Vec<(&'static str, String)> {
    let memory = (share.memory_gib > 0).then(|| share.memory_gib.saturating_mul(GIB));
    let quota = (share.cpu_cores > 0).then(|| u64::from(share.cpu_cores) * CPU_PERIOD_US);
    let or = |value: Option<u64>, none: &str| value.map_or(none.to_owned(), |v| v.to_string());
    match (version, limit) {
        (_, Limit::Pids) => vec![("pids.max", pids_max.to_string())],
        // No swap beyond the memory limit: a guest must not page the host's swap full.
        (Version::V2, Limit::Memory) => {
            vec![("memory.max", or(memory, "max")), ("memory.swap.max", "0".to_owned())]
        }
        (Version::V2, Limit::Cpu) => {
            vec![("cpu.max", format!("{} {CPU_PERIOD_US}", or(quota, "max")))]
        }
        (Version::V1, Limit::Memory) => vec![
            ("memory.limit_in_bytes", or(memory, "-1")),
            ("memory.memsw.limit_in_bytes", or(memory, "-1")),
            ("memory.swappiness", "0".to_owned()),
        ],
        (Version::V1, Limit::Cpu) => vec![
            ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
            ("cpu.cfs_quota_us", or(quota, "-1")),
        ],
    }
}
