//! The field rules behind [`super`]: each checks one part of a body, adds what is wrong to
//! the problems (naming the field under `at`, the prefix of where the part sits: `""`,
//! `"specs[1]."`, `"template."`) and returns the best value it can, so that checking goes
//! on and every problem is found in one pass.

use super::bounds::{self, quoted};
use super::{BillingBody, DeploymentBody, GpuBody, Problems, SpecBody, TemplateBody};
use crate::core::autoscale::{self, Autoscaling, ScheduledMinimum};
use crate::core::deployment::{DeploymentSpec, Mode, Template};
use crate::core::guest::{self, DEFAULT_DATA_DISK_GIB};
use crate::core::model::{Billing, GpuRequest, OnUnavailable, Range, SnapshotOptions};
use crate::core::placement::models::normalise;
use crate::core::serving::{self, Readiness};
use gpuspot_api as api;
use gpuspot_common::Money;
use serde_json::Value;

/// Most replicas, or parallel runs of a job, one deployment may ask for.
pub const MAX_REPLICAS: u32 = 10_000;

/// The longest an autoscaler waits before scaling in.
const MAX_SCALE_IN_DELAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Where and how an instance may run: GPUs, core and memory ranges, billing.
pub fn spec(at: &str, body: &SpecBody, problems: &mut Problems) -> DeploymentSpec {
    DeploymentSpec {
        gpu: gpu(at, &body.gpu, problems),
        cpu_cores: range(at, "cpu_cores", body.cpu_cores, problems),
        memory_gib: range(at, "memory_gib", body.memory_gib, problems),
        billing: billing(at, body.billing.as_ref(), problems),
    }
}

/// What an instance runs: image or process, data disk, command, env, snapshots.
pub fn template(at: &str, body: TemplateBody, problems: &mut Problems) -> Template {
    let image = image(at, body.image.as_ref(), problems);
    let data_disk_gib = data_disk(at, body.data_disk_gib.as_ref(), problems);
    command(at, &body.command, image.as_deref(), problems);
    bounds::command(at, &body.command, problems);
    bounds::env(at, &body.env, problems);
    let snapshot = body.snapshot.map(snapshot_options).unwrap_or_default();
    bounds::snapshot_id(at, snapshot.restore_from.as_deref(), problems);
    let ports = ports(at, body.ports.as_ref(), image.is_some(), problems);
    let readiness = readiness(at, body.readiness.as_ref(), problems);
    Template {
        command: body.command,
        env: body.env,
        snapshot,
        image,
        data_disk_gib,
        ports,
        readiness,
    }
}

fn snapshot_options(options: api::SnapshotOptions) -> SnapshotOptions {
    SnapshotOptions { enabled: options.enabled, restore_from: options.restore_from }
}

/// A container's ports, a list of numbers (docs/contracts.md#serving).
fn ports(at: &str, value: Option<&Value>, has_image: bool, problems: &mut Problems) -> Vec<u16> {
    let field = format!("{at}ports");
    let Some(value) = value.filter(|v| !v.is_null()) else { return Vec::new() };
    let Ok(ports) = serde_json::from_value::<Vec<u16>>(value.clone()) else {
        problems.add(format!("{field} must be a list of port numbers, e.g. [8000]"));
        return Vec::new();
    };
    if let Err(problem) = serving::check_ports(&field, &ports, has_image) {
        problems.add(problem);
    }
    ports
}

/// `{"http_path": "/healthz", "interval": "2s"}`; unknown fields are refused by name.
fn readiness(at: &str, value: Option<&Value>, problems: &mut Problems) -> Option<Readiness> {
    let field = format!("{at}readiness");
    let value = value.filter(|v| !v.is_null())?;
    match serde_json::from_value::<Readiness>(value.clone()) {
        Ok(probe) => {
            if let Err(problem) = serving::check_readiness(&field, &probe) {
                problems.add(problem);
            }
            Some(probe)
        }
        Err(e) => {
            problems.add(format!("{field}: {e} (e.g. {{\"http_path\": \"/healthz\"}})"));
            None
        }
    }
}

fn gpu(at: &str, body: &GpuBody, problems: &mut Problems) -> GpuRequest {
    let count = body.count.unwrap_or(1);
    if count == 0 {
        problems.add(format!("{at}gpu.count must be at least 1"));
    }
    if !bounds::models(at, &body.models, problems) {
        return GpuRequest { models: Vec::new(), count };
    }
    if body.models.is_empty() || body.models.iter().any(|m| m.trim().is_empty()) {
        problems.add(format!("{at}gpu.models must list at least one GPU model, e.g. [\"H100\"]"));
    }
    GpuRequest { models: normalise(&body.models), count }
}

