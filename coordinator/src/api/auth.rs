//! Bearer-token authentication: the admin token (acting for the built-in `operator`
//! account unless a request names another), or an account's own token.

use super::AppState;
use super::error::HttpError;
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
                Err(HttpError::forbidden("an account token can only act for its own account"))
            }
            (Scope::Account(own), _) => Ok(own.clone()),
        }
    }

    pub fn require_admin(&self) -> Result<(), HttpError> {
        match self.scope {
            Scope::Admin => Ok(()),
            Scope::Account(_) => Err(HttpError::forbidden("this route needs the admin token")),
        }
    }
}

fn state(request: &HttpRequest) -> Result<&web::Data<AppState>, HttpError> {
    request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| HttpError::internal("application state missing"))
}

fn authenticate(request: &HttpRequest) -> Result<Caller, HttpError> {
    let header =
        request.headers().get(actix_web::http::header::AUTHORIZATION).ok_or_else(|| {
            HttpError::unauthorized("missing bearer token (Authorization: Bearer TOKEN)")
        })?;
    let token =
        header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).ok_or_else(
            || HttpError::unauthorized("the Authorization header must be `Bearer TOKEN`"),
        )?;
    caller_for(state(request)?, token)
}

/// The admin, or the account whose token `token` is; 401 for any other token.
fn caller_for(state: &AppState, token: &str) -> Result<Caller, HttpError> {
    if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
        return Ok(Caller { scope: Scope::Admin });
    }
    match state.directory.account_for_token(token) {
        Some(account) => Ok(Caller { scope: Scope::Account(account) }),
        None => Err(HttpError::unauthorized("invalid token")),
    }
}

/// The cookie a browser's `EventSource` sends instead of a header (it cannot set one); its
/// value is the token percent-encoded (JavaScript's `encodeURIComponent`), since a cookie
/// value cannot hold `;`, `,` or spaces that an admin token may.
pub const TOKEN_COOKIE: &str = "gpuspot_token";

/// `%XX` escapes decoded; `None` for a malformed escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The value of cookie `name` in `Cookie` headers (`a=1; b=2`), if present.
fn cookie<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let headers = request.headers().get_all(actix_web::http::header::COOKIE);
    headers.filter_map(|h| h.to_str().ok()).flat_map(|h| h.split(';')).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim())
    })
}

/// The caller of `GET /v1/events` only: the bearer token as everywhere, else the
/// [`TOKEN_COOKIE`] cookie, so the dashboard's `EventSource` can authenticate. Only this
/// read-only stream takes a cookie: a cookie is sent by the browser on its own, so taking it
/// on a route that changes something would open it to cross-site requests (the dashboard
/// also sets it `SameSite=Strict` and `Path=/v1/events`).
pub struct StreamCaller(pub Caller);

fn authenticate_stream(request: &HttpRequest) -> Result<Caller, HttpError> {
    if request.headers().contains_key(actix_web::http::header::AUTHORIZATION) {
        return authenticate(request);
    }
    match cookie(request, TOKEN_COOKIE).filter(|t| !t.is_empty()) {
        Some(token) => {
            let token = percent_decode(token)
                .ok_or_else(|| HttpError::unauthorized("the gpuspot_token cookie is malformed"))?;
            caller_for(state(request)?, &token)
        }
        None => Err(HttpError::unauthorized(
            "missing bearer token (Authorization: Bearer TOKEN, or the gpuspot_token cookie)",
        )),
    }
}

impl FromRequest for StreamCaller {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_stream(request).map(StreamCaller))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequest for Caller {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let request = TestRequest::default()
            .insert_header(("Cookie", "a=1; gpuspot_token=gst_abc ; b=2"))
            .to_http_request();
        assert_eq!(cookie(&request, TOKEN_COOKIE), Some("gst_abc"));
        assert_eq!(cookie(&request, "gpuspot"), None);
        let none = TestRequest::default().to_http_request();
        assert_eq!(cookie(&none, TOKEN_COOKIE), None);
    }

    #[test]
    fn cookie_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("gst_0a1b").as_deref(), Some("gst_0a1b"));
        assert_eq!(percent_decode("a%3B%20b%25").as_deref(), Some("a; b%"));
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }
}
