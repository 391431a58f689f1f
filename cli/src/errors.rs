//! The CLI's error kinds and how each maps to a message and an exit code.
//!
//! - [`UsageError`]: the command line is wrong (caught before any request); exit code 2.
//! - [`ApiError`]: the coordinator answered 4xx/5xx; printed as
//!   `error: <message> (<code>, HTTP <status>)`; exit code 1.
//! - [`Unreachable`]: no coordinator at the URL; names the URL and hints at `gpuspot dev`.

use gpuspot_api::ErrorBody;
use std::fmt;

/// A mistake in the command line, found locally before anything is sent.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a [`UsageError`] from a function that returns `anyhow::Result`.
pub fn usage<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(message.into()).into())
}

/// An error answer from the coordinator's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Reads an [`ErrorBody`], `{"error":{"code","message"}}`; any other body (or none) still gives a useful
    /// message: the body's text, or the HTTP reason phrase when the body is empty.
    pub fn from_body(status: u16, reason: &str, body: &str) -> ApiError {
        if let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(body) {
            return ApiError { status, code: error.code, message: error.message };
        }
        let message =
            if body.trim().is_empty() { reason.to_owned() } else { body.trim().to_owned() };
        ApiError { status, code: "http_error".to_owned(), message }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.code, self.status)
    }
}

impl std::error::Error for ApiError {}

/// The coordinator could not be reached at all.
#[derive(Debug)]
pub struct Unreachable {
    pub url: String,
    pub cause: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the gpuspot coordinator at {} ({})\n\
             hint: start a local cluster with `gpuspot dev`, or point --api / GPUSPOT_API \
             at a running coordinator",
            self.url, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

/// The process exit code for an error: 2 for usage mistakes, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() { 2 } else { 1 }
}

/// The text printed after `error: `; the API's own message for API errors, the whole
/// cause chain otherwise.
pub fn render(err: &anyhow::Error) -> String {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return in_cli_words(&api.to_string());
    }
    if let Some(usage) = err.downcast_ref::<UsageError>() {
        return usage.to_string();
    }
    format!("{err:#}")
}

/// API routes an API message points to, and the commands that show the same.
const ROUTES_AS_COMMANDS: &[(&str, &str)] = &[("GET /v1/pools", "`gpuspot pools`")];

/// An API message as a CLI user reads it: routes it points to become commands.
fn in_cli_words(message: &str) -> String {
    ROUTES_AS_COMMANDS
        .iter()
        .fold(message.to_owned(), |text, (route, command)| text.replace(route, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_body_is_formatted() {
        let body = r#"{"error":{"code":"not_found","message":"no instance i-1"}}"#;
        let err = ApiError::from_body(404, "Not Found", body);
        assert_eq!(err.to_string(), "no instance i-1 (not_found, HTTP 404)");
    }

    #[test]
    fn non_json_and_empty_bodies_fall_back() {
        let err = ApiError::from_body(502, "Bad Gateway", "upstream down\n");
        assert_eq!(err.to_string(), "upstream down (http_error, HTTP 502)");
        let err = ApiError::from_body(500, "Internal Server Error", "");
        assert_eq!(err.to_string(), "Internal Server Error (http_error, HTTP 500)");
    }

    #[test]
    fn api_routes_in_messages_read_as_commands() {
        let body = r#"{"error":{"code":"unknown_model","message":"no pool or host offers GPU model Z80; see GET /v1/pools"}}"#;
        let err: anyhow::Error = ApiError::from_body(400, "Bad Request", body).into();
        assert_eq!(
            render(&err),
            "no pool or host offers GPU model Z80; see `gpuspot pools` (unknown_model, HTTP 400)"
        );
    }

    #[test]
    fn exit_codes_and_rendering() {
        let usage: anyhow::Error = UsageError("bad".into()).into();
        assert_eq!(exit_code(&usage), 2);
        assert_eq!(render(&usage), "bad");
        let api: anyhow::Error = ApiError::from_body(409, "Conflict", "{}").into();
        assert_eq!(exit_code(&api), 1);
        assert_eq!(render(&api), "{} (http_error, HTTP 409)");
        let wrapped = anyhow::Error::from(ApiError::from_body(400, "Bad Request", ""))
            .context("creating instance");
        assert_eq!(render(&wrapped), "Bad Request (http_error, HTTP 400)");
    }
}
