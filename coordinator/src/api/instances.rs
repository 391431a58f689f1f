//! `/v1/instances`: create (202), list, show, change, terminate, and the workload's output.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::validation::{InstanceBody as CreateBody, instance as validate};
use super::views;
use crate::actors::ApiRequest;
use actix_web::{HttpResponse, web};
use gpuspot_common::InstanceId;
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/instances", web::post().to(create))
        .route("/instances", web::get().to(list))
        .route("/instances/{id}", web::get().to(show))
        .route("/instances/{id}", web::patch().to(change))
        .route("/instances/{id}", web::delete().to(terminate))
        .route("/instances/{id}/logs", web::get().to(logs));
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let account = caller.account(body.account_id.clone())?;
    let request = validate(body)?;
    state
        .policy
        .admits("image", request.image.as_deref())
        .map_err(|m| HttpError::bad_request("image_required", m))?;
    let mut unknown = Vec::new();
    for model in &request.gpu.models {
        if !state.ask(|reply| ApiRequest::KnownModel { model: model.clone(), reply }).await? {
            unknown.push(model.clone());
        }
    }
    if unknown.len() == request.gpu.models.len() {
        return Err(HttpError::bad_request(
            "unknown_model",
            format!("no pool or host offers GPU model {}; see GET /v1/pools", unknown.join(", ")),
        ));
    }
    let instance =
        state.ask(|reply| ApiRequest::CreateInstance { account, request, reply }).await?;
    Ok(HttpResponse::Accepted().json(views::instance(&instance)))
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    let list = state.ask(|reply| ApiRequest::ListInstances { scope: caller.scope, reply }).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(views::instance).collect::<Vec<_>>()))
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let instance =
        state.ask(|reply| ApiRequest::GetInstance { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::instance(&instance)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    name: Option<String>,
    env: Option<BTreeMap<String, String>>,
    billing: Option<serde_json::Value>,
    gpu: Option<serde_json::Value>,
    cpu_cores: Option<serde_json::Value>,
    memory_gib: Option<serde_json::Value>,
}

async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let body = body.into_inner();
    let resize = body.billing.is_some()
        || body.gpu.is_some()
        || body.cpu_cores.is_some()
        || body.memory_gib.is_some();
    let instance = state
        .ask(|reply| ApiRequest::ChangeInstance {
            scope: caller.scope,
            id,
            name: body.name,
            env: body.env,
            resize,
            reply,
        })
        .await?;
    Ok(HttpResponse::Ok().json(views::instance(&instance)))
}

async fn terminate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let instance =
        state.ask(|reply| ApiRequest::DeleteInstance { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::instance(&instance)))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    tail_bytes: Option<u64>,
}

async fn logs(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    state
        .ask(|reply| ApiRequest::GetInstance { scope: caller.scope, id: id.clone(), reply })
        .await?;
    let max = query.tail_bytes.unwrap_or(1 << 20);
    let logs = state.logs.clone();
    let bytes = super::blocking(move || logs.read_tail(&id, max)).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(bytes))
}
