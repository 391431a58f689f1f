//! `gpuspot instances create|list|show|update|delete|logs` (and `exec`, in [`super::exec`]);
//! instances go by name or id (see [`super::lookup`]).

use super::wait::{self, Outcome, Status};
use super::{Ctx, lookup};
use crate::args::{InstanceCreateArgs, InstancesCmd, ListFilter, WaitArgs};
use crate::client::{Answer, encode_segment};
use crate::output::{Table, cell, opt, record, time};
use crate::request::instance_request;
use gpuspot_api::{Billing, GpuAsk, Host, Instance, InstanceState};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// The order `show` prints an instance's fields in (the rest follow, sorted).
const SHOW_ORDER: &[&str] = &[
    "id",
    "name",
    "state",
    "reason",
    "account_id",
    "deployment_id",
    "spec_index",
    "host_id",
    "gpu",
    "gpu_model",
    "gpu_uuids",
    "cpu_cores",
    "memory_gib",
    "billing",
    "price",
    "image",
    "data_disk_gib",
    "hold_until",
    "termination_time",
    "termination_reason",
    "exit_code",
    "created_at",
    "started_at",
    "ended_at",
];

pub fn run(ctx: &Ctx, cmd: InstancesCmd) -> anyhow::Result<()> {
    match cmd {
        InstancesCmd::Create(args) => create(ctx, &args),
        InstancesCmd::List(filter) => list(ctx, &filter),
        InstancesCmd::Show { id } => show(ctx, &lookup::instance_id(ctx, &id)?),
        InstancesCmd::Delete { ids, wait } => {
            ids.iter().try_for_each(|id| delete(ctx, &lookup::instance_id(ctx, id)?, &wait))
        }
        InstancesCmd::Update { id, rename, env, clear_env } => {
            let body = change_body(rename, &env, clear_env)?;
            let changed = ctx.client.patch(&path(&lookup::instance_id(ctx, &id)?), &body)?;
            ctx.show(&changed, |i| print!("{}", readable(i)))
        }
        InstancesCmd::Interrupt { id, notice } => {
            super::interrupt::run(ctx, &id, notice.as_deref())
        }
        InstancesCmd::Logs { id, follow } => logs(ctx, &lookup::instance_id(ctx, &id)?, follow),
        InstancesCmd::Exec(mut args) => {
            args.id = lookup::instance_id(ctx, &args.id)?;
            super::exec::run(ctx, &args)
        }
    }
}

fn path(id: &str) -> String {
    format!("/v1/instances/{}", encode_segment(id))
}

fn create(ctx: &Ctx, args: &InstanceCreateArgs) -> anyhow::Result<()> {
    let body = instance_request(args)?;
    let mut created: Answer<Instance> = ctx.client.post("/v1/instances", &body)?;
    let id = created.body.id.to_string();
    if args.wait.wait {
        created = wait_for(ctx, &args.wait, &id, Goal::Running)?;
    }
    ctx.show(&created, |i| println!("{}", summary(i)))?;
    let instance = &created.body;
    if args.wait.wait && instance.state.is_final() && !ran(instance) {
        anyhow::bail!("{id} ended without running: {}", opt(instance.reason.as_deref()));
    }
    Ok(())
}

/// Whether the instance's workload started: one that ended between two looks still ran
/// (a short command may end before `--wait` first sees it running).
fn ran(instance: &Instance) -> bool {
    instance.started_at.is_some()
}

/// What an instance's `--wait` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Running,
    Ended,
}

/// Waits (see [`wait::until`]) until instance `id` reaches `goal` or ends; the last answer.
fn wait_for(ctx: &Ctx, args: &WaitArgs, id: &str, goal: Goal) -> anyhow::Result<Answer<Instance>> {
    let hostnames = hostnames(ctx);
    let what = match goal {
        Goal::Running => format!("{id} to run"),
        Goal::Ended => format!("{id} to end"),
    };
    wait::until(args, &what, || {
        let answer: Answer<Instance> = ctx.client.get(&path(id))?;
        let instance = &answer.body;
        let outcome = match (instance.state.is_final(), instance.state) {
            (true, _) if goal == Goal::Ended || ran(instance) => Outcome::Reached,
            (true, _) => Outcome::Ended,
            (false, InstanceState::Running) if goal == Goal::Running => Outcome::Reached,
            _ => Outcome::Pending,
        };
        let line = wait::instance_line(instance, &hostnames);
        Ok((answer, Status { line, outcome }))
    })
}