fn range(at: &str, name: &str, range: Option<api::Range>, problems: &mut Problems) -> Range {
    let range = range.map(|r| Range { min: r.min, max: r.max }).unwrap_or_default();
    if !range.is_valid() {
        problems.add(format!("{at}{name}.min must not exceed {at}{name}.max"));
    }
    range
}

/// Regular unless it says spot with a positive bid per GPU-hour.
fn billing(at: &str, body: Option<&BillingBody>, problems: &mut Problems) -> Billing {
    let Some(body) = body else {
        return Billing::Regular;
    };
    let price = format!("{at}billing.max_price");
    let problem = match (body.mode.as_str(), &body.max_price) {
        ("regular", None) => return Billing::Regular,
        ("regular", Some(_)) => format!("{price} is only for spot instances"),
        ("spot", Some(text)) => match text.parse::<Money>() {
            Ok(max_price) if max_price.micros() > 0 => return Billing::Spot { max_price },
            Ok(_) => format!("{price} must be positive"),
            Err(e) => format!("{price}: {e}"),
        },
        ("spot", None) => format!("spot billing needs {price} (your bid per GPU-hour)"),
        (other, _) => {
            format!("{at}billing.mode must be \"spot\" or \"regular\", not {}", quoted(other))
        }
    };
    problems.add(problem);
    Billing::Regular
}

/// A container image reference, or `None` for a process guest.
fn image(at: &str, image: Option<&Value>, problems: &mut Problems) -> Option<String> {
    match image {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            if let Err(problem) = guest::check_image(&format!("{at}image"), name) {
                problems.add(problem);
            }
            Some(name.clone())
        }
        Some(_) => {
            problems.add(format!("{at}image must be a string naming an OCI image"));
            None
        }
    }
}

fn data_disk(at: &str, gib: Option<&Value>, problems: &mut Problems) -> u64 {
    let field = format!("{at}data_disk_gib");
    let Some(value) = gib.filter(|v| !v.is_null()) else {
        return DEFAULT_DATA_DISK_GIB;
    };
    match value.as_u64() {
        Some(gib) => {
            if let Err(problem) = guest::check_data_disk(&field, gib) {
                problems.add(problem);
            }
            gib
        }
        None => {
            problems.add(format!("{field} must be a whole number of GiB, 1 to 50"));
            DEFAULT_DATA_DISK_GIB
        }
    }
}

/// What a request does when nothing can take it at once: queue (the default) or fail.
pub fn on_unavailable(value: Option<&Value>, problems: &mut Problems) -> OnUnavailable {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return OnUnavailable::Queue;
    };
    match value.as_str().and_then(OnUnavailable::parse) {
        Some(choice) => choice,
        None => {
            let value = quoted(&value.to_string());
            problems.add(format!("on_unavailable must be \"queue\" or \"fail\", not {value}"));
            OnUnavailable::Queue
        }
    }
}

/// Without an image the command is what runs, so it must name a program; with one it may
/// be left out (the image's CMD runs).
fn command(at: &str, command: &[String], image: Option<&str>, problems: &mut Problems) {
    let unnamed = command.first().is_none_or(|c| c.trim().is_empty());
    match (image, command.is_empty()) {
        (Some(_), false) if unnamed => {
            problems.add(format!("{at}command[0] must name a program to run"));
        }
        (None, _) if unnamed => problems.add(format!(
            "{at}command must name a program to run (or give an image whose CMD runs)"
        )),
        _ => {}
    }
}

/// A replica set's `autoscaling` and `schedule` (docs/contracts.md#serving); other modes have
/// neither.
pub fn scaling(
    mode: Mode,
    autoscaling: Option<&Value>,
    schedule: Option<&Value>,
    problems: &mut Problems,
) -> (Option<Autoscaling>, Vec<ScheduledMinimum>) {
    let autoscaling = autoscaling.filter(|v| !v.is_null());
    let schedule = schedule.filter(|v| !v.is_null());
    if mode != Mode::Replicaset && (autoscaling.is_some() || schedule.is_some()) {
        problems.add("autoscaling and schedule are for replica sets (mode replicaset)");
        return (None, Vec::new());
    }
    let policy = autoscaling.and_then(|value| {
        serde_json::from_value::<Autoscaling>(value.clone())
            .map_err(|e| problems.add(format!("autoscaling: {e}")))
            .ok()
    });
    let entries = schedule.map_or_else(Vec::new, |value| {
        serde_json::from_value::<Vec<ScheduledMinimum>>(value.clone()).unwrap_or_else(|e| {
            problems.add(format!(
                "schedule: {e} (e.g. [{{\"cron\": \"0 9 * * 1-5\", \"min_replicas\": 4}}])"
            ));
            Vec::new()
        })
    });
    let crons: Vec<&str> = entries.iter().map(|e| e.cron.as_str()).collect();
    let entries = if bounds::schedule(&crons, problems) { entries } else { Vec::new() };
    replica_bounds(policy.as_ref(), &entries, problems);
    for problem in autoscale::check(policy.as_ref(), &entries) {
        problems.add(problem);
    }
    (policy, entries)
}

