//! `gpuspot hosts …` and `gpuspot pools …` arguments: the fleet (cordon, drain, faults) and
//! the market (pools and their price history).

use clap::{Args, Subcommand};

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
