//! `/v1/snapshots`: the snapshots kept for instances and deployments (DESIGN §8).

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use crate::actors::ApiRequest;
use crate::core::snapshots::SnapshotRecord;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/snapshots", web::get().to(list)).route("/snapshots/{id}", web::get().to(show));
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

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    let list = visible(&state, caller).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(view).collect::<Vec<_>>()))
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let list = visible(&state, caller).await?;
    let record = list
        .iter()
        .find(|r| r.snapshot.id == *id)
        .ok_or_else(|| HttpError::not_found(format!("snapshot {id}")))?;
    Ok(HttpResponse::Ok().json(view(record)))
}