/// `ID STATE` and, when there is one, the reason in parentheses.
fn summary(instance: &Instance) -> String {
    let line = format!("{} {}", cell(&instance.id), instance.state);
    match instance.reason.as_deref() {
        Some(reason) if !reason.is_empty() => format!("{line} ({reason})"),
        _ => line,
    }
}

fn list(ctx: &Ctx, filter: &ListFilter) -> anyhow::Result<()> {
    let shown = lookup::INSTANCE.list::<Instance>(ctx, filter)?;
    ctx.show(&shown, |instances| {
        let hostnames = hostnames(ctx);
        table(instances, &hostnames, ctx.wide()).print()
    })
}

/// Host id → hostname, when the caller may list hosts (the admin); empty otherwise, and the
/// tables show host ids.
pub fn hostnames(ctx: &Ctx) -> HashMap<String, String> {
    let Ok(hosts) = ctx.client.list::<Host>("/v1/hosts", None) else {
        return HashMap::new();
    };
    hosts.body.iter().map(|h| (cell(&h.id), cell(&h.hostname))).collect()
}

/// The instances table, also used by `deployments show`; `wide` adds ids, the image, the
/// deployment and the termination time.
pub fn table(instances: &[Instance], hostnames: &HashMap<String, String>, wide: bool) -> Table {
    let mut headers = vec!["ID", "NAME", "STATE", "AGE", "HOST", "GPUS", "BILLING", "PRICE"];
    if wide {
        headers.extend(["HOST ID", "IMAGE", "DEPLOYMENT", "TERMINATION", "ACCOUNT"]);
    }
    headers.push("REASON");
    let mut table = Table::new(&headers);
    let now = chrono::Utc::now();
    for instance in instances {
        let host_id = opt(instance.host_id.as_ref());
        let mut row = vec![
            cell(&instance.id),
            cell(&instance.name),
            cell(instance.state),
            lookup::age(Some(instance.created_at), now),
            hostnames.get(&host_id).cloned().unwrap_or_else(|| host_id.clone()),
            gpus_text(instance),
            billing_text(&instance.billing),
            opt(instance.price),
        ];
        if wide {
            row.push(host_id);
            row.push(opt(instance.image.as_deref()));
            row.push(opt(instance.deployment_id.as_ref()));
            row.push(opt(instance.termination_time.as_ref().map(time)));
            row.push(cell(&instance.account_id));
        }
        row.push(opt(instance.reason.as_deref()));
        table.row(row);
    }
    table
}

/// The PATCH body of `instances update`: only what was given.
fn change_body(rename: Option<String>, env: &[String], clear: bool) -> anyhow::Result<Value> {
    let mut body = serde_json::Map::new();
    if let Some(name) = rename {
        body.insert("name".into(), Value::String(name));
    }
    if clear || !env.is_empty() {
        body.insert("env".into(), Value::Object(crate::request::env_json(env)?));
    }
    if body.is_empty() {
        return crate::errors::usage("nothing to change: give --rename, --env or --clear-env");
    }
    Ok(Value::Object(body))
}

/// `COUNT x MODEL`: the assigned GPUs when placed, the requested ones otherwise.
pub fn gpus_text(instance: &Instance) -> String {
    let count = match instance.gpu_uuids.len() {
        0 => instance.gpu.count,
        placed => placed as u32,
    };
    gpu_cell(Some(count), instance.gpu_model.clone(), &instance.gpu)
}

/// `COUNT x MODELS` asked for, the models `|`-joined.
pub fn asked_gpus(asked: &GpuAsk) -> String {
    gpu_cell(Some(asked.count), None, asked)
}

/// `COUNT x MODEL`, the model the placed one or else the requested ones, `|`-joined.
fn gpu_cell(count: Option<u32>, model: Option<String>, asked: &GpuAsk) -> String {
    let model = model.unwrap_or_else(|| asked.models.join("|"));
    match (count, model.is_empty()) {
        (None, true) => "-".to_owned(),
        (None, false) => model,
        (Some(n), true) => n.to_string(),
        (Some(n), false) => format!("{n} x {model}"),
    }
}

/// `regular` or `spot ≤BID`.
pub fn billing_text(billing: &Billing) -> String {
    match billing {
        Billing::Spot { max_price } => format!("spot ≤{max_price}"),
        Billing::Regular => "regular".to_owned(),
    }
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let instance = ctx.client.get(&path(id))?;
    ctx.show(&instance, |i| print!("{}", readable(i)))
}

