//! The status, code and message each refusal answers with.

use super::*;
use crate::actors::Missing as Absent;
use crate::core::error::QuotaError;
use crate::store::StoreError;
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
            answer(Failure::NotFound(Absent::Instance(InstanceId("i-1".into())))),
            expect(404, "not_found", "instance i-1 not found"),
        ),
        (
            answer(Failure::NotFound(Absent::Snapshot("s-1".into()))),
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
            answer(Failure::OverdueForInstances { account: alice(), balance: Money(-1_500_000) }),
            expect(
                402,
                "payment_required",
                "account a-alice is overdue (balance -1.50): pay to start new instances",
            ),
        ),
        (
            answer(Failure::OverdueForDeployments(alice())),
            expect(402, "payment_required", "account a-alice is overdue: pay to start new work"),
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
            expect(503, "store_unavailable", UNREACHABLE),
        ),
        (
            answer(StoreError::WriterGone),
            expect(500, "internal", "could not persist the change: the store writer has stopped"),
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

fn area(error: impl Into<HttpError>) -> (u16, &'static str, String) {
    let error = error.into();
    (error.status.as_u16(), error.code, error.message)
}

#[test]
fn each_areas_refusals_answer_the_status_and_code_users_know() {
    let cases = [
        (area(AuthError::MissingToken), 401, "unauthorized"),
        (area(AuthError::AdminOnly), 403, "forbidden"),
        (area(QueryError::Invalid("limit: …".into())), 400, "invalid_query"),
        (area(QueryError::LastEventId), 400, "invalid_header"),
        (area(InvalidBody("gpu.count must be at least 1".into())), 400, "invalid_request"),
        (area(AccountInputError::Name), 400, "invalid_request"),
        (area(WorkloadError::ImageRequired("image is required".into())), 400, "image_required"),
        (area(WorkloadError::UnknownSpecModels), 400, "unknown_model"),
        (area(NotFound::Snapshot("s-1".into())), 404, "not_found"),
        (area(ExecError::Failed("no such program".into())), 409, "exec_failed"),
        (area(ExecError::HostUnavailable("host h-1 is gone".into())), 503, "host_unavailable"),
        (area(StoreUnavailable("connection refused".into())), 503, "store_unavailable"),
        (area(ExecError::WebsocketRequired), 400, "websocket_required"),
        (area(TooManyStreams(8)), 429, "too_many_streams"),
        (area(Internal("the store is gone".into())), 500, "internal"),
    ];
    for ((status, code, message), want_status, want_code) in cases {
        assert_eq!((status, code), (want_status, want_code), "{message}");
    }
    let unknown = area(WorkloadError::UnknownModels(vec!["B200".into(), "X1".into()]));
    assert_eq!(unknown.2, "no pool or host offers GPU model B200, X1; see GET /v1/pools");
    let running = ExecError::NotRunning { id: "i-1".into(), state: "queued" };
    assert_eq!(area(running).2, "instance i-1 is queued: commands run only in a running instance");
    assert_eq!(area(TooManyStreams(8)).2, "at most 8 event streams per token at once");
}
