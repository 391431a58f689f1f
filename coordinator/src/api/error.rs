//! API errors: every failure answers `{"error":{"code":"…","message":"…"}}` with a status
//! that says whose fault it was. The one place where typed errors (the actor's, the core's
//! and each API area's, in [`areas`]) become a status, a code and a message.

mod areas;

pub use areas::{
    AccountInputError, AuthError, ExecError, Internal, InvalidBody, NotFound, QueryError,
    StoreUnavailable, TooManyStreams, WorkloadError,
};

use crate::actors::Failure;
use crate::core::drills::DrillError;
use crate::core::error::{AccountError, DeploymentError, LifecycleError};
use crate::core::faults::FaultError;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use gpuspot_api::ErrorBody;
use std::fmt;

/// What a client reads when the database cannot be reached; the details go to the log.
pub const UNREACHABLE: &str = "the database is unreachable; try again shortly";

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// Each area's refusals: every variant with its status and code.
macro_rules! answers {
    ($error:ty { $($variant:pat => ($status:ident, $code:literal)),+ $(,)? }) => {
        impl From<$error> for HttpError {
            fn from(error: $error) -> Self {
                let (status, code) = match &error {
                    $($variant => (StatusCode::$status, $code)),+
                };
                HttpError::new(status, code, error.to_string())
            }
        }
    };
}

answers!(AuthError {
    AuthError::MissingToken | AuthError::MalformedHeader | AuthError::InvalidToken
        => (UNAUTHORIZED, "unauthorized"),
    AuthError::OtherAccount | AuthError::AdminOnly => (FORBIDDEN, "forbidden"),
});
answers!(QueryError {
    QueryError::Invalid(_) => (BAD_REQUEST, "invalid_query"),
    QueryError::LastEventId => (BAD_REQUEST, "invalid_header"),
});
answers!(InvalidBody { InvalidBody(_) => (BAD_REQUEST, "invalid_request") });
answers!(AccountInputError { _ => (BAD_REQUEST, "invalid_request") });
answers!(WorkloadError {
    WorkloadError::ImageRequired(_) => (BAD_REQUEST, "image_required"),
    WorkloadError::UnknownModels(_) | WorkloadError::UnknownSpecModels
        => (BAD_REQUEST, "unknown_model"),
});
answers!(NotFound { _ => (NOT_FOUND, "not_found") });
answers!(ExecError {
    ExecError::NotRunning { .. } => (CONFLICT, "not_running"),
    ExecError::HostUnavailable(_) => (SERVICE_UNAVAILABLE, "host_unavailable"),
    ExecError::Failed(_) => (CONFLICT, "exec_failed"),
    ExecError::NoExit { .. } => (GATEWAY_TIMEOUT, "exec_timeout"),
    ExecError::WebsocketRequired => (BAD_REQUEST, "websocket_required"),
    ExecError::Handshake(_) => (BAD_REQUEST, "websocket_handshake"),
});
answers!(DrillError {
    DrillError::Unknown(_) => (NOT_FOUND, "not_found"),
    DrillError::NotPlaced { .. } => (CONFLICT, "not_running"),
    DrillError::NoticeTooLong(_) => (BAD_REQUEST, "invalid_request"),
});
answers!(FaultError {
    FaultError::UnknownHost(_) | FaultError::UnknownGpu { .. } => (NOT_FOUND, "not_found"),
    FaultError::RealGpus(_) => (CONFLICT, "real_gpus"),
    FaultError::NotConnected(_) => (SERVICE_UNAVAILABLE, "host_unavailable"),
    FaultError::NotCritical(_) => (BAD_REQUEST, "invalid_request"),
});
answers!(TooManyStreams { TooManyStreams(_) => (TOO_MANY_REQUESTS, "too_many_streams") });
answers!(Internal { Internal(_) => (INTERNAL_SERVER_ERROR, "internal") });
answers!(StoreUnavailable { StoreUnavailable(_) => (SERVICE_UNAVAILABLE, "store_unavailable") });

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
        HttpResponse::build(self.status).json(ErrorBody::new(self.code, self.message.as_str()))
    }
}

impl From<Failure> for HttpError {
    fn from(failure: Failure) -> Self {
        let message = failure.to_string();
        match failure {
            Failure::NotFound(_) => HttpError::not_found(message),
            Failure::Lifecycle(error) => error.into(),
            Failure::Account(error) => error.into(),
            Failure::Deployment(error) => error.into(),
            Failure::Quota(_) => HttpError::new(StatusCode::FORBIDDEN, "quota_exceeded", message),
            Failure::Drill(error) => error.into(),
            Failure::Fault(error) => error.into(),
            Failure::OverdueForInstances { .. } | Failure::OverdueForDeployments(_) => {
                HttpError::new(StatusCode::PAYMENT_REQUIRED, "payment_required", message)
            }
            Failure::AmbiguousAccountName { .. } => {
                HttpError::new(StatusCode::CONFLICT, "ambiguous_name", message)
            }
            Failure::OperatorIsFixed => HttpError::conflict(message),
            Failure::UnknownCursor(_) => HttpError::bad_request("invalid_query", message),
            // The database's own words (its host, its user) are the operator's, not a tenant's.
            Failure::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(%detail, "a change could not be persisted: the database is unreachable");
                StoreUnavailable(UNREACHABLE.to_owned()).into()
            }
            Failure::Store(_) => HttpError::internal(message),
        }
    }
}

impl From<LifecycleError> for HttpError {
    fn from(error: LifecycleError) -> Self {
        let message = error.to_string();
        match error {
            LifecycleError::UnknownInstance(_) => HttpError::not_found(message),
            LifecycleError::SpotIsFixed | LifecycleError::SizeIsFixed => {
                HttpError::conflict(message)
            }
        }
    }
}

impl From<AccountError> for HttpError {
    fn from(error: AccountError) -> Self {
        let message = error.to_string();
        match error {
            AccountError::Unknown(_) => HttpError::not_found(message),
            AccountError::NonPositivePayment | AccountError::Overflow(_) => {
                HttpError::bad_request("invalid_request", message)
            }
            AccountError::Disabled(_) => HttpError::forbidden(message),
        }
    }
}

impl From<DeploymentError> for HttpError {
    fn from(error: DeploymentError) -> Self {
        let message = error.to_string();
        match error {
            DeploymentError::Unknown(_) => HttpError::not_found(message),
            DeploymentError::NotAReplicaSet => HttpError::conflict(message),
            DeploymentError::InvalidScaling(_) => {
                HttpError::bad_request("invalid_request", message)
            }
            DeploymentError::NameTaken(_) => {
                HttpError::new(StatusCode::CONFLICT, "name_taken", message)
            }
            DeploymentError::AmbiguousName { .. } => {
                HttpError::new(StatusCode::CONFLICT, "ambiguous_name", message)
            }
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

#[cfg(test)]
mod tests;
