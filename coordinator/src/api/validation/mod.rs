//! One validation for what users ask for (docs/contracts.md#placement, #deployments, #http-api,
//! #guests): the bodies of `POST /v1/instances` and of a deployment's specs and template, turned
//! into the core's types. Everything that can be checked without the cluster is checked, and every
//! problem is reported at once, each naming its field (`gpu.count`, `specs[1].billing.max_price`,
//! `template.image`), as one 400 `invalid_request`. An instance is a spec and a template under one
//! name, so both paths go through the same rules in [`rules`] and a rule gives the same verdict on
//! both.

mod bounds;
#[cfg(test)]
mod bounds_tests;
mod rules;
#[cfg(test)]
mod tests;

use super::error::{HttpError, InvalidBody};
use crate::core::deployment::{DeploymentSpec, Mode};
use crate::core::deployments::{DeploymentChange, NewDeployment};
use crate::core::model::InstanceRequest;
pub use gpuspot_api::requests::{
    BillingBody, DeploymentBody, DeploymentChangeBody, GpuBody, InstanceBody, SpecBody,
    TemplateBody,
};
use std::collections::BTreeMap;

/// The longest problem reported; the field it names comes first.
const MAX_PROBLEM_CHARS: usize = 300;

/// Every problem found in one body, each a sentence that names its field.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// A problem longer than [`MAX_PROBLEM_CHARS`] is cut (a parser's message may quote
    /// the whole value it refused).
    pub fn add(&mut self, problem: impl Into<String>) {
        let mut problem: String = problem.into();
        if let Some((cut, _)) = problem.char_indices().nth(MAX_PROBLEM_CHARS) {
            problem.truncate(cut);
            problem.push('…');
        }
        self.0.push(problem);
    }

    /// Ok when nothing was found, else one 400 `invalid_request` listing all of it.
    pub fn finish(self) -> Result<(), HttpError> {
        if self.0.is_empty() { Ok(()) } else { Err(InvalidBody(self.0.join("; ")).into()) }
    }
}

/// Checks an instance request: its conditions as a spec's, its guest as a template's.
pub fn instance(body: InstanceBody) -> Result<InstanceRequest, HttpError> {
    let InstanceBody {
        name,
        account_id: _,
        gpu,
        cpu_cores,
        memory_gib,
        billing,
        command,
        env,
        snapshot,
        image,
        data_disk_gib,
        on_unavailable,
        ports,
        readiness,
    } = body;
    let spec = SpecBody { gpu, cpu_cores, memory_gib, billing };
    let template = TemplateBody { command, env, snapshot, image, data_disk_gib, ports, readiness };
    let mut problems = Problems::default();
    bounds::instance_name(name.as_deref().unwrap_or_default(), &mut problems);
    let spec = rules::spec("", &spec, &mut problems);
    let template = rules::template("", template, &mut problems);
    let on_unavailable = rules::on_unavailable(on_unavailable.as_ref(), &mut problems);
    problems.finish()?;
    Ok(InstanceRequest {
        name: name.unwrap_or_default(),
        gpu: spec.gpu,
        cpu_cores: spec.cpu_cores,
        memory_gib: spec.memory_gib,
        billing: spec.billing,
        command: template.command,
        env: template.env,
        snapshot: template.snapshot,
        image: template.image,
        data_disk_gib: template.data_disk_gib,
        on_unavailable,
        ports: template.ports,
        readiness: template.readiness,
    })
}

/// Checks a new deployment: its mode and counts, every spec and the template.
pub fn deployment(body: DeploymentBody) -> Result<NewDeployment, HttpError> {
    let mut problems = Problems::default();
    if let Some(name) = &body.name {
        rules::deployment_name(name, &mut problems);
    }
    let mode = rules::mode(&body.mode, &mut problems);
    let counts = rules::counts(mode, &body, &mut problems);
    let specs = specs(&body.specs, &mut problems);
    let template = rules::template("template.", body.template, &mut problems);
    let (autoscaling, schedule) =
        rules::scaling(mode, body.autoscaling.as_ref(), body.schedule.as_ref(), &mut problems);
    problems.finish()?;
    let replicas = match &autoscaling {
        Some(a) => body.replicas.unwrap_or(a.min_replicas).clamp(a.min_replicas, a.max_replicas),
        None => counts.replicas,
    };
    Ok(NewDeployment {
        autoscaling,
        schedule,
        name: body.name.unwrap_or_default(),
        mode,
        replicas,
        completions: counts.completions,
        parallelism: counts.parallelism,
        retry_limit: counts.retry_limit,
        specs,
        template,
    })
}

/// Checks what a `PATCH /v1/deployments/{id}` replaces, each part as on creation; whether
/// autoscaling fits the deployment and what it keeps is the cluster's to check.
pub fn deployment_change(body: DeploymentChangeBody) -> Result<DeploymentChange, HttpError> {
    let mut problems = Problems::default();
    if body.replicas.is_some_and(|r| r > rules::MAX_REPLICAS) {
        problems.add(format!("replicas must be at most {}", rules::MAX_REPLICAS));
    }
    let specs = body.specs.map(|bodies| self::specs(&bodies, &mut problems));
    let template = body.template.map(|t| rules::template("template.", t, &mut problems));
    let (policy, entries) = rules::scaling(
        Mode::Replicaset,
        body.autoscaling.as_ref().and_then(Option::as_ref),
        body.schedule.as_ref().and_then(Option::as_ref),
        &mut problems,
    );
    problems.finish()?;
    Ok(DeploymentChange {
        replicas: body.replicas,
        specs,
        template,
        autoscaling: body.autoscaling.map(|_| policy),
        schedule: body.schedule.map(|_| entries),
    })
}

/// What a `PATCH /v1/instances/{id}` changes: its name and env, bounded as on creation.
pub fn instance_change(
    name: Option<&str>,
    env: Option<&BTreeMap<String, String>>,
) -> Result<(), HttpError> {
    let mut problems = Problems::default();
    if let Some(name) = name {
        bounds::instance_name(name, &mut problems);
    }
    if let Some(env) = env {
        bounds::env("", env, &mut problems);
    }
    problems.finish()
}

/// The ordered specs; at least one, since each new instance takes the first that fits, and
/// at most [`bounds::MAX_SPECS`].
fn specs(bodies: &[SpecBody], problems: &mut Problems) -> Vec<DeploymentSpec> {
    if bodies.is_empty() {
        problems.add("specs must list at least one spec (tried in order)");
    }
    if bodies.len() > bounds::MAX_SPECS {
        problems.add(format!("specs may list at most {} specs", bounds::MAX_SPECS));
        return Vec::new();
    }
    let at = |index: usize| format!("specs[{index}].");
    bodies.iter().enumerate().map(|(i, body)| rules::spec(&at(i), body, problems)).collect()
}
