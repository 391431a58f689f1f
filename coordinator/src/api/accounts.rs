//! `/v1/accounts`: accounts (created by the admin, each with its API token), payments (the
//! admin's alone, docs/contracts.md#tokens), token rotation, disabling, quotas (the admin's,
//! docs/contracts.md#failures-and-quotas), the email messages are mailed to (the account's own,
//! docs/contracts.md#messages) and `whoami`; the ledger is in [`super::ledger`]. An account sees
//! only itself; another account's id answers 404.

use super::AppState;
use super::auth::Caller;
use super::error::{AccountInputError, HttpError};
use super::listing::{self, PageQuery};
use super::views;
use crate::actors::messages::{AccountView, Payment};
use crate::actors::{AccountChange, ApiRequest, Scope};
use crate::core::accounts::NewAccount;
use crate::core::quotas::{QuotaChange, QuotaUpdate};
use crate::directory::{new_token, token_hash};
use actix_web::{HttpResponse, get, patch, post, web};
use gpuspot_api::Role;
use gpuspot_api::requests::PaymentBody;
use gpuspot_api::requests::{AccountChangeBody as ChangeBody, NewAccountBody as CreateBody};
use gpuspot_api::{Account, AccountWithToken, ErrorBody, PaymentReceipt, Whoami};
use gpuspot_common::{AccountId, Money};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(whoami)
        .service(show)
        .service(change)
        .service(rotate_token)
        .service(pay);
}

/// The account and its token, shown this once.
fn with_token(account: &AccountView, token: String) -> AccountWithToken {
    AccountWithToken { account: views::account(account), token }
}

/// An address lettre can send to, as written.
fn email_address(text: &str) -> Result<String, HttpError> {
    let text = text.trim();
    text.parse::<lettre::Address>().map(|_| text.to_owned()).map_err(|e| {
        AccountInputError::Email { text: text.to_owned(), reason: e.to_string() }.into()
    })
}

/// Where an account's events are POSTed: an http(s) URL of at most 2048 bytes.
fn webhook_url(text: &str) -> Result<String, HttpError> {
    let text = text.trim();
    let scheme = text.starts_with("http://") || text.starts_with("https://");
    if !scheme || text.len() > 2048 || reqwest::Url::parse(text).is_err() {
        return Err(AccountInputError::Webhook.into());
    }
    Ok(text.to_owned())
}

/// Creates an account and its API token (shown this once). Admin only.
#[utoipa::path(
    tag = "accounts", operation_id = "create_account",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The account and its token", body = AccountWithToken),
        (status = 400, description = "Invalid body or query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[post("/accounts")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let body = body.into_inner();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(AccountInputError::Name.into());
    }
    let webhook_url = body.webhook_url.as_deref().map(webhook_url).transpose()?;
    let email = body.email.as_deref().map(email_address).transpose()?;
    let token = new_token();
    let new = NewAccount { name, token_hash: token_hash(&token), webhook_url, email };
    let account = state.ask(|reply| ApiRequest::CreateAccount { new, reply }).await?;
    state.directory.add(&account.account);
    Ok(HttpResponse::Created().json(with_token(&account, token)))
}

/// The accounts, oldest first, paged on the server. Admin only.
#[utoipa::path(
    tag = "accounts", operation_id = "list_accounts", params(PageQuery),
    responses(
        (status = 200, description = "The accounts; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<Account>),
        (status = 400, description = "Invalid query (the parameter named)", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
    )
)]
#[get("/accounts")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let wanted = query.listing()?;
    let query = listing::repeated(&wanted);
    let found = state.ask(|reply| ApiRequest::ListAccounts { listing: wanted, reply }).await?;
    Ok(listing::answer("/v1/accounts", &query, &found, views::account, |a| {
        a.account.id.to_string()
    }))
}

/// The token's own account (the operator account, which the admin acts for, with
/// `role: admin`), with its quota and usage.
#[utoipa::path(
    tag = "accounts", operation_id = "whoami",
    responses(
        (status = 200, description = "Who the token is", body = Whoami),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/whoami")]
async fn whoami(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    let role = match caller.scope {
        Scope::Admin => Role::Admin,
        Scope::Account(_) => Role::Account,
    };
    let id = caller.account(None)?;
    let account =
        state.ask(|reply| ApiRequest::GetAccount { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(Whoami { account: views::account(&account), role }))
}

/// An account, by id or name; an account token sees only its own.
#[utoipa::path(
    tag = "accounts", operation_id = "get_account",
    params(("id" = String, Path, description = "Account id, or its name (an account token: its own)")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name several accounts have (ambiguous_name, the admin's): give an id", body = ErrorBody),
    )
)]
#[get("/accounts/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = AccountId(id.into_inner());
    let account =
        state.ask(|reply| ApiRequest::GetAccount { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::account(&account)))
}

