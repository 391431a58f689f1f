//! The command line, declared with clap derive: global options and one subcommand tree per
//! API noun (docs/contracts.md#commands: `gpuspot <noun> <verb> …`).

mod accounts;
mod deployments;

pub use accounts::{AccountsCmd, Limit, QuotaArgs};
pub use deployments::{
    DeploymentCreateArgs, DeploymentUpdateArgs, DeploymentsCmd, Mode, ScalingArgs,
};

use crate::dev::DevArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// gpuspot: the command line of a spot GPU cloud.
#[derive(Parser)]
#[command(name = "gpuspot", version, propagate_version = true)]
pub struct Cli {
    /// Coordinator API URL.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "GPUSPOT_API",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,

    /// Bearer token (falls back to GPUSPOT_ADMIN_TOKEN).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "GPUSPOT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Output format: table, wide (a table with more columns) or json (what the API
    /// returned, pretty).
    #[arg(
        long,
        short = 'o',
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value_t = Output::Table
    )]
    pub output: Output,

    /// Same as `-o json`.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
}

/// The nouns; `Dev`'s options are declared by `dev.rs` (no `Debug` is asked of them).
#[derive(Subcommand)]
pub enum Command {
    /// Run a coordinator and simulated hosts in one process.
    Dev(DevArgs),
    /// Create, list, inspect and terminate instances.
    #[command(subcommand)]
    Instances(InstancesCmd),
    /// GPU hosts, their units and GPUs (admin).
    Hosts(HostsArgs),
    /// GPU pools: list and market prices, availability, price history.
    Pools(PoolsArgs),
    /// The event stream.
    Events(EventsArgs),
    /// Accounts, payments and the ledger.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// The token's account: name, id, balance, quota and usage (`admin` for the admin token).
    Whoami,
    /// Deployments: replica sets, jobs and containers.
    #[command(subcommand)]
    Deployments(DeploymentsCmd),
    /// Your inbox: notices of terminations, overdue payments and failed requests.
    Messages(MessagesArgs),
    /// Snapshots kept for instances and deployments.
    Snapshots(SnapshotsArgs),
    /// Print a shell completion script: `source <(gpuspot completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `gpuspot man | man -l -`; with --dir, write one page
    /// per command there (gpuspot.1, gpuspot-instances.1, gpuspot-instances-create.1, …).
    Man {
        /// Write every page into this directory (created if missing) instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Only the messages not yet read.
    #[arg(long)]
    pub unread: bool,
    /// Print each message's body too.
    #[arg(long, short)]
    pub long: bool,
    #[command(subcommand)]
    pub cmd: Option<MessagesCmd>,
}

#[derive(Subcommand, Debug)]
pub enum MessagesCmd {
    /// Show one message in full and mark it read.
    Read { id: String },
}

#[derive(Subcommand, Debug)]
pub enum InstancesCmd {
    /// Request an instance: `gpuspot instances create --gpu H100 -- python3 train.py`.
    #[command(mut_arg("wait", |a| a.help(
        "Wait until it runs, printing each state change with its reason on stderr; exits 1 \
         if it ends without running"
    )))]
    Create(Box<InstanceCreateArgs>),
    /// List instances (ended ones only with --all or --state).
    #[command(alias = "ls")]
    List(ListFilter),
    /// Show one instance (by name or id).
    Show { id: String },
    /// Terminate instances (by name or id).
    #[command(alias = "rm", mut_arg("wait", |a| a.help(
        "Wait until each has ended, printing each state change with its reason on stderr"
    )))]
    Delete {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Change an instance's name or environment (by name or id).
    Update {
        id: String,
        /// The new name.
        #[arg(long)]
        rename: Option<String>,
        /// Set an environment variable (repeatable); the environment given replaces the old
        /// one as a whole.
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Remove every environment variable.
        #[arg(long, conflicts_with = "env")]
        clear_env: bool,
    },
    /// Rehearse a reclaim (a drill): the instance (by name or id) gets a real termination
    /// notice with reason `drill`; its deployment replaces it and it stops at the deadline.
    Interrupt {
        id: String,
        /// The notice, e.g. 2m (1s to 24h); default: its pool's notice period.
        #[arg(long, value_name = "DUR")]
        notice: Option<String>,
    },
    /// Print an instance's output (by name or id).
    Logs {
        id: String,
        /// Keep printing new output until the instance is terminated.
        #[arg(long, short)]
        follow: bool,
    },
    /// Run a command inside a running instance: `gpuspot instances exec ID -- nvidia-smi`;
    /// `-t` (or no command: a shell) for an interactive session.
    Exec(ExecArgs),
}

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

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(subcommand)]
    pub cmd: Option<SnapshotsCmd>,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsCmd {
    /// List snapshots (the default).
    #[command(alias = "ls")]
    List,
    /// Show one snapshot.
    Show { id: String },
}

