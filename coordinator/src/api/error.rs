//! API errors: every failure answers `{"error":{"code":"…","message":"…"}}` with a status
//! that says whose fault it was.

use crate::actors::ApiError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use std::fmt;

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// The actor answered a request with a reply of another kind: a bug, not bad input.
    pub fn unexpected(reply: impl std::fmt::Debug) -> Self {
        Self::internal(format!("unexpected reply {reply:?}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "API request failed");
        }
        HttpResponse::build(self.status)
            .json(serde_json::json!({ "error": { "code": self.code, "message": self.message } }))
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound(_) => HttpError::not_found(error.to_string()),
            ApiError::Conflict(message) => HttpError::conflict(message),
            ApiError::PaymentRequired(message) => {
                HttpError::new(StatusCode::PAYMENT_REQUIRED, "payment_required", message)
            }
            ApiError::BadRequest(message) => HttpError::bad_request("invalid_request", message),
            ApiError::Forbidden(message) => HttpError::forbidden(message),
            ApiError::Store(_) => HttpError::internal(error.to_string()),
        }
    }
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(1 << 20).error_handler(|err, _| {
        let status = match &err {
            actix_web::error::JsonPayloadError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            actix_web::error::JsonPayloadError::Overflow { .. }
            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        HttpError::new(status, "invalid_json", format!("request body is not valid: {err}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| HttpError::bad_request("invalid_path", err.to_string()).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| HttpError::bad_request("invalid_query", err.to_string()).into())
}
