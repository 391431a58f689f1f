//! `gpuspot deployments …` arguments: the verbs, and a deployment request from flags or a
//! file.

use super::{ListFilter, ResourceArgs, WaitArgs, WorkloadArgs};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DeploymentsCmd {
    /// Create a deployment from --file or from flags.
    #[command(mut_arg("wait", |a| a.help(
        "Wait until it runs (a replica set: with every replica ready), printing each change \
         on stderr; exits 1 if it ends first"
    )))]
    Create(Box<DeploymentCreateArgs>),
    /// List deployments (deleted and finished ones only with --all or --state).
    #[command(alias = "ls")]
    List(ListFilter),
    /// Show one deployment and its instances (by name or id).
    Show { id: String },
    /// Set a replica set's replica count.
    Scale { id: String, replicas: u32 },
    /// Change a deployment: its specs, replica count, autoscaling or schedule (by name or
    /// id). Instances that no longer match new specs are replaced.
    Update(Box<DeploymentUpdateArgs>),
    /// Move replicas that fell back to regular back to spot.
    Rebuild { id: String },
    /// Delete deployments (by name or id) and terminate their instances.
    #[command(alias = "rm", mut_arg("wait", |a| a.help(
        "Wait until each one's instances have ended, printing each change on stderr"
    )))]
    Delete {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// A replica set's replicas: address, ready, draining.
    Endpoints { id: String },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replicaset,
    Job,
    Container,
}

#[derive(Args, Debug, Clone)]
pub struct DeploymentCreateArgs {
    /// The deployment request as TOML or JSON (by extension).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "name", "mode", "replicas", "completions", "parallelism", "retry_limit", "specs",
        "env", "snapshot", "restore_from", "command", "cpu", "cpu_min", "cpu_max", "memory_gib",
        "memory_gib_min", "memory_gib_max", "image", "data_disk_gib", "ports", "readiness",
        "autoscale", "target_rps", "target_gpu", "scale_in_delay", "schedule",
    ])]
    pub file: Option<PathBuf>,
    /// Deployment name.
    #[arg(long)]
    pub name: Option<String>,
    /// replicaset (default), job or container.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Replicas to keep running (replicaset).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Successful completions needed (job).
    #[arg(long)]
    pub completions: Option<u32>,
    /// Runs at once (job).
    #[arg(long)]
    pub parallelism: Option<u32>,
    /// Failed runs allowed (job).
    #[arg(long)]
    pub retry_limit: Option<u32>,
    /// BILLING:MODELS:COUNT[:MAX_PRICE], e.g. spot:H100|A100:1:1.20; repeat, in preference order.
    #[arg(long = "spec", value_name = "SPEC")]
    pub specs: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// The command to run, after `--` (with --image: replaces the image's CMD).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A replica set's autoscaling and schedule, at creation or in an update.
#[derive(Args, Debug, Clone, Default)]
pub struct ScalingArgs {
    /// Autoscale the replica set between MIN and MAX replicas (with --target-rps/--target-gpu).
    #[arg(long, value_name = "MIN:MAX")]
    pub autoscale: Option<String>,
    /// Autoscaling target: requests per second per replica, through the gateway.
    #[arg(long, value_name = "RPS", requires = "autoscale")]
    pub target_rps: Option<f64>,
    /// Autoscaling target: GPU utilisation per replica, percent.
    #[arg(long, value_name = "PERCENT", requires = "autoscale")]
    pub target_gpu: Option<u32>,
    /// How long fewer replicas must be wanted before scaling in, e.g. 5m (default).
    #[arg(long, value_name = "DURATION", requires = "autoscale")]
    pub scale_in_delay: Option<String>,
    /// A scheduled minimum, CRON=N in UTC (e.g. '0 9 * * 1-5=4'); repeatable.
    #[arg(long = "schedule", value_name = "CRON=N")]
    pub schedule: Vec<String>,
}

/// `gpuspot deployments update NAME …`: what is given replaces what the deployment has.
#[derive(Args, Debug, Clone)]
pub struct DeploymentUpdateArgs {
    pub id: String,
    /// Replicas to keep running (replicaset; autoscaling keeps it within its bounds).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// New specs, BILLING:MODELS:COUNT[:MAX_PRICE] in preference order, replacing all the
    /// old ones (with --cpu/--memory-gib applied to each).
    #[arg(long = "spec", value_name = "SPEC")]
    pub specs: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    /// Turn autoscaling off (the replica count stays where it is).
    #[arg(long, conflicts_with = "autoscale")]
    pub no_autoscale: bool,
    /// Remove every scheduled minimum.
    #[arg(long, conflicts_with = "schedule")]
    pub clear_schedule: bool,
}
