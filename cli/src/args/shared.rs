//! The flag groups that instances and deployments share: list filters, CPU and memory
//! ranges, `--wait`, and the workload and guest a request runs.

use clap::Args;

/// Which items a list shows: by default everything that has not ended. The server filters
/// (`?state=`) and pages (`?limit=`, `?after=`); the CLI follows the pages.
#[derive(Args, Debug, Clone)]
pub struct ListFilter {
    /// Only items in this state (repeatable or comma-separated), e.g. queued, running,
    /// terminated.
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<String>,
    /// Ended ones too (terminated instances, deleted or finished deployments).
    #[arg(long, short)]
    pub all: bool,
    /// At most this many, oldest first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// How many to ask the server for per request (1 to 1000); every page is read.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chunk_size: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self { states: Vec::new(), all: false, limit: None, chunk_size: 500 }
    }
}

/// CPU and memory ranges, as `MIN-MAX` or separate bounds.
#[derive(Args, Debug, Default, Clone)]
pub struct ResourceArgs {
    /// CPU cores: MIN-MAX (16-64), MIN- , -MAX or an exact N.
    #[arg(long, value_name = "MIN-MAX", allow_hyphen_values = true,
        conflicts_with_all = ["cpu_min", "cpu_max"])]
    pub cpu: Option<String>,
    /// Lowest acceptable CPU core count.
    #[arg(long, value_name = "N")]
    pub cpu_min: Option<u64>,
    /// Highest acceptable CPU core count.
    #[arg(long, value_name = "N")]
    pub cpu_max: Option<u64>,
    /// Memory in GiB: MIN-MAX (64-512), MIN- , -MAX or an exact N.
    #[arg(long, value_name = "MIN-MAX", allow_hyphen_values = true,
        conflicts_with_all = ["memory_gib_min", "memory_gib_max"])]
    pub memory_gib: Option<String>,
    /// Lowest acceptable memory in GiB.
    #[arg(long, value_name = "N")]
    pub memory_gib_min: Option<u64>,
    /// Highest acceptable memory in GiB.
    #[arg(long, value_name = "N")]
    pub memory_gib_max: Option<u64>,
}

/// `--wait` and `--timeout`, the same on every command that can wait for what it asked.
#[derive(Args, Debug, Default, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until it is done, printing each state change with its reason on stderr.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after DURATION (e.g. 90s, 5m) and exit 1; what was asked for
    /// goes on.
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

/// What instances and deployments' templates share: the environment, snapshots, how the
/// guest runs and whose it is.
#[derive(Args, Debug, Default, Clone)]
pub struct WorkloadArgs {
    /// Environment variable for the workload; repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Snapshot the data directory when an instance stops.
    #[arg(long)]
    pub snapshot: bool,
    /// Start with the data directory of this snapshot (an id from `gpuspot snapshots`).
    #[arg(long, value_name = "SNAPSHOT")]
    pub restore_from: Option<String>,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Act for this account (admin token only).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
}

/// How the guest runs: in a container from an image, and its data disk.
#[derive(Args, Debug, Default, Clone)]
pub struct GuestArgs {
    /// Run in a container from this OCI image (on hosts that run containers).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Size of the data disk in GiB (1-50; default 50).
    #[arg(long, value_name = "GIB")]
    pub data_disk_gib: Option<u64>,
    /// A container port to publish on a host port (repeatable; with --image). A process
    /// guest always gets one host port, in $PORT.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Readiness probe: the HTTP path the agent GETs on the first port (2xx/3xx = ready).
    #[arg(long, value_name = "PATH")]
    pub readiness: Option<String>,
}
