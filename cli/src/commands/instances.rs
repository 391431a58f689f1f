//! `gpuspot instances create|list|show|update|delete|logs` (and `exec`, in [`super::exec`]);
//! instances go by name or id (see [`super::lookup`]).

use super::wait::{self, Outcome, Status};
use super::{Ctx, lookup};
use crate::args::{InstanceCreateArgs, InstancesCmd, ListFilter, WaitArgs};
use crate::client::encode_segment;
use crate::output::{Table, field, fields, items, text};
use crate::request::instance_request;
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
            let changed = ctx.client.patch_json(&path(&lookup::instance_id(ctx, &id)?), &body)?;
            ctx.emit(&changed, |v| print!("{}", fields(&readable(v), SHOW_ORDER)))
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
    let mut created = ctx.client.post_json("/v1/instances", &body)?;
    let id = field(&created, "id");
    if args.wait.wait {
        created = wait_for(ctx, &args.wait, &id, Goal::Running)?;
    }
    ctx.emit(&created, |v| println!("{}", summary(v)))?;
    if args.wait.wait && lookup::is_ended(&created) && !ran(&created) {
        anyhow::bail!("{id} ended without running: {}", field(&created, "reason"));
    }
    Ok(())
}

/// Whether the instance's workload started: one that ended between two looks still ran
/// (a short command may end before `--wait` first sees it running).
fn ran(instance: &Value) -> bool {
    instance.get("started_at").is_some_and(|at| !at.is_null())
}

/// What an instance's `--wait` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Running,
    Ended,
}

/// Waits (see [`wait::until`]) until instance `id` reaches `goal` or ends; the last answer.
fn wait_for(ctx: &Ctx, args: &WaitArgs, id: &str, goal: Goal) -> anyhow::Result<Value> {
    let hostnames = hostnames(ctx);
    let what = match goal {
        Goal::Running => format!("{id} to run"),
        Goal::Ended => format!("{id} to end"),
    };
    wait::until(args, &what, || {
        let instance = ctx.client.get_json(&path(id))?;
        let outcome = match (lookup::is_ended(&instance), field(&instance, "state").as_str()) {
            (true, _) if goal == Goal::Ended || ran(&instance) => Outcome::Reached,
            (true, _) => Outcome::Ended,
            (false, "running") if goal == Goal::Running => Outcome::Reached,
            _ => Outcome::Pending,
        };
        let line = wait::instance_line(&instance, &hostnames);
        Ok((instance, Status { line, outcome }))
    })
}

/// `ID STATE` and, when there is one, the reason in parentheses.
fn summary(instance: &Value) -> String {
    let line = format!("{} {}", field(instance, "id"), field(instance, "state"));
    match instance.get("reason").and_then(Value::as_str) {
        Some(reason) if !reason.is_empty() => format!("{line} ({reason})"),
        _ => line,
    }
}

fn list(ctx: &Ctx, filter: &ListFilter) -> anyhow::Result<()> {
    let shown = lookup::INSTANCE.list(ctx, filter)?;
    ctx.emit(&shown, |v| {
        let hostnames = hostnames(ctx);
        table(items(v, "instances"), &hostnames, ctx.wide()).print()
    })
}

/// Host id → hostname, when the caller may list hosts (the admin); empty otherwise, and the
/// tables show host ids.
pub fn hostnames(ctx: &Ctx) -> HashMap<String, String> {
    let Ok(hosts) = ctx.client.get_list("/v1/hosts", None) else {
        return HashMap::new();
    };
    items(&hosts, "hosts").iter().map(|h| (field(h, "id"), field(h, "hostname"))).collect()
}

