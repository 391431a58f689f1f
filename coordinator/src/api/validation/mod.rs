//! One validation for what users ask for (DESIGN §3, §7, §11, §14): the bodies of
//! `POST /v1/instances` and of a deployment's specs and template, turned into the core's
//! types. Everything that can be checked without the cluster is checked, and every problem
//! is reported at once, each naming its field (`gpu.count`, `specs[1].billing.max_price`,
//! `template.image`), as one 400 `invalid_request`. An instance is a spec and a template
//! under one name, so both paths go through the same rules in [`rules`] and a rule gives
//! the same verdict on both.

mod bounds;
#[cfg(test)]
mod bounds_tests;
mod rules;
#[cfg(test)]
mod tests;

use super::error::HttpError;
use super::schemas::ReadinessDoc;
use crate::core::deployment::{DeploymentSpec, Mode};
use crate::core::deployments::{DeploymentChange, NewDeployment};
use crate::core::model::{InstanceRequest, Range, SnapshotOptions};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuBody {
    /// In order of preference; at most 16 entries (repeats count) of at most 64 characters.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub models: Vec<String>,
    pub count: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingBody {
    pub mode: String,
    pub max_price: Option<String>,
}

/// `POST /v1/instances`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceBody {
    #[schema(max_length = 63)]
    pub name: Option<String>,
    /// The admin may create for another account.
    pub account_id: Option<String>,
    pub gpu: GpuBody,
    pub cpu_cores: Option<Range>,
    pub memory_gib: Option<Range>,
    pub billing: Option<BillingBody>,
    /// Optional with an image (it replaces the image's CMD), required without; at most
    /// 64 KiB in all (each argument with its NUL).
    #[serde(default)]
    pub command: Vec<String>,
    /// Names `[A-Za-z_][A-Za-z0-9_]*`; at most 64 KiB in all (`NAME=value` and a NUL each).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub snapshot: Option<SnapshotOptions>,
    /// Taken as JSON so that a wrong type is refused with the field's name.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub image: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub data_disk_gib: Option<Value>,
    /// `"queue"` (default) or `"fail"`: end at once, `failed`, when nothing can take it
    /// now. JSON so that a wrong type names the field.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub on_unavailable: Option<Value>,
    /// Container ports to publish.
    #[serde(default)]
    #[schema(value_type = Option<Vec<u16>>)]
    pub ports: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<ReadinessDoc>)]
    pub readiness: Option<Value>,
}

/// One of a deployment's `specs`: where and how its instances may run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecBody {
    pub gpu: GpuBody,
    pub cpu_cores: Option<Range>,
    pub memory_gib: Option<Range>,
    pub billing: Option<BillingBody>,
}

/// A deployment's `template`: what its instances run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub snapshot: Option<SnapshotOptions>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub image: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub data_disk_gib: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<u16>>)]
    pub ports: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<ReadinessDoc>)]
    pub readiness: Option<Value>,
}

/// `POST /v1/deployments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBody {
    /// Unique among live deployments whatever its case; no leading or trailing dot.
    #[schema(max_length = 63, pattern = "^([A-Za-z0-9_-]([A-Za-z0-9._-]{0,61}[A-Za-z0-9_-])?)?$")]
    pub name: Option<String>,
    pub mode: String,
    pub replicas: Option<u32>,
    pub completions: Option<u32>,
    pub parallelism: Option<u32>,
    pub retry_limit: Option<u32>,
    #[schema(max_items = 16)]
    pub specs: Vec<SpecBody>,
    pub template: TemplateBody,
    pub account_id: Option<String>,
    /// Replica sets: scaling on load and on a schedule.
    #[serde(default)]
    pub autoscaling: Option<Value>,
    #[serde(default)]
    pub schedule: Option<Value>,
}

/// `PATCH /v1/deployments/{id}`: what it names is replaced, the rest stays.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = DeploymentChange)]
#[serde(deny_unknown_fields)]
pub struct DeploymentChangeBody {
    /// A replica set's count (autoscaling keeps it within its bounds).
    pub replicas: Option<u32>,
    #[schema(max_items = 16)]
    pub specs: Option<Vec<SpecBody>>,
    pub template: Option<TemplateBody>,
    /// A replica set's autoscaling, as at creation; `null` turns it off.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub autoscaling: Option<Option<Value>>,
    /// A replica set's schedule, as at creation (it applies from now on); `null` or `[]`
    /// clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub schedule: Option<Option<Value>>,
}

/// A key that is present, `null` included (`Some(None)`); an absent key is `None`.
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

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
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(HttpError::bad_request("invalid_request", self.0.join("; ")))
        }
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
