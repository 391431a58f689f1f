//! `/v1/instances`: create (202), list, show, change, terminate, and the workload's output.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, WorkloadError};
use super::listing::{self, StateQuery};
use super::validation::instance as validate;
use super::views;
use crate::actors::ApiRequest;
use crate::core::model::InstanceState;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use gpuspot_api::requests::{InstanceBody as CreateBody, InstanceChangeBody as ChangeBody};
use gpuspot_api::{ErrorBody, Instance};
use gpuspot_common::InstanceId;
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(change)
        .service(terminate)
        .service(logs);
}

/// Queues an instance; it is placed when a host and the market allow.
#[utoipa::path(
    tag = "instances", operation_id = "create_instance", request_body = CreateBody,
    responses(
        (status = 202, description = "Accepted and queued", body = Instance),
        (status = 400, description = "Invalid body (every problem named) or unknown GPU model", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 402, description = "The account is overdue", body = ErrorBody),
        (status = 403, description = "Another account named, or a quota exceeded", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[post("/instances")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let account = caller.account(body.account_id.clone())?;
    let request = validate(body)?;
    state.policy.admits("image", request.image.as_deref()).map_err(WorkloadError::ImageRequired)?;
    let mut unknown = Vec::new();
    for model in &request.gpu.models {
        if !state.ask(|reply| ApiRequest::KnownModel { model: model.clone(), reply }).await? {
            unknown.push(model.clone());
        }
    }
    if unknown.len() == request.gpu.models.len() {
        return Err(WorkloadError::UnknownModels(unknown).into());
    }
    let instance =
        state.ask(|reply| ApiRequest::CreateInstance { account, request, reply }).await?;
    Ok(HttpResponse::Accepted().json(views::instance(&instance)))
}

/// The instances the caller sees, ended ones included, oldest first: filtered by state
/// and paged on the server.
#[utoipa::path(
    tag = "instances", operation_id = "list_instances", params(StateQuery),
    responses(
        (status = 200, description = "The instances; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<Instance>),
        (status = 400, description = "Invalid query (the parameter named)", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/instances")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StateQuery>,
) -> Result<HttpResponse, HttpError> {
    let known = InstanceState::ALL.map(InstanceState::as_str);
    let wanted = query.listing(&known)?;
    let (scope, query) = (caller.scope, listing::repeated(&wanted));
    let found =
        state.ask(|reply| ApiRequest::ListInstances { scope, listing: wanted, reply }).await?;
    Ok(listing::answer("/v1/instances", &query, &found, views::instance, |i| i.id.to_string()))
}

#[utoipa::path(
    tag = "instances", operation_id = "get_instance",
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance", body = Instance),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance (or another account's)", body = ErrorBody),
    )
)]
#[get("/instances/{id}")]
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

#[utoipa::path(
    tag = "instances", operation_id = "change_instance", request_body = ChangeBody,
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The changed instance", body = Instance),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Billing mode or size cannot change", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[patch("/instances/{id}")]
async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let body = body.into_inner();
    super::validation::instance_change(body.name.as_deref(), body.env.as_ref())?;
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

/// Terminates the instance; it stays visible as `terminated`.
#[utoipa::path(
    tag = "instances", operation_id = "terminate_instance",
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance, terminating", body = Instance),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
#[delete("/instances/{id}")]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// At most this many bytes from the end (default 1 MiB).
    tail_bytes: Option<u64>,
}

/// The workload's output (stdout and stderr), as text.
#[utoipa::path(
    tag = "instances", operation_id = "get_instance_logs",
    params(("id" = String, Path, description = "Instance id"), LogQuery),
    responses(
        (status = 200, description = "The output's tail", body = String, content_type = "text/plain"),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
#[get("/instances/{id}/logs")]
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
