//! `gpuspot deployments create|list|show|scale|update|rebuild|delete|endpoints`; a
//! deployment goes by name or id. Lists and `show` print only what the deployment's mode
//! uses: replicas and autoscaling for a replica set, completions for a job.

use super::wait::{self, Outcome, Status};
use super::{Ctx, instances, lookup};
use crate::args::{DeploymentsCmd, ListFilter, WaitArgs};
use crate::client::{Answer, encode_segment};
use crate::deployment_request::deployment_request;
use crate::deployment_update::update_request;
use crate::output::{Table, cell, opt, range_text, record_with};
use gpuspot_api::{Autoscaling, Deployment, DeploymentState, Endpoint, Mode, ScheduledMinimum};
use serde_json::json;

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
            let mut created: Answer<Deployment> = ctx.client.post("/v1/deployments", &body)?;
            if args.wait.wait {
                created = wait_for(ctx, &args.wait, created.body.id.as_str(), Goal::Up)?;
            }
            ctx.show(&created, |d| println!("{}", summary(d)))?;
            let d = &created.body;
            match args.wait.wait && is_over(d) {
                true => anyhow::bail!("{} ended: {}", d.id, opt(d.reason.as_deref())),
                false => Ok(()),
            }
        }
        DeploymentsCmd::List(filter) => list(ctx, &filter),
        DeploymentsCmd::Show { id } => show(ctx, &named(ctx, &id)?),
        DeploymentsCmd::Scale { id, replicas } => {
            let body = json!({ "replicas": replicas });
            changed(ctx, ctx.client.patch(&path(&named(ctx, &id)?), &body)?)
        }
        DeploymentsCmd::Update(args) => {
            let body = update_request(&args)?;
            changed(ctx, ctx.client.patch(&path(&named(ctx, &args.id)?), &body)?)
        }
        DeploymentsCmd::Rebuild { id } => {
            let rebuild = format!("{}/rebuild", path(&named(ctx, &id)?));
            changed(ctx, ctx.client.post(&rebuild, &json!({}))?)
        }
        DeploymentsCmd::Delete { ids, wait } => ids.iter().try_for_each(|id| {
            let id = named(ctx, id)?;
            let mut answer = ctx.client.delete_as(&path(&id))?;
            if wait.wait {
                answer = wait_for(ctx, &wait, &id, Goal::Gone)?;
            }
            changed(ctx, answer)
        }),
        DeploymentsCmd::Endpoints { id } => endpoints(ctx, &named(ctx, &id)?),
    }
}

