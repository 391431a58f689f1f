//! `/v1/hosts`: the fleet with its units, GPUs and health, and deleting a host (admin
//! only).

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::views;
use crate::actors::ApiRequest;
use actix_web::{HttpResponse, web};
use gpuspot_common::HostId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hosts", web::get().to(list))
        .route("/hosts/{id}", web::get().to(show))
        .route("/hosts/{id}", web::delete().to(delete));
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
