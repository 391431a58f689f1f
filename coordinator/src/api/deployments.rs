//! `/v1/deployments`: ReplicaSet, Job and Container deployments with ordered specs
//! (DESIGN §7, §11), their instances, scaling, rebuild and endpoints.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::instances::{BillingBody, GpuBody, check_command, parse_billing, parse_guest};
use super::views;
use crate::actors::messages::{DeploymentRequest, DeploymentView};
use crate::actors::{ApiReply, ApiRequest};
use crate::core::deployment::{DeploymentSpec, Mode, Template};
use crate::core::deployments::NewDeployment;
use crate::core::model::{GpuRequest, Range, SnapshotOptions};
use actix_web::{HttpResponse, web};
use gpuspot_common::DeploymentId;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deployments", web::post().to(create))
        .route("/deployments", web::get().to(list))
        .route("/deployments/{id}", web::get().to(show))
        .route("/deployments/{id}", web::patch().to(change))
        .route("/deployments/{id}", web::delete().to(delete))
        .route("/deployments/{id}/rebuild", web::post().to(rebuild))
        .route("/deployments/{id}/endpoints", web::get().to(endpoints));
}

#[derive(Debug, Deserialize)]
pub struct SpecBody {
    gpu: GpuBody,
    cpu_cores: Option<Range>,
    memory_gib: Option<Range>,
    billing: Option<BillingBody>,
}

#[derive(Debug, Deserialize)]
pub struct TemplateBody {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    snapshot: Option<SnapshotOptions>,
    #[serde(default)]
    image: Option<Value>,
    #[serde(default)]
    data_disk_gib: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    mode: String,
    replicas: Option<u32>,
    completions: Option<u32>,
    parallelism: Option<u32>,
    retry_limit: Option<u32>,
    specs: Vec<SpecBody>,
    template: TemplateBody,
    account_id: Option<String>,
}

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::bad_request("invalid_request", message)
}

fn parse_spec(index: usize, body: &SpecBody) -> Result<DeploymentSpec, HttpError> {
    let at = |m: &str| bad(format!("specs[{index}]: {m}"));
    let count = body.gpu.count.unwrap_or(1);
    if count == 0 {
        return Err(at("gpu.count must be at least 1"));
    }
    let models: Vec<String> = body.gpu.models.iter().map(|m| m.trim().to_owned()).collect();
    if models.is_empty() || models.iter().any(String::is_empty) {
        return Err(at("gpu.models must list at least one GPU model"));
    }
    let (cpu_cores, memory_gib) =
        (body.cpu_cores.unwrap_or_default(), body.memory_gib.unwrap_or_default());
    if !cpu_cores.is_valid() || !memory_gib.is_valid() {
        return Err(at("a range's min must not exceed its max"));
    }
    let billing = parse_billing(body.billing.as_ref()).map_err(|e| at(&e.message))?;
    Ok(DeploymentSpec { gpu: GpuRequest { models, count }, cpu_cores, memory_gib, billing })
}

fn parse_template(body: TemplateBody) -> Result<Template, HttpError> {
    let mut problems = Vec::new();
    let (image, data_disk_gib) =
        parse_guest("template.", body.image.as_ref(), body.data_disk_gib.as_ref(), &mut problems);
    problems.extend(check_command("template.command", &body.command, image.as_deref()));
    if !problems.is_empty() {
        return Err(bad(problems.join("; ")));
    }
    Ok(Template {
        command: body.command,
        env: body.env,
        snapshot: body.snapshot.unwrap_or_default(),
        image,
        data_disk_gib,
    })
}

/// `[policy] process_workloads = false` refuses a template without an image.
fn admit(state: &AppState, template: &Template) -> Result<(), HttpError> {
    state
        .policy
        .admits("template.image", template.image.as_deref())
        .map_err(|m| HttpError::bad_request("image_required", m))
}

fn parse_mode(mode: &str) -> Result<Mode, HttpError> {
    match mode {
        "replicaset" => Ok(Mode::Replicaset),
        "job" => Ok(Mode::Job),
        "container" => Ok(Mode::Container),
        other => Err(bad(format!("mode must be replicaset, job or container, not {other:?}"))),
    }
}