/// Prints the deployment a change answered with.
fn changed(ctx: &Ctx, answer: Answer<Deployment>) -> anyhow::Result<()> {
    ctx.show(&answer, |d| println!("{}", summary(d)))
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
fn wait_for(
    ctx: &Ctx,
    args: &WaitArgs,
    id: &str,
    goal: Goal,
) -> anyhow::Result<Answer<Deployment>> {
    let what = match goal {
        Goal::Up => format!("{id} to be up"),
        Goal::Gone => format!("{id}'s instances to end"),
    };
    wait::until(args, &what, || {
        let answer: Answer<Deployment> = ctx.client.get(&path(id))?;
        let status = match goal {
            Goal::Up => up_status(ctx, id, &answer.body)?,
            Goal::Gone => gone_status(&answer.body),
        };
        Ok((answer, status))
    })
}

/// Whether the deployment is over: deleted, failed, or (a replica set) completed.
fn is_over(deployment: &Deployment) -> bool {
    match deployment.state {
        DeploymentState::Completed => deployment.mode == Mode::Replicaset,
        state => lookup::DEPLOYMENT.ended.contains(&state.as_str()),
    }
}

/// `STATE (R/N ready)[: REASON]` for a replica set, `STATE[: REASON]` otherwise; up once it
/// runs with every replica ready (a replica set) or runs or completed (a job, a container).
fn up_status(ctx: &Ctx, id: &str, deployment: &Deployment) -> anyhow::Result<Status> {
    let mut line = deployment.state.to_string();
    let mut ready_enough = true;
    if deployment.mode == Mode::Replicaset {
        let wanted = deployment.replicas;
        let endpoints: Answer<Vec<Endpoint>> =
            ctx.client.get(&format!("{}/endpoints", path(id)))?;
        let ready = endpoints.body.iter().filter(|e| e.ready && !e.draining).count();
        line = format!("{line} ({ready}/{wanted} ready)");
        ready_enough = ready >= wanted as usize;
    }
    let outcome = match deployment.state {
        _ if is_over(deployment) => Outcome::Ended,
        DeploymentState::Running if ready_enough => Outcome::Reached,
        DeploymentState::Completed => Outcome::Reached,
        _ => Outcome::Pending,
    };
    Ok(Status { line: wait::with_reason(line, deployment.reason.as_deref()), outcome })
}

/// `STATE (N instances ending)`; reached once none is left.
fn gone_status(deployment: &Deployment) -> Status {
    let live = deployment.instances.iter().filter(|i| !i.state.is_final()).count();
    let state = deployment.state.to_string();
    match live {
        0 => Status { line: state, outcome: Outcome::Reached },
        n => Status { line: format!("{state} ({n} instances ending)"), outcome: Outcome::Pending },
    }
}

/// The id of the deployment a name or id names.
fn named(ctx: &Ctx, name_or_id: &str) -> anyhow::Result<String> {
    lookup::id_of::<Deployment>(ctx, &lookup::DEPLOYMENT, name_or_id)
}

fn endpoints(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let answer = ctx.client.get::<Vec<Endpoint>>(&format!("{}/endpoints", path(id)))?;
    ctx.show(&answer, |endpoints| {
        let mut table = Table::new(&["INSTANCE", "HOST", "ADDRESS", "READY", "DRAINING"]);
        for endpoint in endpoints {
            table.row(vec![
                cell(&endpoint.instance_id),
                opt(endpoint.hostname.as_deref()),
                opt(endpoint.address.as_deref()),
                cell(endpoint.ready),
                cell(endpoint.draining),
            ]);
        }
        table.print();
    })
}

fn path(id: &str) -> String {
    format!("/v1/deployments/{}", encode_segment(id))
}

/// `ID STATE` and the reason, when there is one.
fn summary(deployment: &Deployment) -> String {
    let line = format!("{} {}", cell(&deployment.id), deployment.state);
    match deployment.reason.as_deref() {
        Some(reason) if !reason.is_empty() => format!("{line} ({reason})"),
        _ => line,
    }
}

fn list(ctx: &Ctx, filter: &ListFilter) -> anyhow::Result<()> {
    let shown = lookup::DEPLOYMENT.list::<Deployment>(ctx, filter)?;
    ctx.show(&shown, |deployments| {
        let mut headers = vec!["ID", "NAME", "MODE", "STATE", "AGE", "WANT", "INSTANCES"];
        if ctx.wide() {
            headers.extend(["DONE/FAILED", "SPECS", "ACCOUNT"]);
        }
        headers.push("REASON");
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for d in deployments {
            let mut row = vec![
                cell(&d.id),
                cell(&d.name),
                cell(d.mode),
                cell(d.state),
                lookup::age(Some(d.created_at), now),
                wanted(d),
                instance_count(d),
            ];
            if ctx.wide() {
                row.push(format!("{}/{}", d.succeeded, d.failed));
                row.push(d.specs.len().to_string());
                row.push(cell(&d.account_id));
            }
            row.push(opt(d.reason.as_deref()));
            table.row(row);
        }
        table.print();
    })
}

/// Replicas for a replica set, completions for a job or container.
fn wanted(deployment: &Deployment) -> String {
    match deployment.mode {
        Mode::Replicaset => deployment.replicas.to_string(),
        _ => deployment.completions.to_string(),
    }
}

/// The instances that have not ended (a replaced or finished one is history, not capacity).
fn instance_count(deployment: &Deployment) -> String {
    deployment.instances.iter().filter(|i| !i.state.is_final()).count().to_string()
}

/// The fields a deployment of this mode does not use.
fn unused_fields(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Replicaset => &["completions", "parallelism", "retry_limit", "succeeded"],
        Mode::Job => &["replicas", "autoscaling", "schedule"],
        Mode::Container => &["replicas", "autoscaling", "schedule", "parallelism"],
    }
}

/// `1-4 replicas, 20 requests/s or 70% GPU per replica, scale in after 5m`.
fn autoscaling_text(policy: Option<&Autoscaling>) -> String {
    let Some(policy) = policy else {
        return "-".to_owned();
    };
    let mut targets = Vec::new();
    if let Some(rps) = policy.target_rps_per_replica {
        // As the API writes it (`20.0`).
        targets.push(format!(
            "{} requests/s",
            serde_json::Number::from_f64(rps).map_or(rps.to_string(), |n| n.to_string())
        ));
    }
    if let Some(gpu) = policy.target_gpu_utilization {
        targets.push(format!("{gpu}% GPU"));
    }
    let (min, max, delay) = (policy.min_replicas, policy.max_replicas, &policy.scale_in_delay);
    format!("{min}-{max} replicas, {} per replica, scale in after {delay}", targets.join(" or "))
}

