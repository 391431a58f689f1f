//! `/v1/pools`: per GPU model, list price, market price, pricing mode and availability.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, NotFound, QueryError};
use super::views;
use crate::actors::ApiRequest;
use actix_web::{HttpResponse, get, web};
use gpuspot_api::{ErrorBody, Pool, PricePoint};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(history);
}

/// Per GPU model: list price, market price, pricing mode and availability.
#[utoipa::path(
    tag = "pools", operation_id = "list_pools",
    responses(
        (status = 200, description = "The pools", body = Vec<Pool>),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/pools")]
async fn list(state: web::Data<AppState>, _caller: Caller) -> Result<HttpResponse, HttpError> {
    let pools = state.ask(|reply| ApiRequest::Pools { reply }).await?;
    Ok(HttpResponse::Ok().json(pools.iter().map(views::pool).collect::<Vec<_>>()))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// How far back, 1 to 8784 (default 48).
    #[param(minimum = 1, maximum = 8784)]
    hours: Option<u32>,
}

/// `GET /v1/pools/{model}/price-history?hours=N` (default 48): `[{"at","price"}]`, oldest first.
#[utoipa::path(
    tag = "pools", operation_id = "get_price_history",
    params(("model" = String, Path, description = "GPU model, e.g. `H100` (any case)"), HistoryQuery),
    responses(
        (status = 200, description = "Price points, oldest first", body = Vec<PricePoint>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
    )
)]
#[get("/pools/{model}/price-history")]
async fn history(
    state: web::Data<AppState>,
    _caller: Caller,
    model: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, HttpError> {
    let hours = query.hours.unwrap_or(48);
    if hours == 0 || hours > 24 * 366 {
        return Err(QueryError::Invalid("hours must be between 1 and 8784".to_owned()).into());
    }
    let wanted = model.into_inner();
    let pool = state
        .ask(|reply| ApiRequest::Pools { reply })
        .await?
        .into_iter()
        .find(|p| p.settings.model.eq_ignore_ascii_case(wanted.trim()))
        .ok_or_else(|| NotFound::Pool(wanted.clone()))?;
    let since = chrono::Utc::now() - chrono::Duration::hours(hours as i64);
    let store = state.store.clone();
    let model = pool.settings.model.clone();
    let points = super::blocking(move || store.price_history(&model, since)).await?;
    let body: Vec<_> = points.iter().map(|p| PricePoint { at: p.at, price: p.price }).collect();
    Ok(HttpResponse::Ok().json(body))
}
