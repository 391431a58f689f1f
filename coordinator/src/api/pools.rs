//! `/v1/pools`: per GPU model, list price, market price and availability.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::views;
use crate::actors::{ApiReply, ApiRequest};
use actix_web::{HttpResponse, web};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pools", web::get().to(list));
}

async fn list(state: web::Data<AppState>, _caller: Caller) -> Result<HttpResponse, HttpError> {
    match state.ask(ApiRequest::Pools).await? {
        ApiReply::Pools(pools) => {
            Ok(HttpResponse::Ok().json(pools.iter().map(views::pool).collect::<Vec<_>>()))
        }
        other => Err(HttpError::internal(format!("unexpected reply {other:?}"))),
    }
}
