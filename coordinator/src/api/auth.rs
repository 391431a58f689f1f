//! Bearer-token authentication: the admin token (acting for the built-in `operator`
//! account unless a request names another), or an account's own token.

use super::AppState;
use super::error::{AuthError, HttpError, Internal};
use crate::actors::Scope;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use gpuspot_common::AccountId;
use std::future::{Ready, ready};

pub use crate::core::accounts::OPERATOR as OPERATOR_ACCOUNT;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub scope: Scope,
}

impl Caller {
    /// The account new resources are created for: the admin may name one, an account
    /// only itself.
    pub fn account(&self, named: Option<String>) -> Result<AccountId, HttpError> {
        match (&self.scope, named) {
            (Scope::Admin, Some(named)) => Ok(AccountId(named)),
            (Scope::Admin, None) => Ok(AccountId::from(OPERATOR_ACCOUNT)),
            (Scope::Account(own), Some(named)) if named != own.as_str() => {
                Err(AuthError::OtherAccount.into())
            }
            (Scope::Account(own), _) => Ok(own.clone()),
        }
    }

    pub fn require_admin(&self) -> Result<(), HttpError> {
        match self.scope {
            Scope::Admin => Ok(()),
            Scope::Account(_) => Err(AuthError::AdminOnly.into()),
        }
    }
}

fn state(request: &HttpRequest) -> Result<&web::Data<AppState>, HttpError> {
    request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Internal("application state missing".to_owned()).into())
}

fn authenticate(request: &HttpRequest) -> Result<Caller, HttpError> {
    let header = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?;
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(AuthError::MalformedHeader)?;
    caller_for(state(request)?, token)
}

/// The admin, or the account whose token `token` is; 401 for any other token.
fn caller_for(state: &AppState, token: &str) -> Result<Caller, HttpError> {
    if crate::ssh::constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
        return Ok(Caller { scope: Scope::Admin });
    }
    match state.directory.account_for_token(token) {
        Some(account) => Ok(Caller { scope: Scope::Account(account) }),
        None => Err(AuthError::InvalidToken.into()),
    }
}

impl FromRequest for Caller {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
    }
}
