//! `/v1/snapshots`: the snapshots kept for instances and deployments (DESIGN §8).

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::schemas::{ErrorBody, Snapshot};
use crate::actors::ApiRequest;
use crate::core::snapshots::SnapshotRecord;
use actix_web::{HttpResponse, get, web};
use serde_json::{Value, json};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(show);
}

fn view(record: &SnapshotRecord) -> Value {
    json!({
        "id": record.snapshot.id,
        "size": record.snapshot.size,
        "sha256": record.snapshot.sha256,
        "instance_id": record.instance_id,
        "deployment_id": record.deployment_id,
        "account_id": record.account_id,
        "created_at": record.created_at,
    })
}

async fn visible(state: &AppState, caller: Caller) -> Result<Vec<SnapshotRecord>, HttpError> {
    state.ask(|reply| ApiRequest::ListSnapshots { scope: caller.scope, reply }).await
}

/// The snapshots kept for the caller's instances and deployments.
#[utoipa::path(
    tag = "snapshots", operation_id = "list_snapshots",
    responses(
        (status = 200, description = "The snapshots", body = Vec<Snapshot>),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/snapshots")]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    let found = visible(&state, caller).await?;
    Ok(HttpResponse::Ok().json(found.iter().map(view).collect::<Vec<_>>()))
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
    let found = visible(&state, caller).await?;
    let record = found
        .iter()
        .find(|r| r.snapshot.id == *id)
        .ok_or_else(|| HttpError::not_found(format!("snapshot {id}")))?;
    Ok(HttpResponse::Ok().json(view(record)))
}
