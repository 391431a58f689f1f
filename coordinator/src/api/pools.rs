//! `/v1/pools`: per GPU model, list price, market price, pricing mode and availability.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::views;
use crate::actors::ApiRequest;
use actix_web::{HttpResponse, web};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pools", web::get().to(list))
        .route("/pools/{model}/price-history", web::get().to(history));
}

async fn list(state: web::Data<AppState>, _caller: Caller) -> Result<HttpResponse, HttpError> {
    let pools = state.ask(|reply| ApiRequest::Pools { reply }).await?;
    Ok(HttpResponse::Ok().json(pools.iter().map(pool_view).collect::<Vec<_>>()))
}

/// [`views::pool`] and how the pool prices its running instances (`"market"` or
/// `"fixed_at_start"`, DESIGN §4).
fn pool_view(pool: &crate::actors::messages::PoolView) -> serde_json::Value {
    let mut view = views::pool(pool);
    view["pricing"] = pool.settings.pricing.as_str().into();
    view
}

#[derive(Debug, serde::Deserialize)]
struct HistoryQuery {
    hours: Option<u32>,
}

/// `GET /v1/pools/{model}/price-history?hours=N` (default 48): `[{"at","price"}]`, oldest first.
async fn history(
    state: web::Data<AppState>,
    _caller: Caller,
    model: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, HttpError> {
    let hours = query.hours.unwrap_or(48);
    if hours == 0 || hours > 24 * 366 {
        return Err(HttpError::bad_request("invalid_query", "hours must be between 1 and 8784"));
    }
    let wanted = model.into_inner();
    let pool = state
        .ask(|reply| ApiRequest::Pools { reply })
        .await?
        .into_iter()
        .find(|p| p.settings.model.eq_ignore_ascii_case(wanted.trim()))
        .ok_or_else(|| HttpError::not_found(format!("pool {wanted:?} (see GET /v1/pools)")))?;
    let since = chrono::Utc::now() - chrono::Duration::hours(hours as i64);
    let store = state.store.clone();
    let model = pool.settings.model.clone();
    let points = super::blocking(move || store.price_history(&model, since)).await?;
    let body: Vec<_> =
        points.iter().map(|p| serde_json::json!({ "at": p.at, "price": p.price })).collect();
    Ok(HttpResponse::Ok().json(body))
}
