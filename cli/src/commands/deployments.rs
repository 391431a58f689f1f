//! `gpuspot deployments create|list|show|scale|update|rebuild|delete|endpoints`; a
//! deployment goes by name or id. Lists and `show` print only what the deployment's mode
//! uses: replicas and autoscaling for a replica set, completions for a job.

use super::wait::{self, Outcome, Status};
use super::{Ctx, instances, lookup};
use crate::args::{DeploymentsCmd, ListFilter, WaitArgs};
use crate::client::encode_segment;
use crate::deployment_request::deployment_request;
use crate::deployment_update::update_request;
use crate::output::{Table, field, fields, items, range_text};
use serde_json::{Value, json};

const SHOW_ORDER: &[&str] = &[
    "id",
    "name",
    "mode",
    "state",
    "reason",
    "replicas",
    "completions",
    "parallelism",
    "retry_limit",
    "succeeded",
    "failed",
    "account_id",
    "created_at",
];

pub fn run(ctx: &Ctx, cmd: DeploymentsCmd) -> anyhow::Result<()> {
    match cmd {
        DeploymentsCmd::Create(args) => {
            let body = deployment_request(&args)?;
            let mut created = ctx.client.post_json("/v1/deployments", &body)?;
            if args.wait.wait {
                created = wait_for(ctx, &args.wait, &field(&created, "id"), Goal::Up)?;
            }
            ctx.emit(&created, |v| println!("{}", summary(v)))?;
            match args.wait.wait && is_over(&created) {
                true => {
                    anyhow::bail!("{} ended: {}", field(&created, "id"), field(&created, "reason"))
                }
                false => Ok(()),
            }
        }
        DeploymentsCmd::List(filter) => list(ctx, &filter),
        DeploymentsCmd::Show { id } => show(ctx, &named(ctx, &id)?),
        DeploymentsCmd::Scale { id, replicas } => {
            let id = named(ctx, &id)?;
            let body = json!({ "replicas": replicas });
            let answer = ctx.client.patch_json(&path(&id), &body)?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "scaled")))
        }
        DeploymentsCmd::Update(args) => {
            let body = update_request(&args)?;
            let id = named(ctx, &args.id)?;
            let answer = ctx.client.patch_json(&path(&id), &body)?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "updated")))
        }
        DeploymentsCmd::Rebuild { id } => {
            let id = named(ctx, &id)?;
            let answer = ctx.client.post_json(&format!("{}/rebuild", path(&id)), &json!({}))?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "rebuilding")))
        }
        DeploymentsCmd::Delete { ids, wait } => ids.iter().try_for_each(|id| {
            let id = named(ctx, id)?;
            let mut answer = ctx.client.delete(&path(&id))?;
            if wait.wait {
                answer = wait_for(ctx, &wait, &id, Goal::Gone)?;
            }
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "deleted")))
        }),
        DeploymentsCmd::Endpoints { id } => endpoints(ctx, &named(ctx, &id)?),
    }
}

/// What a deployment's `--wait` waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Running; for a replica set, every replica ready.
    Up,
    /// Every instance ended (after a delete).
    Gone,
}

/// Waits (see [`wait::until`]) until deployment `id` reaches `goal`; the last answer.
fn wait_for(ctx: &Ctx, args: &WaitArgs, id: &str, goal: Goal) -> anyhow::Result<Value> {
    let what = match goal {
        Goal::Up => format!("{id} to be up"),
        Goal::Gone => format!("{id}'s instances to end"),
    };
    wait::until(args, &what, || {
        let deployment = ctx.client.get_json(&path(id))?;
        let status = match goal {
            Goal::Up => up_status(ctx, id, &deployment)?,
            Goal::Gone => gone_status(&deployment),
        };
        Ok((deployment, status))
    })
}

/// Whether the deployment is over: deleted, failed, or (a replica set) completed.
fn is_over(deployment: &Value) -> bool {
    match field(deployment, "state").as_str() {
        "completed" => field(deployment, "mode") == "replicaset",
        state => lookup::DEPLOYMENT.ended.contains(&state),
    }
}

