//! `GET /v1/accounts/{id}/ledger`: an account's ledger (docs/contracts.md#billing), by id or name,
//! oldest first and paged by entry id; its amounts sum to the balance.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, QueryError};
use super::{listing, views};
use crate::actors::ApiRequest;
use crate::core::listing::Page;
use crate::store::LedgerOrder;
use actix_web::{HttpResponse, get, web};
use gpuspot_api::{self as api, ErrorBody};
use gpuspot_common::AccountId;
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(ledger);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    /// At most this many, 1 to 100000 (default 10000). When more follow, the answer's
    /// `Link` header (`rel="next"`) gives the next page's URL.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    limit: Option<String>,
    /// The id of the last entry of the previous page: the ledger continues after it.
    #[param(value_type = Option<u64>)]
    after: Option<String>,
    /// `oldest` (default: oldest first) or `newest` (newest first, `after` going back).
    #[param(value_type = Option<String>)]
    order: Option<String>,
}

const LEDGER: listing::Bounds = listing::Bounds { default: 10_000, max: 100_000 };

impl LedgerQuery {
    fn order(&self) -> Result<LedgerOrder, HttpError> {
        let Some(text) = self.order.as_deref() else { return Ok(LedgerOrder::default()) };
        LedgerOrder::ALL.into_iter().find(|o| o.as_str() == text).ok_or_else(|| {
            let shown: String = text.chars().take(32).collect();
            QueryError::Invalid(format!("order: expected oldest or newest, not {shown:?}")).into()
        })
    }

    fn after(&self) -> Result<Option<u64>, HttpError> {
        let Some(text) = listing::after(self.after.as_deref())? else { return Ok(None) };
        text.parse().map(Some).map_err(|_| {
            let shown: String = text.chars().take(32).collect();
            let why = format!("after: expected a ledger entry id (a whole number), not {shown:?}");
            QueryError::Invalid(why).into()
        })
    }
}

/// The account's ledger, by id or name, oldest first (or newest first); its amounts sum to
/// the balance.
#[utoipa::path(
    tag = "accounts", operation_id = "get_ledger",
    params(("id" = String, Path, description = "Account id, or its name (an account token: its own)"), LedgerQuery),
    responses(
        (status = 200, description = "Ledger entries; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<api::LedgerEntry>),
        (status = 400, description = "Invalid body or query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name several accounts have (ambiguous_name, the admin's): give an id", body = ErrorBody),
    )
)]
#[get("/accounts/{id}/ledger")]
async fn ledger(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<LedgerQuery>,
) -> Result<HttpResponse, HttpError> {
    let (limit, after) = (listing::limit(query.limit.as_deref(), LEDGER)?, query.after()?);
    let order = query.order()?;
    let id = AccountId(id.into_inner());
    let account =
        state.ask(|reply| ApiRequest::GetAccount { scope: caller.scope, id, reply }).await?;
    let (store, id) = (state.store.clone(), account.account.id.clone());
    // One more than asked for says whether another page follows.
    let items = super::blocking(move || store.ledger(&id, order, after, limit + 1)).await?;
    let page = Page::of_one_more(items, limit);
    let path = format!("/v1/accounts/{}/ledger", account.account.id);
    let mut query = vec![("limit", limit.to_string())];
    if order != LedgerOrder::default() {
        query.push(("order", order.as_str().to_owned()));
    }
    Ok(listing::answer(&path, &query, &page, views::ledger_entry, |e| e.id.to_string()))
}