/// `0 9 * * 1-5 → 4; …` (times UTC).
fn schedule_text(schedule: &[ScheduledMinimum]) -> String {
    let entries: Vec<String> =
        schedule.iter().map(|e| format!("{} → {}", cell(&e.cron), e.min_replicas)).collect();
    if entries.is_empty() { "-".to_owned() } else { format!("{} (UTC)", entries.join("; ")) }
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let deployment = ctx.client.get::<Deployment>(&path(id))?;
    ctx.show(&deployment, |d| {
        let mut drop = vec!["instances", "specs", "template"];
        drop.extend(unused_fields(d.mode));
        let mut set = Vec::new();
        if !drop.contains(&"autoscaling") {
            set.push(("autoscaling", autoscaling_text(d.autoscaling.as_ref())));
        }
        if !drop.contains(&"schedule") {
            set.push(("schedule", schedule_text(&d.schedule)));
        }
        print!("{}", record_with(d, SHOW_ORDER, &drop, set));
        print_specs(d);
        if !d.instances.is_empty() {
            println!();
            instances::table(&d.instances, &instances::hostnames(ctx), ctx.wide()).print();
        }
    })
}

/// The specs in preference order, one per line.
fn print_specs(deployment: &Deployment) {
    if deployment.specs.is_empty() {
        return;
    }
    let mut table = Table::new(&["SPEC", "GPUS", "BILLING", "CPU", "MEMORY GIB"]);
    for (i, spec) in deployment.specs.iter().enumerate() {
        table.row(vec![
            i.to_string(),
            instances::asked_gpus(&spec.gpu),
            instances::billing_text(&spec.billing),
            range_text(&spec.cpu_cores),
            range_text(&spec.memory_gib),
        ]);
    }
    println!();
    table.print();
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuspot_api::InstanceState;

    fn deployment(mode: Mode, replicas: u32, completions: u32) -> Deployment {
        serde_json::from_value(json!({
            "id": "d-1", "name": "svc", "account_id": "a-op", "mode": mode,
            "replicas": replicas, "completions": completions, "parallelism": 1,
            "retry_limit": 0, "succeeded": 0, "failed": 0, "restarts": 0, "state": "running",
            "reason": null, "specs": [], "created_at": "2026-12-03T12:00:00Z",
            "template": {"command": ["true"], "env": {}, "snapshot": {"enabled": false},
                "image": null, "data_disk_gib": 10, "ports": [], "readiness": null},
            "autoscaling": null, "schedule": [], "instances": [],
        }))
        .expect("a deployment")
    }

    #[test]
    fn list_cells() {
        let mut job = deployment(Mode::Job, 0, 5);
        job.instances = vec![
            instances::tests::instance("i-1", InstanceState::Running),
            instances::tests::instance("i-2", InstanceState::Terminated),
        ];
        assert_eq!(wanted(&job), "5", "a job wants its completions");
        assert_eq!(instance_count(&job), "1", "ended instances are not counted");
        let set = deployment(Mode::Replicaset, 3, 0);
        assert_eq!(wanted(&set), "3");
        assert_eq!(instance_count(&set), "0");
    }

    #[test]
    fn scaling_reads_as_words() {
        let policy: Autoscaling = serde_json::from_value(json!({"min_replicas": 1,
            "max_replicas": 4, "target_rps_per_replica": 20.0, "scale_in_delay": "5m"}))
        .expect("a policy");
        assert_eq!(
            autoscaling_text(Some(&policy)),
            "1-4 replicas, 20.0 requests/s per replica, scale in after 5m"
        );
        assert_eq!(autoscaling_text(None), "-");
        let schedule = [ScheduledMinimum { cron: "0 9 * * 1-5".into(), min_replicas: 4 }];
        assert_eq!(schedule_text(&schedule), "0 9 * * 1-5 → 4 (UTC)");
        assert_eq!(schedule_text(&[]), "-");
        assert!(unused_fields(Mode::Replicaset).contains(&"completions"));
        assert!(unused_fields(Mode::Job).contains(&"replicas"));
    }
}
