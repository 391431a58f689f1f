//! The command line, declared with clap derive: global options and one subcommand tree per
//! API noun (docs/contracts.md#commands: `gpuspot <noun> <verb> …`).

mod accounts;
mod deployments;
mod fleet;
mod instances;
mod shared;

pub use accounts::{AccountsCmd, Limit, QuotaArgs};
pub use deployments::{
    DeploymentCreateArgs, DeploymentUpdateArgs, DeploymentsCmd, Mode, ScalingArgs,
};
pub use fleet::{HostsArgs, HostsCmd, PoolsArgs, PoolsCmd};
pub use instances::{ExecArgs, InstanceCreateArgs, InstancesCmd, OnUnavailable};
pub use shared::{GuestArgs, ListFilter, ResourceArgs, WaitArgs, WorkloadArgs};

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

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep reading (reconnecting with Last-Event-ID when the connection drops).
    #[arg(long, short)]
    pub follow: bool,
}
