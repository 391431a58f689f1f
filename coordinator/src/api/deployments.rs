//! `/v1/deployments`: ReplicaSet, Job and Container deployments with ordered specs
//! (DESIGN §7, §11), their instances, scaling, rebuild and endpoints.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::validation::{self, deployment as validate};
use super::validation::{DeploymentBody as CreateBody, SpecBody, TemplateBody};
use super::views;
use crate::actors::messages::{DeploymentRequest, DeploymentView, Endpoint};
use crate::actors::{ApiRequest, Reply};
use crate::core::deployment::Template;
use actix_web::{HttpResponse, web};
use gpuspot_common::DeploymentId;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deployments", web::post().to(create))
        .route("/deployments", web::get().to(list))
        .route("/deployments/{id}", web::get().to(show))
        .route("/deployments/{id}", web::patch().to(change))
        .route("/deployments/{id}", web::delete().to(delete))
        .route("/deployments/{id}/rebuild", web::post().to(rebuild))
        .route("/deployments/{id}/endpoints", web::get().to(endpoints));
}

/// `[policy] process_workloads = false` refuses a template without an image.
fn admit(state: &AppState, template: &Template) -> Result<(), HttpError> {
    state
        .policy
        .admits("template.image", template.image.as_deref())
        .map_err(|m| HttpError::bad_request("image_required", m))
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
        "autoscaling": d.autoscaling, "schedule": d.schedule,
        "instances": v.instances.iter().map(views::instance).collect::<Vec<_>>(),
    });
    if let Some(moved) = v.moved {
        body["moved"] = json!(moved);
    }
    body
}

/// [`AppState::ask`] for a deployment request, which `request` builds around its reply.
async fn ask<T: 'static>(
    state: &AppState,
    request: impl FnOnce(Reply<T>) -> DeploymentRequest,
) -> Result<T, HttpError> {
    state.ask(|reply| ApiRequest::Deployment(request(reply))).await
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
        known |= state.ask(|reply| ApiRequest::KnownModel { model: model.clone(), reply }).await?;
    }
    if !known {
        return Err(HttpError::bad_request(
            "unknown_model",
            "no pool or host offers any GPU model of these specs",
        ));
    }
    let v = ask(&state, |reply| DeploymentRequest::Create { account, new, reply }).await?;
    Ok(HttpResponse::Accepted().json(view(&v)))
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    let list = ask(&state, |reply| DeploymentRequest::List { scope: caller.scope, reply }).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(view).collect::<Vec<_>>()))
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let v = ask(&state, |reply| DeploymentRequest::Get { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(view(&v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let (specs, template) = validation::deployment_change(body.specs.as_deref(), body.template)?;
    if let Some(template) = &template {
        admit(&state, template)?;
    }
    let request = |reply| DeploymentRequest::Change {
        scope: caller.scope,
        id: DeploymentId(id.into_inner()),
        replicas: body.replicas,
        specs,
        template,
        reply,
    };
    Ok(HttpResponse::Ok().json(view(&ask(&state, request).await?)))
}

async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let request = |reply| DeploymentRequest::Delete { scope: caller.scope, id, reply };
    Ok(HttpResponse::Ok().json(view(&ask(&state, request).await?)))
}

async fn rebuild(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let request = |reply| DeploymentRequest::Rebuild { scope: caller.scope, id, reply };
    Ok(HttpResponse::Ok().json(view(&ask(&state, request).await?)))
}

async fn endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let list = ask(&state, |reply| DeploymentRequest::Endpoints { scope: caller.scope, id, reply })
        .await?;
    Ok(HttpResponse::Ok().json(list.iter().map(endpoint_view).collect::<Vec<_>>()))
}

fn endpoint_view(Endpoint { instance: i, hostname, info }: &Endpoint) -> Value {
    json!({
        "instance_id": i.id, "host_id": i.host_id(), "hostname": hostname,
        "address": info.address, "ready": info.ready, "draining": info.draining,
        "gpu_uuids": i.gpu_uuids(), "spec_index": i.spec_index(), "billing": i.request.billing,
        "started_at": i.started_at(),
    })
}
