//! The inbox (DESIGN §17): `GET /v1/messages[?unread=true]`, newest first, and
//! `POST /v1/messages/{id}/read`. An account sees only its own messages; the admin sees
//! the operator account's, or another account's with `?account_id=`.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use crate::core::notices::Message;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::get().to(list))
        .route("/messages/{id}/read", web::post().to(mark_read));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    #[serde(default)]
    unread: bool,
    account_id: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    account_id: Option<String>,
}

pub fn message_view(message: &Message) -> Value {
    json!({
        "id": message.id,
        "at": message.at,
        "subject": message.subject,
        "body": message.body,
        "instance_id": message.instance_id,
        "read": message.read,
        "mail": message.mail.as_str(),
    })
}

async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<InboxQuery>,
) -> Result<HttpResponse, HttpError> {
    let query = query.into_inner();
    let account = caller.account(query.account_id)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let store = state.store.clone();
    let unread = query.unread;
    let messages = super::blocking(move || store.messages(&account, unread, limit)).await?;
    Ok(HttpResponse::Ok().json(messages.iter().map(message_view).collect::<Vec<_>>()))
}

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
        Some(message) => Ok(HttpResponse::Ok().json(message_view(&message))),
        None => Err(HttpError::not_found(format!("no message {id}"))),
    }
}
