//! `gpuspot instances …` arguments: the verbs, `create`'s request and `exec`.

use super::{ListFilter, ResourceArgs, WaitArgs, WorkloadArgs};
use clap::{Args, Subcommand, ValueEnum};

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
