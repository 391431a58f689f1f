//! `/v1/accounts`: accounts (created by the admin, each with its API token), payments and
//! the ledger. An account sees only itself; another account's id answers 404.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use crate::actors::{ApiReply, ApiRequest};
use crate::core::billing::{Account, LedgerEntry};
use crate::directory::{new_token, token_hash};
use actix_web::{HttpResponse, web};
use gpuspot_common::{AccountId, Money};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::post().to(create))
        .route("/accounts", web::get().to(list))
        .route("/accounts/{id}", web::get().to(show))
        .route("/accounts/{id}/payments", web::post().to(pay))
        .route("/accounts/{id}/ledger", web::get().to(ledger));
}

pub fn view(account: &Account) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "balance": account.balance,
        "overdue": account.is_overdue(),
        "overdue_since": account.overdue_since,
        "overdue_deadline": account.overdue_deadline,
        "webhook_url": account.webhook_url,
        "created_at": account.created_at,
    })
}

pub fn entry_view(entry: &LedgerEntry) -> Value {
    json!({
        "id": entry.id,
        "at": entry.at,
        "kind": entry.kind,
        "amount": entry.amount,
        "instance_id": entry.instance_id,
        "balance_after": entry.balance_after,
    })
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
    webhook_url: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let body = body.into_inner();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(HttpError::bad_request("invalid_request", "name must be 1 to 128 characters"));
    }
    if let Some(url) = &body.webhook_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(HttpError::bad_request("invalid_request", "webhook_url must be http(s)://…"));
    }
    let token = new_token();
    let request = ApiRequest::CreateAccount {
        name,
        token_hash: token_hash(&token),
        webhook_url: body.webhook_url,
    };
    let ApiReply::Account(account) = state.ask(request).await? else {
        return Err(HttpError::internal("unexpected reply"));
    };
    state.directory.add(&account);
    let mut body = view(&account);
    body["token"] = json!(token);
    Ok(HttpResponse::Created().json(body))
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let ApiReply::Accounts(accounts) = state.ask(ApiRequest::ListAccounts).await? else {
        return Err(HttpError::internal("unexpected reply"));
    };
    Ok(HttpResponse::Ok().json(accounts.iter().map(view).collect::<Vec<_>>()))
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let request = ApiRequest::GetAccount { scope: caller.scope, id: AccountId(id.into_inner()) };
    let ApiReply::Account(account) = state.ask(request).await? else {
        return Err(HttpError::internal("unexpected reply"));
    };
    Ok(HttpResponse::Ok().json(view(&account)))
}

#[derive(Debug, Deserialize)]
struct PaymentBody {
    amount: String,
}

async fn pay(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<PaymentBody>,
) -> Result<HttpResponse, HttpError> {
    let amount: Money = body
        .amount
        .parse()
        .map_err(|e| HttpError::bad_request("invalid_request", format!("amount: {e}")))?;
    let request = ApiRequest::Pay { scope: caller.scope, id: AccountId(id.into_inner()), amount };
    let ApiReply::Payment(entry, account) = state.ask(request).await? else {
        return Err(HttpError::internal("unexpected reply"));
    };
    Ok(HttpResponse::Created()
        .json(json!({ "entry": entry_view(&entry), "account": view(&account) })))
}

#[derive(Debug, Deserialize)]
struct LedgerQuery {
    limit: Option<usize>,
}

async fn ledger(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<LedgerQuery>,
) -> Result<HttpResponse, HttpError> {
    let id = AccountId(id.into_inner());
    state.ask(ApiRequest::GetAccount { scope: caller.scope, id: id.clone() }).await?;
    let limit = query.limit.unwrap_or(10_000).clamp(1, 100_000);
    let store = state.store.clone();
    let entries = web::block(move || store.ledger(&id, limit))
        .await
        .map_err(|e| HttpError::internal(e.to_string()))?
        .map_err(|e| HttpError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(entries.iter().map(entry_view).collect::<Vec<_>>()))
}