/// `key: value` lines of the instance, `billing` and `gpu` (the request) as short text.
fn readable(instance: &Instance) -> String {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        instance: &'a Instance,
        billing: String,
        gpu: String,
    }
    let gpu = asked_gpus(&instance.gpu);
    let shown = Shown { instance, billing: billing_text(&instance.billing), gpu };
    record(&shown, SHOW_ORDER)
}

fn delete(ctx: &Ctx, id: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    let mut answer: Answer<Instance> = ctx.client.delete_as(&path(id))?;
    if wait.wait {
        answer = wait_for(ctx, wait, id, Goal::Ended)?;
    }
    ctx.show(&answer, |i| println!("{}", summary(i)))
}

fn logs(ctx: &Ctx, id: &str, follow: bool) -> anyhow::Result<()> {
    let logs_path = format!("{}/logs", path(id));
    let mut printed = 0;
    loop {
        let terminated = follow && is_terminated(ctx, id)?;
        let text = ctx.client.get_text(&logs_path)?;
        printed = print_new(&text, printed)?;
        if !follow || terminated {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Prints the bytes after `printed` (everything when the log was cut shorter); returns the
/// new count.
fn print_new(text: &str, printed: usize) -> anyhow::Result<usize> {
    let fresh = text.get(printed..).unwrap_or(text);
    let mut out = std::io::stdout().lock();
    out.write_all(fresh.as_bytes())?;
    out.flush()?;
    Ok(text.len())
}

/// Whether the instance has ended: `terminated`, or `failed` (it never ran).
fn is_terminated(ctx: &Ctx, id: &str) -> anyhow::Result<bool> {
    Ok(ctx.client.get::<Instance>(&path(id))?.body.state.is_final())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gpuspot_common::Money;
    use serde_json::json;

    /// A queued regular instance asking for one H100.
    pub(crate) fn instance(id: &str, state: InstanceState) -> Instance {
        serde_json::from_value(json!({
            "id": id, "name": "n", "account_id": "a-op", "state": state, "reason": null,
            "host_id": null, "gpu_uuids": [], "gpu_model": null,
            "gpu": {"models": ["H100"], "count": 1}, "cpu_cores": null, "memory_gib": null,
            "billing": {"mode": "regular"}, "price": null, "hold_until": null,
            "termination_time": null, "termination_reason": null, "exit_code": null,
            "deployment_id": null, "spec_index": null, "command": ["true"], "env": {},
            "snapshot": {"enabled": false}, "image": null, "data_disk_gib": 10,
            "on_unavailable": "queue", "ports": [], "host_ports": [], "readiness": null,
            "created_at": "2026-12-03T12:00:00Z", "started_at": null, "ended_at": null,
            "ssh": null,
        }))
        .expect("an instance")
    }

    #[test]
    fn gpus_and_billing_cells() {
        let mut queued = instance("i-1", InstanceState::Queued);
        queued.gpu = GpuAsk { models: vec!["H100".into(), "A100".into()], count: 2 };
        assert_eq!(gpus_text(&queued), "2 x H100|A100");
        let mut placed = queued.clone();
        placed.gpu_model = Some("NVIDIA H100".into());
        placed.gpu_uuids = vec!["GPU-1".into(), "GPU-2".into()];
        assert_eq!(gpus_text(&placed), "2 x NVIDIA H100");
        let spot = Billing::Spot { max_price: Money(1_200_000) };
        assert_eq!(billing_text(&spot), "spot ≤1.20");
        assert_eq!(billing_text(&Billing::Regular), "regular");
    }

    #[test]
    fn summary_names_the_reason() {
        let mut queued = instance("i-1", InstanceState::Queued);
        queued.reason = Some("no capacity".into());
        assert_eq!(summary(&queued), "i-1 queued (no capacity)");
        assert_eq!(summary(&instance("i-2", InstanceState::Running)), "i-2 running");
    }

    #[test]
    fn show_prints_billing_and_the_request_as_text() {
        let out = readable(&instance("i-1", InstanceState::Queued));
        assert!(out.starts_with("id:"), "{out}");
        assert!(out.contains("\nbilling:            regular\n"), "{out}");
        assert!(out.contains("\ngpu:                1 x H100\n"), "{out}");
    }
}