/// `STATE (R/N ready)[: REASON]` for a replica set, `STATE[: REASON]` otherwise; up once it
/// runs with every replica ready (a replica set) or runs or completed (a job, a container).
fn up_status(ctx: &Ctx, id: &str, deployment: &Value) -> anyhow::Result<Status> {
    let state = field(deployment, "state");
    let wanted = deployment.get("replicas").and_then(Value::as_u64);
    let mut line = state.clone();
    let mut ready_enough = true;
    if let (Some(wanted), "replicaset") = (wanted, field(deployment, "mode").as_str()) {
        let endpoints = ctx.client.get_json(&format!("{}/endpoints", path(id)))?;
        let ready = items(&endpoints, "endpoints")
            .iter()
            .filter(|e| e.get("ready") == Some(&Value::Bool(true)))
            .filter(|e| e.get("draining") != Some(&Value::Bool(true)))
            .count() as u64;
        line = format!("{line} ({ready}/{wanted} ready)");
        ready_enough = ready >= wanted;
    }
    let outcome = match state.as_str() {
        _ if is_over(deployment) => Outcome::Ended,
        "running" if ready_enough => Outcome::Reached,
        "completed" => Outcome::Reached,
        _ => Outcome::Pending,
    };
    Ok(Status { line: wait::with_reason(line, deployment), outcome })
}

/// `STATE (N instances ending)`; reached once none is left.
fn gone_status(deployment: &Value) -> Status {
    let instances = deployment.get("instances").unwrap_or(&Value::Null);
    let live = items(instances, "instances").iter().filter(|i| !lookup::is_ended(i)).count();
    let state = field(deployment, "state");
    match live {
        0 => Status { line: state, outcome: Outcome::Reached },
        n => Status { line: format!("{state} ({n} instances ending)"), outcome: Outcome::Pending },
    }
}

/// The id of the deployment a name or id names.
fn named(ctx: &Ctx, name_or_id: &str) -> anyhow::Result<String> {
    lookup::id_of(ctx, &lookup::DEPLOYMENT, name_or_id)
}

fn endpoints(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let answer = ctx.client.get_json(&format!("{}/endpoints", path(id)))?;
    ctx.emit(&answer, |v| {
        let mut table = Table::new(&["INSTANCE", "HOST", "ADDRESS", "READY", "DRAINING"]);
        for endpoint in items(v, "endpoints") {
            table.row(vec![
                field(endpoint, "instance_id"),
                field(endpoint, "hostname"),
                field(endpoint, "address"),
                field(endpoint, "ready"),
                field(endpoint, "draining"),
            ]);
        }
        table.print();
    })
}

fn path(id: &str) -> String {
    format!("/v1/deployments/{}", encode_segment(id))
}

/// `ID STATE` and the reason, when there is one.
fn summary(deployment: &Value) -> String {
    let line = format!("{} {}", field(deployment, "id"), field(deployment, "state"));
    match deployment.get("reason").and_then(Value::as_str) {
        Some(reason) if !reason.is_empty() => format!("{line} ({reason})"),
        _ => line,
    }
}

/// The summary when the answer is a deployment, `ID WORD` when it is something else.
fn or_id(answer: &Value, id: &str, word: &str) -> String {
    match answer.get("id") {
        Some(_) => summary(answer),
        None => format!("{id} {word}"),
    }
}

fn list(ctx: &Ctx, filter: &ListFilter) -> anyhow::Result<()> {
    let shown = lookup::DEPLOYMENT.list(ctx, filter)?;
    ctx.emit(&shown, |v| {
        let mut headers = vec!["ID", "NAME", "MODE", "STATE", "AGE", "WANT", "INSTANCES"];
        if ctx.wide() {
            headers.extend(["DONE/FAILED", "SPECS", "ACCOUNT"]);
        }
        headers.push("REASON");
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for deployment in items(v, "deployments") {
            let created = deployment.get("created_at").and_then(Value::as_str);
            let mut row = vec![
                field(deployment, "id"),
                field(deployment, "name"),
                field(deployment, "mode"),
                field(deployment, "state"),
                lookup::age(created, now),
                wanted(deployment),
                instance_count(deployment),
            ];
            if ctx.wide() {
                row.push(format!(
                    "{}/{}",
                    field(deployment, "succeeded"),
                    field(deployment, "failed")
                ));
                row.push(
                    items(deployment.get("specs").unwrap_or(&Value::Null), "specs")
                        .len()
                        .to_string(),
                );
                row.push(field(deployment, "account_id"));
            }
            row.push(field(deployment, "reason"));
            table.row(row);
        }
        table.print();
    })
}

/// Replicas for a replica set, completions for a job or container.
fn wanted(deployment: &Value) -> String {
    match deployment.get("mode").and_then(Value::as_str) {
        Some("replicaset") => field(deployment, "replicas"),
        _ => field(deployment, "completions"),
    }
}

/// The instances that have not ended (a replaced or finished one is history, not capacity).
fn instance_count(deployment: &Value) -> String {
    let ended = |i: &&Value| matches!(i["state"].as_str(), Some("terminated" | "failed"));
    match deployment.get("instances").and_then(Value::as_array) {
        Some(list) => list.iter().filter(|i| !ended(i)).count().to_string(),
        None => "-".to_owned(),
    }
}

