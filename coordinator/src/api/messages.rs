//! The inbox (docs/contracts.md#messages): `GET /v1/messages[?unread=true]`, newest first, and
//! `POST /v1/messages/{id}/read`. An account sees only its own messages; the admin sees
//! the operator account's, or another account's with `?account_id=`.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, NotFound};
use super::{listing, views};
use crate::actors::Failure;
use crate::core::listing::Page;
use actix_web::{HttpResponse, get, post, web};
use gpuspot_api::{self as api, ErrorBody};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(mark_read);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    /// Only unread messages.
    #[serde(default)]
    unread: bool,
    /// Admin only: another account's inbox.
    account_id: Option<String>,
    /// At most this many, 1 to 1000 (default 100). When more follow, the answer's `Link`
    /// header (`rel="next"`) gives the next page's URL.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The id of the last message of the previous page: the inbox continues with older
    /// ones.
    after: Option<String>,
}

const INBOX: listing::Bounds = listing::Bounds { default: 100, max: 1000 };

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    /// Admin only: another account's message.
    account_id: Option<String>,
}

/// The inbox, newest first, paged on the server.
#[utoipa::path(
    tag = "messages", operation_id = "list_messages", params(InboxQuery),
    responses(
        (status = 200, description = "The messages; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<api::Message>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "An account token named another account", body = ErrorBody),
    )
)]
#[get("/messages")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, HttpError> {
    let query = query.into_inner();
    let limit = listing::limit(query.limit.as_deref(), INBOX)?;
    let after = listing::after(query.after.as_deref())?;
    let mut repeated = vec![("limit", limit.to_string())];
    if query.unread {
        repeated.push(("unread", "true".to_owned()));
    }
    if let Some(named) = &query.account_id {
        repeated.push(("account_id", named.clone()));
    }
    let account = caller.account(query.account_id)?;
    let (store, unread, cursor) = (state.store.clone(), query.unread, after.clone());
    // One more than asked for says whether another page follows.
    let found =
        super::blocking(move || store.messages(&account, unread, cursor.as_deref(), limit + 1));
    let Some(items) = found.await? else {
        return Err(Failure::UnknownCursor(after.unwrap_or_default()).into());
    };
    let page = Page::of_one_more(items, limit);
    Ok(listing::answer("/v1/messages", &repeated, &page, views::message, |m| m.id.clone()))
}

#[utoipa::path(
    tag = "messages", operation_id = "mark_message_read",
    params(("id" = String, Path, description = "Message id"), ReadQuery),
    responses(
        (status = 200, description = "The message, read", body = api::Message),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "An account token named another account", body = ErrorBody),
        (status = 404, description = "No such message", body = ErrorBody),
    )
)]
#[post("/messages/{id}/read")]
async fn mark_read(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ReadQuery>,
) -> Result<HttpResponse, HttpError> {
    let account = caller.account(query.into_inner().account_id)?;
    let (store, id) = (state.store.clone(), id.into_inner());
    let wanted = id.clone();
    match super::blocking(move || store.mark_message_read(&account, &wanted)).await? {
        Some(message) => Ok(HttpResponse::Ok().json(views::message(&message))),
        None => Err(NotFound::Message(id.to_string()).into()),
    }
}