/// Autoscaling and a schedule set the replica count too: they are held to the bound
/// `replicas` has, or a PATCH of them would pass it. The scale-in delay is bounded too: one
/// past what a clock holds read as none at all.
fn replica_bounds(
    policy: Option<&Autoscaling>,
    entries: &[ScheduledMinimum],
    problems: &mut Problems,
) {
    if policy.is_some_and(|p| p.max_replicas > MAX_REPLICAS) {
        problems.add(format!("autoscaling.max_replicas must be at most {MAX_REPLICAS}"));
    }
    if policy.is_some_and(|p| p.scale_in_delay > MAX_SCALE_IN_DELAY) {
        problems.add("autoscaling.scale_in_delay must be at most 24h");
    }
    for (i, _) in entries.iter().enumerate().filter(|(_, e)| e.min_replicas > MAX_REPLICAS) {
        problems.add(format!("schedule[{i}].min_replicas must be at most {MAX_REPLICAS}"));
    }
}

/// A deployment name is one segment of the gateway's `/d/{name}/…`: up to 63 of letters,
/// digits, `-`, `_` and `.`, not starting with `.` (a `/`, a space or `..` would make it
/// unreachable there) nor ending with one (`web.` would read as `web` to anyone who treats
/// it as a host name); empty is no name (the id serves as one). Case does not tell names
/// apart: the cluster keeps them unique whatever their case.
pub fn deployment_name(name: &str, problems: &mut Problems) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let dotted = name.starts_with('.') || name.ends_with('.');
    if name.len() > bounds::MAX_NAME_CHARS || !name.chars().all(allowed) || dotted {
        problems.add(format!(
            "name: at most {} letters, digits, '-', '_' or '.' (not first or last), not {}",
            bounds::MAX_NAME_CHARS,
            quoted(name)
        ));
    }
}

/// A deployment's mode; a bad one is reported and checked on as a container, whose counts
/// raise no problems of their own.
pub fn mode(mode: &str, problems: &mut Problems) -> Mode {
    match mode {
        "replicaset" => Mode::Replicaset,
        "job" => Mode::Job,
        "container" => Mode::Container,
        other => {
            problems
                .add(format!("mode must be replicaset, job or container, not {}", quoted(other)));
            Mode::Container
        }
    }
}

/// The counts a mode uses; those of other modes are zero.
pub struct Counts {
    pub replicas: u32,
    pub completions: u32,
    pub parallelism: u32,
    pub retry_limit: u32,
}

/// A job's completions: each is an instance the coordinator makes, records and reports,
/// so one request may not ask for an endless stream of them.
pub const MAX_COMPLETIONS: u32 = 10_000;
/// A job's retries: failed runs are restarted at once, so this bounds the churn of a job
/// that fails at start.
pub const MAX_RETRY_LIMIT: u32 = 100;

/// A job needs at least one completion and run at a time; no deployment more than
/// [`MAX_REPLICAS`] at once, [`MAX_COMPLETIONS`] in all or [`MAX_RETRY_LIMIT`] retries.
pub fn counts(mode: Mode, body: &DeploymentBody, problems: &mut Problems) -> Counts {
    let counts = counts_of(mode, body);
    if mode == Mode::Job {
        for (name, value) in
            [("completions", counts.completions), ("parallelism", counts.parallelism)]
        {
            if value == 0 {
                problems.add(format!("{name} must be at least 1 for a job"));
            }
        }
    }
    for (name, value, max) in [
        ("replicas", counts.replicas, MAX_REPLICAS),
        ("parallelism", counts.parallelism, MAX_REPLICAS),
        ("completions", counts.completions, MAX_COMPLETIONS),
        ("retry_limit", counts.retry_limit, MAX_RETRY_LIMIT),
    ] {
        if value > max {
            problems.add(format!("{name} must be at most {max}"));
        }
    }
    counts
}

fn counts_of(mode: Mode, body: &DeploymentBody) -> Counts {
    match mode {
        Mode::Replicaset => Counts {
            replicas: body.replicas.unwrap_or(1),
            completions: 0,
            parallelism: 0,
            retry_limit: 0,
        },
        Mode::Job => Counts {
            replicas: 0,
            completions: body.completions.unwrap_or(1),
            parallelism: body.parallelism.unwrap_or(1),
            retry_limit: body.retry_limit.unwrap_or(3),
        },
        Mode::Container => Counts {
            replicas: 0,
            completions: 1,
            parallelism: 1,
            retry_limit: body.retry_limit.unwrap_or(0),
        },
    }
}
