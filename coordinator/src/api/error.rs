//! API errors: every failure answers `{"error":{"code":"…","message":"…"}}` with a status
//! that says whose fault it was. The one place where the actor's and the core's typed
//! errors become a status, a code and a message.

use crate::actors::Failure;
use crate::core::error::{AccountError, DeploymentError, LifecycleError};
use crate::store::StoreError;
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

impl From<Failure> for HttpError {
    fn from(failure: Failure) -> Self {
        let message = failure.to_string();
        match failure {
            Failure::NotFound(_) => HttpError::not_found(message),
            Failure::Lifecycle(error) => error.into(),
            Failure::Account(error) => error.into(),
            Failure::Deployment(error) => error.into(),
            Failure::Quota(_) => HttpError::new(StatusCode::FORBIDDEN, "quota_exceeded", message),
            Failure::OverdueForInstances { .. } | Failure::OverdueForDeployments(_) => {
                HttpError::new(StatusCode::PAYMENT_REQUIRED, "payment_required", message)
            }
            Failure::AmbiguousAccountName { .. } => {
                HttpError::new(StatusCode::CONFLICT, "ambiguous_name", message)
            }
            Failure::OperatorIsFixed => HttpError::conflict(message),
            Failure::UnknownCursor(_) => HttpError::bad_request("invalid_query", message),
            Failure::Store(StoreError::Unavailable(_)) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message)
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
mod tests {
    use super::*;
    use crate::actors::Missing;
    use crate::core::error::QuotaError;
    use gpuspot_common::{AccountId, DeploymentId, InstanceId, Money};

    fn answer(failure: impl Into<Failure>) -> (u16, &'static str, String) {
        let error = HttpError::from(failure.into());
        (error.status.as_u16(), error.code, error.message)
    }

    fn expect(status: u16, code: &'static str, message: &str) -> (u16, &'static str, String) {
        (status, code, message.to_owned())
    }

    #[test]
    fn refusals_answer_the_status_code_and_message_users_know() {
        let alice = || AccountId("a-alice".into());
        let cases = [
            (
                answer(Failure::NotFound(Missing::Instance(InstanceId("i-1".into())))),
                expect(404, "not_found", "instance i-1 not found"),
            ),
            (
                answer(Failure::NotFound(Missing::Snapshot("s-1".into()))),
                expect(404, "not_found", "snapshot s-1 not found"),
            ),
            (
                answer(LifecycleError::SizeIsFixed),
                expect(409, "conflict", &LifecycleError::SizeIsFixed.to_string()),
            ),
            (
                answer(AccountError::Disabled(alice())),
                expect(403, "forbidden", "account a-alice is disabled"),
            ),
            (
                answer(AccountError::NonPositivePayment),
                expect(400, "invalid_request", "a payment must be a positive amount"),
            ),
            (
                answer(DeploymentError::Unknown(DeploymentId("d-1".into()))),
                expect(404, "not_found", "no deployment d-1"),
            ),
            (
                answer(DeploymentError::NotAReplicaSet),
                expect(409, "conflict", "only a replicaset has replicas to scale"),
            ),
            (
                answer(Failure::OverdueForInstances {
                    account: alice(),
                    balance: Money(-1_500_000),
                }),
                expect(
                    402,
                    "payment_required",
                    "account a-alice is overdue (balance -1.50): pay to start new instances",
                ),
            ),
            (
                answer(Failure::OverdueForDeployments(alice())),
                expect(
                    402,
                    "payment_required",
                    "account a-alice is overdue: pay to start new work",
                ),
            ),
            (
                answer(QuotaError::Gpus { wanted: 3, limit: 2 }),
                expect(
                    403,
                    "quota_exceeded",
                    "quota_exceeded: 3 GPUs would pass the account's max_gpus of 2",
                ),
            ),
            (
                answer(QuotaError::Instances { wanted: 1, limit: 0 }),
                expect(
                    403,
                    "quota_exceeded",
                    "quota_exceeded: 1 instance would pass the account's max_instances of 0",
                ),
            ),
            (
                answer(Failure::OperatorIsFixed),
                expect(409, "conflict", "the operator account cannot be changed"),
            ),
            (
                answer(StoreError::Unavailable("connection refused".into())),
                expect(
                    503,
                    "store_unavailable",
                    "could not persist the change: the database is unreachable: connection refused",
                ),
            ),
            (
                answer(StoreError::WriterGone),
                expect(
                    500,
                    "internal",
                    "could not persist the change: the store writer has stopped",
                ),
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }
}