/// The fields a deployment of this mode does not use.
fn unused_fields(mode: Option<&str>) -> &'static [&'static str] {
    match mode {
        Some("replicaset") => &["completions", "parallelism", "retry_limit", "succeeded"],
        Some("job") => &["replicas", "autoscaling", "schedule"],
        Some("container") => &["replicas", "autoscaling", "schedule", "parallelism"],
        _ => &[],
    }
}

/// `1-4 replicas, 20 requests/s or 70% GPU per replica, scale in after 5m`.
fn autoscaling_text(policy: &Value) -> String {
    if !policy.is_object() {
        return "-".to_owned();
    }
    let mut targets = Vec::new();
    if let Some(rps) = policy.get("target_rps_per_replica").filter(|v| !v.is_null()) {
        targets.push(format!("{rps} requests/s"));
    }
    if let Some(gpu) = policy.get("target_gpu_utilization").filter(|v| !v.is_null()) {
        targets.push(format!("{gpu}% GPU"));
    }
    let (min, max) = (field(policy, "min_replicas"), field(policy, "max_replicas"));
    let delay = field(policy, "scale_in_delay");
    format!("{min}-{max} replicas, {} per replica, scale in after {delay}", targets.join(" or "))
}

/// `0 9 * * 1-5 → 4; …` (times UTC).
fn schedule_text(schedule: &Value) -> String {
    let entries: Vec<String> = items(schedule, "schedule")
        .iter()
        .map(|e| format!("{} → {}", field(e, "cron"), field(e, "min_replicas")))
        .collect();
    if entries.is_empty() { "-".to_owned() } else { format!("{} (UTC)", entries.join("; ")) }
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let deployment = ctx.client.get_json(&path(id))?;
    ctx.emit(&deployment, |v| {
        let mut summary = v.clone();
        let instances =
            summary.as_object_mut().and_then(|map| map.remove("instances")).unwrap_or(Value::Null);
        let mode = v.get("mode").and_then(Value::as_str);
        if let Some(map) = summary.as_object_mut() {
            map.remove("specs");
            map.remove("template");
            for key in unused_fields(mode) {
                map.remove(*key);
            }
            if let Some(policy) = map.get_mut("autoscaling") {
                *policy = Value::String(autoscaling_text(policy));
            }
            if let Some(schedule) = map.get_mut("schedule") {
                *schedule = Value::String(schedule_text(schedule));
            }
        }
        print!("{}", fields(&summary, SHOW_ORDER));
        print_specs(v);
        let list = items(&instances, "instances");
        if !list.is_empty() {
            println!();
            instances::table(list, &instances::hostnames(ctx), ctx.wide()).print();
        }
    })
}

/// The specs in preference order, one per line.
fn print_specs(deployment: &Value) {
    let specs = items(deployment.get("specs").unwrap_or(&Value::Null), "specs");
    if specs.is_empty() {
        return;
    }
    let mut table = Table::new(&["SPEC", "GPUS", "BILLING", "CPU", "MEMORY GIB"]);
    for (i, spec) in specs.iter().enumerate() {
        table.row(vec![
            i.to_string(),
            instances::gpus_text(spec),
            instances::billing_text(spec.get("billing")),
            range_text(spec.get("cpu_cores")),
            range_text(spec.get("memory_gib")),
        ]);
    }
    println!();
    table.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cells() {
        let job = json!({"mode": "job", "replicas": 0, "completions": 5,
                         "instances": [{"state": "running"}, {"state": "terminated"}]});
        assert_eq!(wanted(&job), "5", "a job wants its completions");
        assert_eq!(instance_count(&job), "1", "ended instances are not counted");
        let set = json!({"mode": "replicaset", "replicas": 3, "completions": 0});
        assert_eq!(wanted(&set), "3");
        assert_eq!(instance_count(&set), "-");
        assert_eq!(or_id(&Value::Null, "d-1", "deleted"), "d-1 deleted");
    }

    #[test]
    fn scaling_reads_as_words() {
        let policy = json!({"min_replicas": 1, "max_replicas": 4, "target_rps_per_replica": 20.0,
                            "scale_in_delay": "5m"});
        assert_eq!(
            autoscaling_text(&policy),
            "1-4 replicas, 20.0 requests/s per replica, scale in after 5m"
        );
        assert_eq!(autoscaling_text(&Value::Null), "-");
        let schedule = json!([{"cron": "0 9 * * 1-5", "min_replicas": 4}]);
        assert_eq!(schedule_text(&schedule), "0 9 * * 1-5 → 4 (UTC)");
        assert_eq!(schedule_text(&json!([])), "-");
        assert!(unused_fields(Some("replicaset")).contains(&"completions"));
        assert!(unused_fields(Some("job")).contains(&"replicas"));
    }
}
