//! `/v1/snapshots`: the snapshots kept for instances and deployments (docs/contracts.md#snapshots).

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, NotFound};
use super::listing::{self, PageQuery};
use super::views;
use crate::actors::ApiRequest;
use crate::core::listing::{Listing, Page};
use crate::core::snapshots::SnapshotRecord;
use actix_web::{HttpResponse, get, web};
use gpuspot_api::{ErrorBody, Snapshot};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(show);
}

async fn visible(
    state: &AppState,
    caller: Caller,
    listing: Listing,
) -> Result<Page<SnapshotRecord>, HttpError> {
    state.ask(|reply| ApiRequest::ListSnapshots { scope: caller.scope, listing, reply }).await
}

/// The snapshots kept for the caller's instances and deployments, oldest first, paged on
/// the server.
#[utoipa::path(
    tag = "snapshots", operation_id = "list_snapshots", params(PageQuery),
    responses(
        (status = 200, description = "The snapshots; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<Snapshot>),
        (status = 400, description = "Invalid query (the parameter named)", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/snapshots")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, HttpError> {
    let wanted = query.listing()?;
    let query = listing::repeated(&wanted);
    let found = visible(&state, caller, wanted).await?;
    Ok(listing::answer("/v1/snapshots", &query, &found, views::snapshot, |r| r.snapshot.id.clone()))
}

#[utoipa::path(
    tag = "snapshots", operation_id = "get_snapshot",
    params(("id" = String, Path, description = "Snapshot id")),
    responses(
        (status = 200, description = "The snapshot", body = Snapshot),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such snapshot", body = ErrorBody),
    )
)]
#[get("/snapshots/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let found = visible(&state, caller, Listing::everything()).await?;
    let record = found
        .items
        .iter()
        .find(|r| r.snapshot.id == *id)
        .ok_or_else(|| NotFound::Snapshot(id.to_string()))?;
    Ok(HttpResponse::Ok().json(views::snapshot(record)))
}
