//! `/v1/hosts`: the fleet with its units, GPUs and health, and deleting a host (admin
//! only).

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::views;
use crate::actors::ApiRequest;
use crate::actors::messages::HostAction;
use actix_web::{HttpResponse, web};
use gpuspot_common::HostId;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hosts", web::get().to(list))
        .route("/hosts/{id}", web::get().to(show))
        .route("/hosts/{id}", web::delete().to(delete))
        .route("/hosts/{id}/cordon", web::post().to(cordon))
        .route("/hosts/{id}/uncordon", web::post().to(uncordon))
        .route("/hosts/{id}/drain", web::post().to(drain));
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

/// No new placements on the host (DESIGN §19).
async fn cordon(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    maintain(&state, caller, id.into_inner(), HostAction::Cordon).await
}

async fn uncordon(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    maintain(&state, caller, id.into_inner(), HostAction::Uncordon).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    /// e.g. "10m": every instance ends by then at the latest.
    deadline: Option<String>,
}

/// Cordons the host and gives everything on it a `host_maintenance` notice.
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
        serde_json::from_slice(&body)
            .map_err(|e| HttpError::bad_request("invalid_request", format!("drain body: {e}")))?
    };
    let deadline = match body.deadline.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(deadline)) => Some(deadline),
        Some(Err(e)) => {
            let message = format!("deadline: {e} (e.g. \"10m\")");
            return Err(HttpError::bad_request("invalid_request", message));
        }
    };
    maintain(&state, caller, id.into_inner(), HostAction::Drain(deadline)).await
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let hosts = state.ask(|reply| ApiRequest::ListHosts { reply }).await?;
    Ok(HttpResponse::Ok().json(hosts.iter().map(views::host).collect::<Vec<_>>()))
}

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

/// Forgets the host and revokes its certificate (DESIGN §15); answers with the host as it
/// was, GPUs still naming the instances that were stopped.
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