/// `gpuspot instances exec ID [-t] -- CMD…`
#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// Interactive: a terminal, with stdin, resizes and output streamed.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Seconds before a non-interactive command is killed (1-3600).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
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

#[derive(Args, Debug, Clone)]
pub struct InstanceCreateArgs {
    /// Instance name.
    #[arg(long)]
    pub name: Option<String>,
    /// Accepted GPU model (substring of the NVML name); repeat or give a comma list.
    #[arg(long = "gpu", value_name = "MODEL", value_delimiter = ',', required = true)]
    pub gpus: Vec<String>,
    /// Number of GPUs.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Spot billing (needs --max-price); regular billing otherwise.
    #[arg(long)]
    pub spot: bool,
    /// Spot bid: the most to pay per GPU-hour, e.g. 1.20.
    #[arg(long, value_name = "PRICE")]
    pub max_price: Option<String>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// When no host can take it now: queue (wait for capacity, the default) or fail (end at
    /// once, state failed, reason out_of_stock).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_unavailable: Option<OnUnavailable>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The command to run, after `--` (with --image: replaces the image's CMD).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `--on-unavailable`: what a request does when nothing can take it at once.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    Queue,
    Fail,
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

#[derive(Args, Debug)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub cmd: Option<HostsCmd>,
}

#[derive(Subcommand, Debug)]
pub enum HostsCmd {
    /// List hosts (the default).
    #[command(alias = "ls")]
    List,
    /// Show one host and its GPUs (by hostname or id).
    Show { id: String },
    /// Forget a host: its work is stopped (deployments replace it) and its agent refused.
    Delete { id: String },
    /// No new placements on the host (what runs there stays).
    Cordon { id: String },
    /// Let the host take placements again.
    Uncordon { id: String },
    /// Cordon the host and give everything on it a host_maintenance notice; deployments
    /// replace their instances elsewhere.
    Drain {
        id: String,
        /// Every instance ends by then at the latest, e.g. 10m (default: its own notice).
        #[arg(long, value_name = "DURATION")]
        deadline: Option<String>,
    },
    /// Make a simulated GPU fail with an Xid, as a real fault would: its unit leaves the
    /// market and the instance on it gets a gpu_fault notice (simulated hosts only).
    Fault {
        id: String,
        /// The GPU's index on the host.
        gpu: u32,
        /// The Xid code (a critical one: not 13, 31, 43, 45, 68 or 109).
        #[arg(long, default_value_t = 79)]
        xid: u32,
    },
    /// Put a failed GPU back on the market (once its agent reports it healthy).
    Clear {
        id: String,
        /// The GPU's index on the host.
        gpu: u32,
    },
}

#[derive(Args, Debug)]
pub struct PoolsArgs {
    #[command(subcommand)]
    pub cmd: Option<PoolsCmd>,
}

#[derive(Subcommand, Debug)]
pub enum PoolsCmd {
    /// List pools (the default).
    #[command(alias = "ls")]
    List,
    /// A pool's spot price history, with a chart.
    History {
        /// GPU model: the pool's name ("RTX 5090") or the NVML name ("NVIDIA GeForce RTX
        /// 5090").
        model: String,
        /// How many hours back.
        #[arg(long, default_value_t = 48)]
        hours: u32,
    },
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep reading (reconnecting with Last-Event-ID when the connection drops).
    #[arg(long, short)]
    pub follow: bool,
}
