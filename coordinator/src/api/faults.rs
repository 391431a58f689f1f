//! Drills and GPU faults over HTTP (docs/architecture.md, "Faults and drills"):
//! `POST /v1/instances/{id}/interrupt` (the owner or the admin),
//! `POST /v1/hosts/{id}/gpus/{index}/fault` and `…/clear` (admin).

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, InvalidBody};
use super::views;
use crate::actors::ApiRequest;
use crate::actors::faults::FaultRequest;
use actix_web::{HttpResponse, post, web};
use gpuspot_api::{ErrorBody, Host, Instance};
use gpuspot_common::faults::MAX_XID;
use gpuspot_common::{HostId, InstanceId};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(interrupt).service(fault).service(clear);
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Interrupt)]
#[serde(deny_unknown_fields)]
struct InterruptBody {
    /// e.g. "2m" (1s to 24h): the deadline is now plus this. Default: the pool's notice.
    notice: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = InjectFault)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    /// The Xid code to report (1-999, a critical one: not 13, 31, 43, 45, 68 or 109).
    xid: u32,
}

/// Interrupts the instance with reason `drill`, as a reclaim would (the guest's socket,
/// events, mail, its deployment's replacement, the stop at the deadline). The owner or the
/// admin; the body is optional.
#[utoipa::path(
    tag = "instances", operation_id = "interrupt_instance",
    request_body(content = Option<InterruptBody>, content_type = "application/json"),
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance, noticed", body = Instance),
        (status = 400, description = "Invalid body or notice", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Not scheduled or running (queued, noticed or ended)", body = ErrorBody),
    )
)]
#[post("/instances/{id}/interrupt")]
async fn interrupt(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let body: InterruptBody = optional_body(&body, "interrupt")?;
    let notice = match body.notice.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(notice)) if !notice.is_zero() => Some(notice),
        Some(Ok(_)) => return Err(InvalidBody("notice: at least 1s".into()).into()),
        Some(Err(e)) => return Err(InvalidBody(format!("notice: {e} (e.g. \"2m\")")).into()),
    };
    let id = InstanceId(id.into_inner());
    let scope = caller.scope;
    let instance = state
        .ask(|reply| ApiRequest::Fault(FaultRequest::Drill { scope, id, notice, reply }))
        .await?;
    Ok(HttpResponse::Ok().json(views::instance(&instance)))
}

/// Makes a simulated GPU fail with Xid `xid`: its agent reports it as a real fault (the unit
/// leaves the market, the instance on it gets a `gpu_fault` notice). Admin only; 409 for a
/// host with real GPUs.
#[utoipa::path(
    tag = "hosts", operation_id = "inject_gpu_fault", request_body = FaultBody,
    params(
        ("id" = String, Path, description = "Host id"),
        ("index" = u32, Path, description = "GPU index on the host"),
    ),
    responses(
        (status = 202, description = "Sent to the agent; the host as it is now", body = Host),
        (status = 400, description = "Invalid body or xid", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host or GPU", body = ErrorBody),
        (status = 409, description = "The host's GPUs are real", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 503, description = "The host is not connected", body = ErrorBody),
    )
)]
#[post("/hosts/{id}/gpus/{index}/fault")]
async fn fault(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, u32)>,
    body: web::Json<FaultBody>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let (host, index) = path.into_inner();
    let xid = body.xid;
    if !(1..=MAX_XID).contains(&xid) {
        return Err(InvalidBody(format!("xid: must be between 1 and {MAX_XID}")).into());
    }
    let host = HostId(host);
    let host = state
        .ask(|reply| ApiRequest::Fault(FaultRequest::Inject { host, index, xid, reply }))
        .await?;
    Ok(HttpResponse::Accepted().json(views::host(&host)))
}

/// Puts a failed GPU back on the market once its agent reports it healthy (a simulated GPU
/// is healthy again; a real one when NVML says so). Admin only.
#[utoipa::path(
    tag = "hosts", operation_id = "clear_gpu_fault",
    params(
        ("id" = String, Path, description = "Host id"),
        ("index" = u32, Path, description = "GPU index on the host"),
    ),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 403, description = "Admin only", body = ErrorBody),
        (status = 404, description = "No such host or GPU", body = ErrorBody),
    )
)]
#[post("/hosts/{id}/gpus/{index}/clear")]
async fn clear(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, u32)>,
) -> Result<HttpResponse, HttpError> {
    caller.require_admin()?;
    let (host, index) = path.into_inner();
    let host = HostId(host);
    let host =
        state.ask(|reply| ApiRequest::Fault(FaultRequest::Clear { host, index, reply })).await?;
    Ok(HttpResponse::Ok().json(views::host(&host)))
}

/// An optional JSON body: nothing (or blanks) is the default.
fn optional_body<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| InvalidBody(format!("{what} body: {e}")).into())
}