/// The instances table, also used by `deployments show`; `wide` adds ids, the image, the
/// deployment and the termination time.
pub fn table(instances: &[Value], hostnames: &HashMap<String, String>, wide: bool) -> Table {
    let mut headers = vec!["ID", "NAME", "STATE", "AGE", "HOST", "GPUS", "BILLING", "PRICE"];
    if wide {
        headers.extend(["HOST ID", "IMAGE", "DEPLOYMENT", "TERMINATION", "ACCOUNT"]);
    }
    headers.push("REASON");
    let mut table = Table::new(&headers);
    let now = chrono::Utc::now();
    for instance in instances {
        let created = instance.get("created_at").and_then(Value::as_str);
        let host_id = field(instance, "host_id");
        let mut row = vec![
            field(instance, "id"),
            field(instance, "name"),
            field(instance, "state"),
            lookup::age(created, now),
            hostnames.get(&host_id).cloned().unwrap_or_else(|| host_id.clone()),
            gpus_text(instance),
            billing_text(instance.get("billing")),
            field(instance, "price"),
        ];
        if wide {
            let more = ["image", "deployment_id", "termination_time", "account_id"];
            row.push(host_id);
            row.extend(more.iter().map(|k| field(instance, k)));
        }
        row.push(field(instance, "reason"));
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
pub fn gpus_text(instance: &Value) -> String {
    let request = instance.get("gpu");
    let uuids = instance.get("gpu_uuids").and_then(Value::as_array);
    let count = match uuids {
        Some(uuids) if !uuids.is_empty() => Some(uuids.len() as u64),
        _ => request.and_then(|g| g.get("count")).and_then(Value::as_u64),
    };
    let model = match instance.get("gpu_model").and_then(Value::as_str) {
        Some(model) => model.to_owned(),
        None => request
            .and_then(|g| g.get("models"))
            .and_then(Value::as_array)
            .map(|models| models.iter().map(|m| text(Some(m))).collect::<Vec<_>>().join("|"))
            .unwrap_or_default(),
    };
    match (count, model.is_empty()) {
        (None, true) => "-".to_owned(),
        (None, false) => model,
        (Some(n), true) => n.to_string(),
        (Some(n), false) => format!("{n} x {model}"),
    }
}

/// `regular` or `spot ≤BID`.
pub fn billing_text(billing: Option<&Value>) -> String {
    let Some(billing) = billing.filter(|b| b.is_object()) else {
        return text(billing);
    };
    match billing.get("mode").and_then(Value::as_str) {
        Some("spot") => format!("spot ≤{}", field(billing, "max_price")),
        Some(mode) => mode.to_owned(),
        None => text(Some(billing)),
    }
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let instance = ctx.client.get_json(&path(id))?;
    ctx.emit(&instance, |v| print!("{}", fields(&readable(v), SHOW_ORDER)))
}

/// The instance with `billing` and `gpu` turned into short text for `show`.
fn readable(instance: &Value) -> Value {
    let mut copy = instance.clone();
    if let Some(map) = copy.as_object_mut() {
        if map.contains_key("billing") {
            let billing = billing_text(instance.get("billing"));
            map.insert("billing".into(), Value::String(billing));
        }
        if map.contains_key("gpu") {
            map.insert("gpu".into(), Value::String(gpus_text(&requested(instance))));
        }
    }
    copy
}

/// Only the request part of the GPU fields (for the `gpu` line of `show`).
fn requested(instance: &Value) -> Value {
    serde_json::json!({ "gpu": instance.get("gpu") })
}

fn delete(ctx: &Ctx, id: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    let mut answer = ctx.client.delete(&path(id))?;
    if wait.wait {
        answer = wait_for(ctx, wait, id, Goal::Ended)?;
    }
    ctx.emit(&answer, |v| match v.get("id") {
        Some(_) => println!("{}", summary(v)),
        None => println!("{id} terminating"),
    })
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
    Ok(lookup::is_ended(&ctx.client.get_json(&path(id))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gpus_and_billing_cells() {
        let queued = json!({"gpu": {"models": ["H100", "A100"], "count": 2}, "gpu_uuids": []});
        assert_eq!(gpus_text(&queued), "2 x H100|A100");
        let placed = json!({"gpu_model": "NVIDIA H100", "gpu_uuids": ["GPU-1", "GPU-2"]});
        assert_eq!(gpus_text(&placed), "2 x NVIDIA H100");
        assert_eq!(gpus_text(&json!({})), "-");
        let spot = json!({"mode": "spot", "max_price": "1.20"});
        assert_eq!(billing_text(Some(&spot)), "spot ≤1.20");
        assert_eq!(billing_text(Some(&json!({"mode": "regular"}))), "regular");
        assert_eq!(billing_text(None), "-");
    }

    #[test]
    fn summary_names_the_reason() {
        let instance = json!({"id": "i-1", "state": "queued", "reason": "no capacity"});
        assert_eq!(summary(&instance), "i-1 queued (no capacity)");
        assert_eq!(summary(&json!({"id": "i-2", "state": "running"})), "i-2 running");
    }
}
