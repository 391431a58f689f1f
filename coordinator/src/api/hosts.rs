//! `/v1/hosts`: the fleet with its units, GPUs and health, and deleting a host (admin
//! only).

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, InvalidBody};
use super::listing::{self, StateQuery};
use super::views;
use crate::actors::ApiRequest;
use crate::actors::messages::HostAction;
use actix_web::{HttpResponse, delete, get, post, web};
use gpuspot_api::{ErrorBody, Host};
use gpuspot_common::HostId;
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(delete)
        .service(cordon)
        .service(uncordon)
        .service(drain);
}

async fn maintain(
    state: &AppState,
    caller: Caller,
    id: String,
    action: HostAction,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let id = HostId(id);
    let host = state.ask(|reply| ApiRequest::HostMaintenance { id, action, reply }).await?;
    Ok(HttpResponse::Ok().json(views::host(&host)))
}

/// No new placements on the host. Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "cordon_host",
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[post("/hosts/{id}/cordon")]
async fn cordon(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    maintain(&state, caller, id.into_inner(), HostAction::Cordon).await
}

/// Placements on the host again. Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "uncordon_host",
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[post("/hosts/{id}/uncordon")]
async fn uncordon(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    maintain(&state, caller, id.into_inner(), HostAction::Uncordon).await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Drain)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    /// e.g. "10m": every instance ends by then at the latest.
    deadline: Option<String>,
}

/// Cordons the host and gives everything on it a `host_maintenance` notice. Admin only;
/// the body is optional.
#[utoipa::path(
    tag = "hosts", operation_id = "drain_host",
    request_body(content = Option<DrainBody>, content_type = "application/json"),
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 400, description = "Invalid body or deadline", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[post("/hosts/{id}/drain")]
async fn drain(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    // The body is optional: `POST …/drain` alone drains with each instance's own notice.
    let body: DrainBody = if body.iter().all(u8::is_ascii_whitespace) {
        DrainBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| InvalidBody(format!("drain body: {e}")))?
    };
    let deadline = match body.deadline.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(deadline)) => Some(deadline),
        Some(Err(e)) => {
            let message = format!("deadline: {e} (e.g. \"10m\")");
            return Err(InvalidBody(message).into());
        }
    };
    maintain(&state, caller, id.into_inner(), HostAction::Drain(deadline)).await
}

/// The hosts with their units, GPUs and health, in the order they joined: filtered by
/// state and paged on the server. Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "list_hosts", params(StateQuery),
    responses(
        (status = 200, description = "The hosts; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<Host>),
        (status = 400, description = "Invalid query (the parameter named)", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
    )
)]
#[get("/hosts")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StateQuery>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let wanted = query.listing(&crate::core::Host::SHOWN_STATES)?;
    let query = listing::repeated(&wanted);
    let hosts = state.ask(|reply| ApiRequest::ListHosts { listing: wanted, reply }).await?;
    Ok(listing::answer("/v1/hosts", &query, &hosts, views::host, |h| h.id.to_string()))
}

/// One host. Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "get_host",
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[get("/hosts/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let id = HostId(id.into_inner());
    let host = state.ask(|reply| ApiRequest::GetHost { id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::host(&host)))
}

/// Forgets the host and revokes its certificate; answers with the host as it
/// was, GPUs still naming the instances that were stopped. Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "delete_host",
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host as it was", body = Host),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    )
)]
#[delete("/hosts/{id}")]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let id = HostId(id.into_inner());
    let host = state.ask(|reply| ApiRequest::DeleteHost { id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::host(&host)))
}
