//! `gpuspot deployments create|list|show|scale|rebuild|delete|endpoints`.

use super::{Ctx, instances};
use crate::args::DeploymentsCmd;
use crate::client::encode_segment;
use crate::deployment_request::deployment_request;
use crate::output::{Table, field, fields, items};
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
            let created = ctx.client.post_json("/v1/deployments", &body)?;
            ctx.emit(&created, |v| println!("{}", summary(v)))
        }
        DeploymentsCmd::List => list(ctx),
        DeploymentsCmd::Show { id } => show(ctx, &id),
        DeploymentsCmd::Scale { id, replicas } => {
            let body = json!({ "replicas": replicas });
            let answer = ctx.client.patch_json(&path(&id), &body)?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "scaled")))
        }
        DeploymentsCmd::Rebuild { id } => {
            let answer = ctx.client.post_json(&format!("{}/rebuild", path(&id)), &json!({}))?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "rebuilding")))
        }
        DeploymentsCmd::Delete { id } => {
            let answer = ctx.client.delete(&path(&id))?;
            ctx.emit(&answer, |v| println!("{}", or_id(v, &id, "deleted")))
        }
        DeploymentsCmd::Endpoints { id } => endpoints(ctx, &id),
    }
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

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get_json("/v1/deployments")?;
    ctx.emit(&answer, |v| {
        let headers = ["ID", "NAME", "MODE", "STATE", "WANT", "INSTANCES", "DONE/FAILED", "REASON"];
        let mut table = Table::new(&headers);
        for deployment in items(v, "deployments") {
            table.row(vec![
                field(deployment, "id"),
                field(deployment, "name"),
                field(deployment, "mode"),
                field(deployment, "state"),
                wanted(deployment),
                instance_count(deployment),
                format!("{}/{}", field(deployment, "succeeded"), field(deployment, "failed")),
                field(deployment, "reason"),
            ]);
        }
        table.print();
    })
}

/// Replicas for a replica set, completions for a job or container.
fn wanted(deployment: &Value) -> String {
    match deployment.get("replicas").filter(|r| !r.is_null()) {
        Some(_) => field(deployment, "replicas"),
        None => field(deployment, "completions"),
    }
}

fn instance_count(deployment: &Value) -> String {
    match deployment.get("instances").and_then(Value::as_array) {
        Some(list) => list.len().to_string(),
        None => "-".to_owned(),
    }
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let deployment = ctx.client.get_json(&path(id))?;
    ctx.emit(&deployment, |v| {
        let mut summary = v.clone();
        let instances =
            summary.as_object_mut().and_then(|map| map.remove("instances")).unwrap_or(Value::Null);
        if let Some(map) = summary.as_object_mut() {
            map.remove("specs");
            map.remove("template");
        }
        print!("{}", fields(&summary, SHOW_ORDER));
        print_specs(v);
        let list = items(&instances, "instances");
        if !list.is_empty() {
            println!();
            instances::table(list).print();
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
            field(spec, "cpu_cores"),
            field(spec, "memory_gib"),
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
        let job = json!({"mode": "job", "replicas": null, "completions": 5, "instances": [{}, {}]});
        assert_eq!(wanted(&job), "5");
        assert_eq!(instance_count(&job), "2");
        let set = json!({"replicas": 3});
        assert_eq!(wanted(&set), "3");
        assert_eq!(instance_count(&set), "-");
        assert_eq!(or_id(&Value::Null, "d-1", "deleted"), "d-1 deleted");
    }
}