/// The most one payment may add: 1,000,000,000 units.
const MAX_PAYMENT: Money = Money(1_000_000_000 * gpuspot_common::money::MICROS_PER_UNIT);

/// `^[0-9]+(\.[0-9]{1,6})?$`, above zero, at most [`MAX_PAYMENT`].
fn payment_amount(text: &str) -> Result<Money, HttpError> {
    let invalid =
        |why: &'static str| HttpError::from(AccountInputError::Amount { text: text.into(), why });
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(invalid("expected a decimal like \"10.00\" with at most 6 decimals"));
    }
    let amount: Money = text.parse().map_err(|_| invalid("out of range"))?;
    if amount <= Money::ZERO {
        return Err(invalid("must be more than zero"));
    }
    if amount > MAX_PAYMENT {
        return Err(invalid("at most 1000000000 per payment"));
    }
    Ok(amount)
}

/// Adds a payment to the ledger. Admin only.
#[utoipa::path(
    tag = "accounts", operation_id = "create_payment",
    request_body = PaymentBody,
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 201, description = "The ledger entry and the account", body = PaymentReceipt),
        (status = 400, description = "Invalid body or query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name several accounts have (ambiguous_name, the admin's): give an id", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[post("/accounts/{id}/payments")]
async fn pay(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<PaymentBody>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let amount = payment_amount(&body.amount)?;
    let id = AccountId(id.into_inner());
    let Payment { entry, account } =
        state.ask(|reply| ApiRequest::Pay { scope: caller.scope, id, amount, reply }).await?;
    let receipt =
        PaymentReceipt { entry: views::ledger_entry(&entry), account: views::account(&account) };
    Ok(HttpResponse::Created().json(receipt))
}

/// A new API token; the old one stops working at once.
#[utoipa::path(
    tag = "accounts", operation_id = "rotate_token",
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 201, description = "The account and its new token", body = AccountWithToken),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name several accounts have (ambiguous_name, the admin's): give an id", body = ErrorBody),
    )
)]
#[post("/accounts/{id}/token")]
async fn rotate_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let token = new_token();
    let account = state
        .ask(|reply| ApiRequest::RotateToken {
            scope: caller.scope,
            id: AccountId(id.into_inner()),
            token_hash: token_hash(&token),
            reply,
        })
        .await?;
    state.directory.set(&account.account);
    Ok(HttpResponse::Created().json(with_token(&account, token)))
}

/// A quota change as the core applies it.
fn quota_change(asked: gpuspot_api::requests::QuotaChange) -> QuotaChange {
    QuotaChange { max_gpus: asked.max_gpus, max_instances: asked.max_instances }
}

/// Changes `email` (the account's own), or `disabled`, `quota` and `webhook_url` (admin
/// only).
#[utoipa::path(
    tag = "accounts", operation_id = "change_account",
    request_body = ChangeBody,
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "The changed account", body = Account),
        (status = 400, description = "Invalid body or query", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only (disabled, quota, webhook_url)", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "The operator account cannot be changed, or a name several accounts have (ambiguous_name, the admin's): give an id", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[patch("/accounts/{id}")]
async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    if body.disabled.is_some() || body.quota.is_some() || body.webhook_url.is_some() {
        caller.require_admin()?;
    }
    let change = AccountChange {
        disabled: body.disabled,
        quota: body
            .quota
            .map(|q| q.map_or(QuotaUpdate::Default, |q| QuotaUpdate::Change(quota_change(q)))),
        email: body.email.map(|e| e.as_deref().map(email_address).transpose()).transpose()?,
        webhook_url: body
            .webhook_url
            .map(|u| u.as_deref().map(webhook_url).transpose())
            .transpose()?,
    };
    let (id, scope) = (AccountId(id.into_inner()), caller.scope);
    let account = state.ask(|reply| ApiRequest::ChangeAccount { scope, id, change, reply }).await?;
    state.directory.set(&account.account);
    Ok(HttpResponse::Ok().json(views::account(&account)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_amounts_are_strict() {
        assert_eq!(payment_amount("10.00").unwrap(), Money(10_000_000));
        assert_eq!(payment_amount("0.000001").unwrap(), Money(1));
        assert_eq!(payment_amount("1000000000").unwrap(), MAX_PAYMENT);
        for bad in ["", "0", "0.0", "-1", "+1", "1.", ".5", "1.1234567", "1e3", " 1", "1,5"] {
            assert!(payment_amount(bad).is_err(), "{bad:?} accepted");
        }
        assert!(payment_amount("1000000000.000001").is_err());
        assert!(payment_amount("9223372036854775807").is_err());
    }
}