pub fn validate(body: CreateBody) -> Result<NewDeployment, HttpError> {
    let mode = parse_mode(&body.mode)?;
    if body.specs.is_empty() {
        return Err(bad("specs must list at least one spec (tried in order)"));
    }
    let specs = body
        .specs
        .iter()
        .enumerate()
        .map(|(i, s)| parse_spec(i, s))
        .collect::<Result<Vec<_>, _>>()?;
    let template = parse_template(body.template)?;
    let (replicas, completions, parallelism, retry_limit) = match mode {
        Mode::Replicaset => (body.replicas.unwrap_or(1), 0, 0, 0),
        Mode::Job => (
            0,
            body.completions.unwrap_or(1),
            body.parallelism.unwrap_or(1),
            body.retry_limit.unwrap_or(3),
        ),
        Mode::Container => (0, 1, 1, body.retry_limit.unwrap_or(0)),
    };
    if mode == Mode::Job && (completions == 0 || parallelism == 0) {
        return Err(bad("a job needs completions and parallelism of at least 1"));
    }
    if replicas > 10_000 || parallelism > 10_000 {
        return Err(bad("at most 10000 replicas or parallel runs"));
    }
    let name = body.name.unwrap_or_default();
    Ok(NewDeployment {
        name,
        mode,
        replicas,
        completions,
        parallelism,
        retry_limit,
        specs,
        template,
    })
}

pub fn view(v: &DeploymentView) -> Value {
    let d = &v.deployment;
    let mut body = json!({
        "id": d.id, "name": d.name, "account_id": d.account_id, "mode": d.mode,
        "replicas": d.replicas, "completions": d.completions, "parallelism": d.parallelism,
        "retry_limit": d.retry_limit, "succeeded": d.succeeded, "failed": d.failed,
        "restarts": d.restarts,
        "state": d.state, "reason": d.reason, "specs": d.specs, "template": d.template,
        "created_at": d.created_at,
        "instances": v.instances.iter().map(views::instance).collect::<Vec<_>>(),
    });
    if let Some(moved) = v.moved {
        body["moved"] = json!(moved);
    }
    body
}

async fn ask_view(
    state: &AppState,
    request: DeploymentRequest,
) -> Result<DeploymentView, HttpError> {
    match state.ask(ApiRequest::Deployment(request)).await? {
        ApiReply::Deployment(v) => Ok(*v),
        other => Err(HttpError::unexpected(other)),
    }
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let account = caller.account(body.account_id.clone())?;
    let new = validate(body)?;
    admit(&state, &new.template)?;
    let mut known = false;
    for model in new.specs.iter().flat_map(|s| s.gpu.models.iter()) {
        known |= matches!(
            state.ask(ApiRequest::KnownModel { model: model.clone() }).await?,
            ApiReply::Known(true)
        );
    }
    if !known {
        return Err(HttpError::bad_request(
            "unknown_model",
            "no pool or host offers any GPU model of these specs",
        ));
    }
    let v = ask_view(&state, DeploymentRequest::Create { account, new }).await?;
    Ok(HttpResponse::Accepted().json(view(&v)))
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    match state.ask(ApiRequest::Deployment(DeploymentRequest::List { scope: caller.scope })).await?
    {
        ApiReply::Deployments(list) => {
            Ok(HttpResponse::Ok().json(list.iter().map(view).collect::<Vec<_>>()))
        }
        other => Err(HttpError::unexpected(other)),
    }
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let v = ask_view(
        &state,
        DeploymentRequest::Get { scope: caller.scope, id: DeploymentId(id.into_inner()) },
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&v)))
}

#[derive(Debug, Deserialize)]
struct ChangeBody {
    replicas: Option<u32>,
    specs: Option<Vec<SpecBody>>,
    template: Option<TemplateBody>,
}

async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let specs = match &body.specs {
        Some(specs) if specs.is_empty() => return Err(bad("specs must not be empty")),
        Some(specs) => Some(
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| parse_spec(i, s))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let template = body.template.map(parse_template).transpose()?;
    if let Some(template) = &template {
        admit(&state, template)?;
    }
    let request = DeploymentRequest::Change {
        scope: caller.scope,
        id: DeploymentId(id.into_inner()),
        replicas: body.replicas,
        specs,
        template,
    };
    Ok(HttpResponse::Ok().json(view(&ask_view(&state, request).await?)))
}

async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let request =
        DeploymentRequest::Delete { scope: caller.scope, id: DeploymentId(id.into_inner()) };
    Ok(HttpResponse::Ok().json(view(&ask_view(&state, request).await?)))
}

async fn rebuild(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let request =
        DeploymentRequest::Rebuild { scope: caller.scope, id: DeploymentId(id.into_inner()) };
    Ok(HttpResponse::Ok().json(view(&ask_view(&state, request).await?)))
}

async fn endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let request =
        DeploymentRequest::Endpoints { scope: caller.scope, id: DeploymentId(id.into_inner()) };
    match state.ask(ApiRequest::Deployment(request)).await? {
        ApiReply::Endpoints(list) => Ok(HttpResponse::Ok().json(
            list.iter()
                .map(|(i, hostname)| json!({
                    "instance_id": i.id, "host_id": i.host_id, "hostname": hostname,
                    "gpu_uuids": i.gpu_uuids, "spec_index": i.spec_index, "billing": i.request.billing,
                    "started_at": i.started_at,
                }))
                .collect::<Vec<_>>(),
        )),
        other => Err(HttpError::unexpected(other)),
    }
}
